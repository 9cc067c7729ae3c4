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
# Checked before the event loop runs: the 50 ms warm-up timer may fire in the first
# processEvents of a loaded machine, and its thread then imports torch at once.
assert w.isVisible() and 'torch' not in sys.modules, 'torch imported before the window'
app.processEvents()
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
    monkeypatch.setattr(analysis, "_warm_up", lambda *_: started.append("warm"))
    first = analysis.warm_up_engine()
    first.join(5)
    assert analysis.warm_up_engine() is first and started == ["warm"]


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="needs per-thread nice")
def test_warm_up_imports_below_the_ui_thread_priority(monkeypatch):
    from viewer.engine_warm_up import MAX_NICE, WORKER_NICE, thread_nice
    from viewer.ui import analysis

    seen: list[int] = []
    monkeypatch.setattr(analysis, "_warm_up_thread", None)
    monkeypatch.setattr(analysis, "import_engine", lambda: seen.append(thread_nice()))
    analysis.warm_up_engine().join(5)
    assert seen == [min(MAX_NICE, thread_nice() + WORKER_NICE)]


NATIVE_SCRIPT = """
import sys, threading
from viewer.engine_warm_up import native_loading_off_the_lock
seen = {}
def other_thread():  # imports elsewhere pass through untouched
    import _bz2
    seen['other'] = _bz2.__name__
with native_loading_off_the_lock() as finder:
    t = threading.Thread(target=other_thread)
    t.start(); t.join()
    import _lzma, torch
    ok = float(torch.ones(3).sum()) == 3.0 and _lzma.FORMAT_XZ is not None
print(ok, finder in sys.meta_path, seen['other'], ' '.join(sorted(finder.loaded)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dlopen through libc: Linux")
def test_native_extensions_load_through_ctypes_on_the_importing_thread_only(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, PYTHONPATH=str(ROOT), RADLENS_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", NATIVE_SCRIPT], env=env, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr
    ok, still_installed, other, *loaded = out.stdout.split()
    assert (ok, still_installed, other) == ("True", "False", "_bz2")
    # torch's own extension (which pulls in libtorch_cpu) and the stdlib one, not _bz2
    assert "torch._C" in loaded and "_lzma" in loaded and "_bz2" not in loaded


def _collections_while_allocating(n: int) -> list[int]:
    """The generations collected while ``n`` lists are made and kept alive."""
    import gc

    seen: list[int] = []

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        kept = [[] for _ in range(n)]
    finally:
        gc.callbacks.remove(record)
    del kept
    return seen


def test_engine_import_window_makes_no_full_collection_and_restores_the_settings():
    import gc

    from viewer import engine_warm_up as ew

    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    frozen = gc.get_freeze_count()
    n = max(300_000, len(gc.get_objects()))
    try:
        # Outside the window, making as many objects as the process holds collects them all
        # (the full collection the import would make, walking every object under the lock).
        assert 2 in _collections_while_allocating(n)
        with ew.few_long_lock_holds():
            inside = (gc.get_threshold(), sys.getswitchinterval())
            during = _collections_while_allocating(n)
        assert 2 not in during and 0 in during  # young collections still run
        assert inside[0][:2] == thresholds[:2] and inside[0][2] > n
        assert inside[1] == min(interval, ew.SWITCH_INTERVAL_S) < 0.005
        # Afterwards: as before, and what was alive is frozen out of later full collections.
        assert gc.get_threshold() == thresholds and sys.getswitchinterval() == interval
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_engine_is_imported_once_and_a_second_caller_waits_for_the_first(monkeypatch):
    import threading
    import time

    import inference.engine
    from viewer import engine_warm_up as ew

    calls: list[str] = []

    def slow_warm_up() -> None:
        calls.append(threading.current_thread().name)
        time.sleep(0.3)

    monkeypatch.setattr(ew, "_imported", False)
    monkeypatch.setattr(ew, "limit_torch_threads", lambda: None)
    monkeypatch.setattr(inference.engine, "warm_up", slow_warm_up)
    monkeypatch.setattr(ew, "IMPORT_WITHOUT_FULL_COLLECTIONS", False)  # nothing to freeze here
    ended: list[bool] = []

    def second() -> None:
        ew.import_engine()
        ended.append(ew.engine_imported())

    first = threading.Thread(target=ew.import_engine, name="first")
    first.start()
    time.sleep(0.05)
    other = threading.Thread(target=second, name="second")
    other.start()
    first.join(10)
    other.join(10)
    assert calls == ["first"] and ended == [True]
    ew.import_engine()
    assert calls == ["first"]


def test_short_thread_switches_overlap_and_the_last_one_out_restores():
    import threading

    from viewer import engine_warm_up as ew

    interval = sys.getswitchinterval()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with ew.short_thread_switches():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    t.start()
    assert inside.wait(10)
    with ew.short_thread_switches():
        assert sys.getswitchinterval() == min(interval, ew.SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == min(interval, ew.SWITCH_INTERVAL_S)  # other still in
    leave.set()
    t.join(10)
    assert sys.getswitchinterval() == interval
