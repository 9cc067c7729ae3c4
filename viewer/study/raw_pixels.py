"""Which frames of a series are read straight from their file (uncompressed little-endian
greyscale, with one ``preadv`` into the volume's own slice) and which need a decoder, in
this process's threads or in decoder processes."""

from __future__ import annotations

import threading

import numpy as np

from viewer.study.errors import UnsupportedFormat
from viewer.study.frame_codecs import decodes_without_gil
from viewer.study.headers import FileHeader
from viewer.study.opening import read_at


def raw_dtype(h: FileHeader) -> np.dtype | None:
    if (
        h.bits_allocated not in (8, 16, 32)
        or h.samples_per_pixel != 1
        or not h.photometric.startswith("MONOCHROME")
    ):
        return None
    kind = "i" if h.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{h.bits_allocated // 8}")


def needs_decoder(h: FileHeader) -> bool:
    return h.pixel_offset is None or raw_dtype(h) is None


def needs_process(h: FileHeader) -> bool:
    """Whether ``h``'s frames need a decoder that holds the GIL: those are decoded in decoder
    processes; frames decoded without it (imagecodecs) parallelise on this process's threads."""
    return needs_decoder(h) and not decodes_without_gil(h)


def read_raw(
    h: FileHeader, frame: int, dtype: np.dtype, out: np.ndarray | None, scratch: threading.local
) -> np.ndarray:
    """Stored values of an uncompressed frame read straight from the file: into ``out``
    itself when it has the stored item size (rescaled there in place), else into the
    calling thread's ``scratch`` slice, so no slice-sized buffer is allocated per read."""
    assert h.pixel_offset is not None
    n = h.rows * h.cols
    if out is not None and out.dtype.itemsize == dtype.itemsize and out.flags.c_contiguous:
        raw = out.view(dtype)
    else:
        raw = getattr(scratch, "buffer", None)
        if raw is None or raw.dtype != dtype or raw.size != n:
            raw = np.empty(n, dtype)
            scratch.buffer = raw
        raw = raw.reshape(h.rows, h.cols)
    got = read_at(h.path, h.pixel_offset + frame * n * dtype.itemsize, memoryview(raw).cast("B"))
    if got != n * dtype.itemsize:
        raise UnsupportedFormat(h.path, "truncated pixel data: the file ends early")
    unused = h.bits_allocated - h.bits_stored
    if unused > 0:
        # High bits beyond BitsStored may hold overlays: mask (or sign-extend) them.
        if h.pixel_representation:
            raw <<= unused
            raw >>= unused
        else:
            raw &= np.array((1 << h.bits_stored) - 1, dtype=raw.dtype)
    return raw
