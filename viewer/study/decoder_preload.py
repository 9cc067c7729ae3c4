"""Imported once by the decoder fork server: pydicom, numpy and the installed decoder
plugins, so each decoder process forked from it starts with them loaded."""

from __future__ import annotations

import importlib

import viewer.study.decode  # noqa: F401 - the worker entry point and everything it imports

for _name in ("pylibjpeg", "openjpeg", "libjpeg", "rle", "jpeg_ls", "PIL.Image"):
    try:
        importlib.import_module(_name)
    except ImportError:
        pass
