"""The layering rules (DESIGN.md "Layout") hold: import-linter's contracts, and what really loads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_HEAVY = ("torch", "PySide6", "pyqtgraph", "monai")


def _loaded_after_importing(packages: list[str]) -> set[str]:
    """Top-level heavy modules in sys.modules after importing every module of ``packages``."""
    code = (
        "import sys, pkgutil, importlib\n"
        f"for pkg in {packages!r}:\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for m in pkgutil.walk_packages(getattr(mod, '__path__', []), pkg + '.'):\n"
        "        importlib.import_module(m.name)\n"
        f"print(','.join(sorted({{n.split('.')[0] for n in sys.modules}} & set({_HEAVY!r}))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return {n for n in out.stdout.strip().split(",") if n}


def test_core_study_and_labels_load_neither_qt_nor_torch():
    loaded = _loaded_after_importing(
        ["radlens_core", "phantoms", "viewer.study", "viewer.labels", "viewer.commands.export"]
    )
    assert loaded == set()


def test_inference_modules_load_no_qt_and_no_torch_until_a_model_runs():
    # The engine never starts Qt; torch and MONAI are imported by the functions that run a
    # model, so the viewer can import the engine's cards and errors before torch is needed.
    assert _loaded_after_importing(["inference"]) == set()


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (it is in the test extra)")
    out = subprocess.run(
        [exe, "--no-cache"], cwd=REPO, capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
