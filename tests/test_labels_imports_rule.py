"""viewer.labels never imports Qt or torch (it runs in workers, CLIs and the training station)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_labels_package_imports_neither_qt_nor_torch():
    code = (
        "import sys, pkgutil, importlib, viewer.labels, viewer.commands.export\n"
        "for m in pkgutil.iter_modules(viewer.labels.__path__):\n"
        "    importlib.import_module('viewer.labels.' + m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'PySide6', 'pyqtgraph', 'monai'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.stdout.strip() == ""
