"""The engine's imports happen in the background once the window is up, not before it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, time
import viewer.ui.app as app_mod
from viewer.ui import analysis
app_mod.WARM_UP_DELAY_MS = 50
app = app_mod.create_app()
w = app_mod.open_window()
app.processEvents()
assert w.isVisible() and 'torch' not in sys.modules, 'torch imported before the window'
deadline = time.monotonic() + 90
while analysis._warm_up_thread is None and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.02)
analysis._warm_up_thread.join(120)
print('torch' in sys.modules, 'monai.inferers' in sys.modules, w.isVisible())
"""


@pytest.mark.slow
def test_engine_is_imported_in_the_background_after_the_window_is_shown(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    env["RADLENS_DATA_DIR"] = str(tmp_path)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-3:] == ["True", "True", "True"]


def test_warm_up_starts_one_thread_per_process(monkeypatch):
    from viewer.ui import analysis

    started: list[str] = []
    monkeypatch.setattr(analysis, "_warm_up_thread", None)
    monkeypatch.setattr(analysis, "_warm_up", lambda: started.append("warm"))
    first = analysis.warm_up_engine()
    first.join(5)
    assert analysis.warm_up_engine() is first and started == ["warm"]
