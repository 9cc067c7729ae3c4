from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from phantoms.chest import chest_ct
from tests.analysis_fakes import CARD, Cancelled, FakeEngine, phantom_result
from viewer.engine_warm_up import MAX_NICE, WORKER_NICE
from viewer.labels.results import ResultStore
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisController, AnalysisOutcome, volume_key
from viewer.ui.panels.findings import FindingsPanel
from viewer.ui.panels.model_info import ModelMenu, card_text

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def phantom():
    return chest_ct((32, 64, 64), seed=3, n_nodules=2)


@pytest.fixture
def volume(phantom):
    return Volume(phantom.hu, spacing=phantom.spacing, modality="CT", series_uid="1.2.3.4")


def test_finished_run_carries_findings_and_is_stored(qtbot, tmp_path, phantom, volume):
    store = ResultStore(tmp_path)
    ctl = AnalysisController(engine_factory=FakeEngine(phantom_result(phantom)), store=store)
    progress: list[tuple[float, str]] = []
    ctl.analysis_progressed.connect(lambda f, s: progress.append((f, s)))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000) as blocker:
        assert ctl.start(volume, CARD)
    outcome: AnalysisOutcome = blocker.args[0]
    assert not ctl.is_running()
    assert progress and progress[0][1] == "loading Fake segmenter"
    assert any(s.startswith("window ") for _, s in progress)
    kinds = sorted(f.kind for f in outcome.summary.findings)
    assert kinds == ["box", "box", "region", "region"]
    assert outcome.series_key == "1.2.3.4"
    (stored,) = store.load_all("1.2.3.4")
    assert stored.run_id == outcome.record.run_id
    assert np.array_equal(stored.label_map, phantom.labels)


def test_progress_comes_on_the_main_thread(qtbot, phantom, volume):
    ctl = AnalysisController(engine_factory=FakeEngine(phantom_result(phantom)))
    threads = []
    ctl.analysis_progressed.connect(lambda *_: threads.append(threading.current_thread()))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        ctl.start(volume, CARD)
    assert threads and all(t is threading.main_thread() for t in threads)


def test_cancel_stops_the_run_and_gives_no_result(qtbot, phantom, volume):
    engine = FakeEngine(phantom_result(phantom), steps=500, step_s=0.01)
    ctl = AnalysisController(engine_factory=engine)
    finished = []
    ctl.analysis_finished.connect(finished.append)
    ctl.start(volume, CARD)
    qtbot.waitSignal(ctl.analysis_progressed, timeout=5_000).wait()
    with qtbot.waitSignal(ctl.analysis_cancelled, timeout=5_000):
        ctl.cancel()
    assert not finished and not ctl.is_running()


def test_second_analyze_while_running_is_refused(qtbot, phantom, volume):
    ctl = AnalysisController(engine_factory=FakeEngine(phantom_result(phantom), steps=300))
    ctl.start(volume, CARD)
    with qtbot.waitSignal(ctl.analysis_refused, timeout=1_000) as refused:
        assert not ctl.start(volume, CARD)
    assert "still running" in refused.args[0]
    assert ctl.shutdown(5_000) and not ctl.is_running()


def test_engine_error_becomes_a_message(qtbot, phantom, volume):
    from inference.weights import WeightsError

    err = WeightsError("weights hash mismatch in model.safetensors")
    ctl = AnalysisController(engine_factory=FakeEngine(None, error=err))
    with qtbot.waitSignal(ctl.analysis_failed, timeout=10_000) as failed:
        ctl.start(volume, CARD)
    assert failed.args[0] == (
        "Analysis with Fake segmenter failed: weights hash mismatch in model.safetensors"
    )
    # The controller is free again: a new run starts.
    ctl._engine_factory = FakeEngine(phantom_result(phantom))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        assert ctl.start(volume, CARD)


def test_cancelled_exception_from_engine_is_not_a_failure(qtbot, volume):
    ctl = AnalysisController(engine_factory=FakeEngine(None, error=Cancelled("stop")))
    with qtbot.waitSignal(ctl.analysis_cancelled, timeout=10_000):
        ctl.start(volume, CARD)


def test_shutdown_cancels_a_running_analysis_within_bound(qtbot, phantom, volume):
    ctl = AnalysisController(engine_factory=FakeEngine(phantom_result(phantom), steps=10_000))
    ctl.start(volume, CARD)
    assert ctl.shutdown(5_000)
    assert not ctl.is_running()


def test_volume_without_uid_is_keyed_by_its_pixels(phantom):
    a = Volume(phantom.hu, spacing=phantom.spacing)
    b = Volume(phantom.hu.copy(), spacing=phantom.spacing)
    assert volume_key(a) == volume_key(b) and volume_key(a).startswith("pixels-")


def test_clicking_a_finding_emits_it_and_intended_use_is_shown(qtbot, phantom, volume):
    ctl = AnalysisController(engine_factory=FakeEngine(phantom_result(phantom)))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000) as blocker:
        ctl.start(volume, CARD)
    outcome = blocker.args[0]
    panel = FindingsPanel()
    qtbot.addWidget(panel)
    panel.add_run(outcome.record, outcome.summary)
    assert "not for diagnosis" in panel.intended_use.text()
    assert not panel.intended_use.isHidden()
    top = panel.tree.topLevelItem(0)
    texts = [top.child(i).text(0) for i in range(top.childCount())]
    assert any(t.startswith("lung: ") and "mL" in t for t in texts)
    target = outcome.summary.findings[0]
    row = next(
        top.child(i) for i in range(top.childCount()) if top.child(i).text(0) == target.describe()
    )
    with qtbot.waitSignal(panel.finding_activated, timeout=1_000) as clicked:
        panel.tree.itemClicked.emit(row, 0)
    assert clicked.args[0] == target


def test_model_menu_preselects_and_card_shows_training_and_metrics(qtbot):
    other = replace(CARD, id="other", name="Other")
    menu = ModelMenu()
    menu.set_models([other, CARD], preferred=CARD)
    assert menu.current() is CARD
    checked = [a.text() for a in menu.actions() if a.isCheckable() and a.isChecked()]
    assert checked == ["Fake segmenter 1.0.0"]
    with qtbot.waitSignal(menu.model_chosen, timeout=1_000):
        menu.choose(other)
    assert menu.current() is other
    page = card_text(CARD)
    assert "Synthetic phantoms, seeds 0-39" in page and "dice_nodule" in page
    assert "not for diagnosis" in page
    dialog = menu.show_card(CARD)
    qtbot.addWidget(dialog)
    assert "Intended use" in dialog.browser.toPlainText()


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="needs per-thread nice")
def test_model_runs_at_lower_cpu_priority_than_the_ui_thread(qtbot, phantom, volume):
    import os

    seen = []

    class NiceProbe(FakeEngine):
        def run(self, *args, **kwargs):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().run(*args, **kwargs)

    ctl = AnalysisController(engine_factory=NiceProbe(phantom_result(phantom)))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        ctl.start(volume, CARD)
    ui_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen and seen[0] > ui_nice
    # Relative to the UI thread, whatever niceness the process started with.
    assert seen[0] == min(MAX_NICE, ui_nice + WORKER_NICE)


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="needs per-thread nice")
def test_engine_is_loaded_and_run_below_the_ui_priority(qtbot, phantom, volume):
    # Loading imports torch: at the UI's priority it took half of the process's CPU from the
    # UI thread; two steps below, the UI gets the core first (see viewer.engine_warm_up).
    import os

    seen: dict[str, int] = {}

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    class NiceProbe(FakeEngine):
        def __call__(self, device: str) -> FakeEngine:
            seen["load"] = nice()
            return super().__call__(device)

        def run(self, *args, **kwargs):
            seen["run"] = nice()
            return super().run(*args, **kwargs)

    ctl = AnalysisController(engine_factory=NiceProbe(phantom_result(phantom)))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        ctl.start(volume, CARD)
    assert seen["load"] == min(MAX_NICE, nice() + WORKER_NICE)
    assert seen["run"] == min(MAX_NICE, nice() + WORKER_NICE)


def test_model_runs_with_short_thread_switches_and_the_interval_comes_back(qtbot, phantom, volume):
    import sys

    from viewer.engine_warm_up import SWITCH_INTERVAL_S

    interval = sys.getswitchinterval()
    seen: list[float] = []

    class SwitchProbe(FakeEngine):
        def run(self, *args, **kwargs):
            seen.append(sys.getswitchinterval())
            return super().run(*args, **kwargs)

    ctl = AnalysisController(engine_factory=SwitchProbe(phantom_result(phantom)))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        ctl.start(volume, CARD)
    qtbot.waitUntil(lambda: sys.getswitchinterval() == interval)
    assert seen == [min(interval, SWITCH_INTERVAL_S)]


NICE_SCRIPT = """
import os, threading
from viewer.engine_warm_up import lower_thread_priority, thread_nice
os.nice(3)  # as if RadLens itself were started with `nice -n 3` (or more)
ui = thread_nice()
seen = []
def work():
    lower_thread_priority(ui)
    seen.append(thread_nice())
t = threading.Thread(target=work)
t.start()
t.join()
print(ui, seen[0])
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="needs per-thread nice")
def test_analysis_stays_below_the_ui_thread_when_radlens_runs_under_nice(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run(
        [sys.executable, "-c", NICE_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    ui, worker = map(int, out.stdout.split())
    assert ui >= 3 and worker > ui and worker == min(MAX_NICE, ui + WORKER_NICE)


def test_opening_a_series_and_listing_models_does_not_load_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from viewer.ui.main_window import MainWindow\n"
        "from viewer.study.volume import Volume\n"
        "w = MainWindow()\n"
        "w.state.set_volume(Volume(np.zeros((4, 8, 8), np.int16), modality='CT'))\n"
        "assert w.analyze.wait_for_models()\n"
        "print(len(w.analyze.menu.actions()), 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out[-1] == "False"


def test_out_of_memory_is_said_plainly(qtbot, volume):
    ctl = AnalysisController(engine_factory=FakeEngine(None, error=MemoryError()))
    with qtbot.waitSignal(ctl.analysis_failed, timeout=10_000) as failed:
        ctl.start(volume, CARD)
    assert failed.args[0] == (
        "Analysis with Fake segmenter failed: not enough memory to run it on this machine"
    )


def test_progress_steps_within_a_stage_are_throttled(qtbot, phantom, volume):
    # 400 windows in ~0.4 s: without throttling, 400 queued repaints of the progress bar.
    engine = FakeEngine(phantom_result(phantom), steps=400, step_s=0.001)
    ctl = AnalysisController(engine_factory=engine)
    seen: list[str] = []
    ctl.analysis_progressed.connect(lambda _f, s: seen.append(s))
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        ctl.start(volume, CARD)
    windows = [s for s in seen if s.startswith("window ")]
    assert windows[0] == "window 1 of 400" and len(windows) < 100
    assert seen[-1] == "listing findings"
