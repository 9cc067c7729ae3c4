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


def test_no_code_unpickles_or_loads_torchscript():
    """Model packages are untrusted input: every torch.load is weights-only, nothing calls
    pickle or torch.jit.load (DESIGN.md "Model package")."""

    def calls(text: str, name: str):
        """The argument text of every ``name(...)`` call, parentheses balanced."""
        start = text.find(name)
        while start != -1:
            i, depth = start + len(name), 1
            while i < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            yield text[start + len(name) : i - 1]
            start = text.find(name, i)

    bad: list[str] = []
    for package in ("radlens_core", "phantoms", "viewer", "inference", "demo_models"):
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for args in calls(text, "torch.load("):
                if "weights_only=True" not in args:
                    bad.append(f"{path.relative_to(REPO)}: torch.load({args})")
            for forbidden in ("torch.jit.load(", "pickle.load(", "pickle.loads("):
                if forbidden in text:
                    bad.append(f"{path.relative_to(REPO)}: {forbidden}")
    assert bad == []
