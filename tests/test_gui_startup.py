"""Start-up: the window is on screen before torch is imported; both entry points parse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from viewer.ui.app import create_app, open_window
app = create_app()
w = open_window()
app.processEvents()
assert w.isVisible(), "window not shown"
assert 'torch' not in sys.modules, 'torch imported at start-up'
assert 'monai' not in sys.modules, 'monai imported at start-up'
print('ok')
"""


def test_window_is_shown_without_importing_torch(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    env["RADLENS_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_view_command_accepts_a_path_and_demo():
    import argparse

    from viewer.commands import view

    parser = argparse.ArgumentParser()
    view.add_parser(parser.add_subparsers(dest="command"), "view")
    args = parser.parse_args(["view", "/some/folder", "--demo"])
    assert args.path == "/some/folder" and args.demo
