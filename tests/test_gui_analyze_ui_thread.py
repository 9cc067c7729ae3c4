"""A first Analyze, clicked before the engine's warm-up, leaves the UI thread free: torch,
MONAI and the engine are imported, the model's card read, its weights hashed and its network
built on the worker; the UI thread only sends the request and shows progress and results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter, so torch is really imported by the click (not by an earlier
# test). Every module import is recorded with its thread (a meta-path finder that finds
# nothing), and every Python call the UI thread makes after the click (sys.setprofile, which
# is per thread) with its file.
SCRIPT = r"""
import json, sys, threading, time
from PySide6.QtWidgets import QApplication
app = QApplication([])
from phantoms.chest import chest_ct
from viewer.study.volume import Volume
from viewer.ui.main_window import MainWindow

HEAVY = ("torch", "monai", "safetensors", "inference.engine", "inference.runtime",
         "inference.tasks", "inference.weights", "inference.networks")
imports = []

class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "monai", "safetensors") or name.startswith(HEAVY):
            imports.append((name, threading.current_thread() is threading.main_thread()))
        return None

win = MainWindow()
win.show()
ct = chest_ct((24, 64, 64), seed=5, n_nodules=1)
win.state.set_volume(Volume(ct.hu, spacing=ct.spacing, modality="CT", series_uid="ui.thread.1"))
app.processEvents()
feature = win.analyze
feature.controller.device = "cpu"
assert feature.offer.best is not None, "no shipped model admits a CT volume"
before = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "monai"))

ui_files = set()
def profile(frame, event, arg):
    if event == "call":
        ui_files.add(frame.f_code.co_filename)

done = []
feature.controller.analysis_finished.connect(lambda o: done.append("finished"))
feature.controller.analysis_failed.connect(lambda m: done.append("failed: " + m))
progress = []
feature.controller.analysis_progressed.connect(lambda f, s: progress.append(s))
sys.meta_path.insert(0, Recorder())
sys.setprofile(profile)
feature.action.trigger()  # the Analyze button
deadline = time.monotonic() + 200
while not done and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.005)
sys.setprofile(None)
print(json.dumps({
    "before": before,
    "done": done,
    "progress": progress[:3],
    "imports": imports,
    "torch_loaded": "torch" in sys.modules,
    "ui_files": sorted(ui_files),
}))
"""


def _heavy(path: str) -> bool:
    """A file of torch, MONAI or the engine side of RadLens (anything under inference/)."""
    parts = Path(path).parts
    return "torch" in parts or "monai" in parts or "safetensors" in parts or "inference" in parts


@pytest.mark.skipif(
    pytest.importorskip("importlib.util").find_spec("torch") is None, reason="needs torch"
)
def test_first_analyze_imports_and_loads_the_engine_on_the_worker_only(tmp_path):
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=str(ROOT),
        RADLENS_OFFLINE="1",
        RADLENS_DATA_DIR=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=280
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    # Cold: nothing of torch or MONAI before the click; the run finished and showed progress.
    assert seen["before"] == []
    assert seen["done"] == ["finished"], seen["done"]
    assert seen["torch_loaded"] and seen["progress"][0].startswith("loading ")
    # torch, MONAI and the engine were imported by the click, and on the worker only.
    names = {name for name, _ in seen["imports"]}
    assert {"torch", "monai", "inference.engine"} <= names
    on_ui = sorted({name for name, on_main in seen["imports"] if on_main})
    assert on_ui == []
    # The UI thread ran no code of torch, MONAI or inference (cards, hashes, network, run)
    # between the click and the result; it did run the window's own code (the probe works).
    assert [f for f in seen["ui_files"] if _heavy(f)] == []
    assert any(f.endswith(os.path.join("ui", "analyze_feature.py")) for f in seen["ui_files"])
