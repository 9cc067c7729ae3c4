"""Analyze in the viewer: the worker bridge, the findings panel and the model picker (pytest-qt)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from inference.card import ModelCard
from phantoms.chest import chest_ct
from tests.analysis_fakes import Cancelled, FakeEngine, phantom_result
from tests.inference_factory import SEG_KW
from viewer.labels.results import ResultStore
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisController, AnalysisOutcome, volume_key
from viewer.ui.engine_warm_up import MAX_NICE, WORKER_NICE
from viewer.ui.panels.findings import FindingsPanel
from viewer.ui.panels.model_info import ModelMenu, card_html

pytestmark = pytest.mark.gui

CARD = ModelCard.from_dict(
    {
        "id": "fake-seg",
        "name": "Fake segmenter",
        "version": "1.0.0",
        "task": "segmentation",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "body_part": "CHEST",
        "labels": [{"index": 1, "name": "lung", "color": "#4fc3f7"}],
        "network": {
            "architecture": "monai.UNet",
            "kwargs": SEG_KW,
            "weights": "model.safetensors",
            "format": "safetensors",
        },
        "files": {"model.safetensors": "0" * 64},
        "training": {"data": "Synthetic phantoms, seeds 0-39", "script": "python -m x"},
        "metrics": {"dice_nodule": 0.81},
        "intended_use": "Demonstration only; not for diagnosis.",
    },
    "fake-seg",
)


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
    page = card_html(CARD)
    assert "Synthetic phantoms, seeds 0-39" in page and "dice_nodule" in page
    assert "not for diagnosis" in page
    dialog = menu.show_card(CARD)
    qtbot.addWidget(dialog)
    assert "Intended use" in dialog.browser.toPlainText()


# ---- the feature in a window ---------------------------------------------------------------
from PySide6.QtWidgets import QMainWindow, QSplitter  # noqa: E402

from viewer.ui.analyze_feature import AnalyzeFeature  # noqa: E402
from viewer.ui.feature import WindowServices  # noqa: E402
from viewer.ui.slice_view import SliceView  # noqa: E402
from viewer.ui.state import ViewerState  # noqa: E402


class _Window(QMainWindow):
    """Three planes of a ViewerState plus the Analyze feature (what main_window wires)."""

    def __init__(self, engine, store, cards=(CARD,)) -> None:
        super().__init__()
        self.state = ViewerState(self)
        split = QSplitter(self)
        self.views = {p: SliceView(self.state, p, split) for p in ("axial", "coronal", "sagittal")}
        self.setCentralWidget(split)
        ctl = AnalysisController(engine_factory=engine, store=store)
        self.services = WindowServices(self, self.state)
        self.analyze = AnalyzeFeature(
            self.services, controller=ctl, store=store, models=lambda v: (list(cards), cards[0])
        )
        self.resize(900, 400)


def _open(qtbot, phantom, tmp_path, engine=None, store=None):
    store = store or ResultStore(tmp_path / "results")
    win = _Window(engine or FakeEngine(phantom_result(phantom)), store)
    qtbot.addWidget(win)
    win.show()
    vol = Volume(phantom.hu, spacing=phantom.spacing, modality="CT", series_uid="1.2.3.9")
    win.state.set_volume(vol)
    return win, vol


def _box_rects(view) -> int:
    return sum(len(o.rects) for o in view.overlays.values() if hasattr(o, "rects"))


def test_analyze_adds_mask_heat_and_box_layers_over_the_nodules(qtbot, tmp_path, phantom):
    win, vol = _open(qtbot, phantom, tmp_path)
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        assert win.analyze.analyze()
        bar = win.services.activity  # the window's one progress bar and Cancel
        assert bar.progress.isVisible() and bar.cancel_button.isVisible()
    assert not bar.progress.isVisible()
    names = win.state.layers.names()
    assert names == ["Fake segmenter: mask", "Fake segmenter: heat map", "Fake segmenter: boxes"]
    mask = win.state.layers.get("Fake segmenter: mask")
    assert mask.colours[2] == (0xFF, 0x70, 0x43)  # the card's nodule colour
    n = phantom.nodules[0]
    centre = tuple(int(round(c)) for c in n.center_zyx)
    assert mask.data[centre] == 2
    # Jump to the first nodule: every plane draws a box there and the mask pixel is coloured.
    finding = next(
        f
        for f in win.analyze.findings.findings()
        if f.kind == "box" and np.linalg.norm(np.subtract(f.centre_zyx, n.center_zyx)) < 1
    )
    win.analyze.findings.activate(finding)
    assert np.allclose(win.state.cursor, np.clip(finding.centre_zyx, 0, np.array(vol.shape) - 1))
    for view in win.views.values():
        assert _box_rects(view) >= 1, view.plane
        overlay = view.overlays["Fake segmenter: mask"]
        g = view.geometry_
        _, row, col = g.from_voxel(centre)
        rgba = overlay.image  # (rows, cols, 4) as drawn
        assert tuple(rgba[int(round(row)), int(round(col)), :3]) == (0xFF, 0x70, 0x43)
    assert "ran on the CPU" in win.analyze.last_message
    assert "no GPU" in win.analyze.last_message


def test_results_come_back_when_the_series_is_reopened(qtbot, tmp_path, phantom):
    store = ResultStore(tmp_path / "results")
    win, vol = _open(qtbot, phantom, tmp_path, store=store)
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        win.analyze.analyze()
    win.state.set_volume(None)
    assert win.state.layers.names() == [] and not win.analyze.findings.findings()
    # A new window (an app restart) with the same series shows the stored layers again.
    win2, _ = _open(qtbot, phantom, tmp_path, store=ResultStore(tmp_path / "results"))
    assert len(win2.state.layers) == 3
    assert len(win2.analyze.findings.findings()) == 4
    assert "not for diagnosis" in win2.analyze.findings.intended_use.text()


def test_removed_layer_stays_removed_after_reopening(qtbot, tmp_path, phantom):
    win, vol = _open(qtbot, phantom, tmp_path)
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        win.analyze.analyze()
    win.state.layers.remove("Fake segmenter: boxes")
    qtbot.wait(20)
    assert all(f.kind != "box" for f in win.analyze.findings.findings())
    win2, _ = _open(qtbot, phantom, tmp_path, store=ResultStore(tmp_path / "results"))
    assert "Fake segmenter: boxes" not in win2.state.layers.names()
    assert "Fake segmenter: mask" in win2.state.layers.names()


def test_engine_failure_shows_a_message_and_the_study_stays_usable(qtbot, tmp_path, phantom):
    class EngineError(RuntimeError):
        pass

    engine = FakeEngine(None, error=EngineError("model.safetensors: SHA-256 mismatch"))
    win, vol = _open(qtbot, phantom, tmp_path, engine=engine)
    with qtbot.waitSignal(win.analyze.controller.analysis_failed, timeout=10_000):
        win.analyze.analyze()
    assert "SHA-256 mismatch" in win.analyze.message_box.text()
    assert win.state.volume is vol and win.state.layers.names() == []
    win.state.step_slice("axial", 3)  # still scrolls
    assert win.views["axial"].index() == vol.shape[0] // 2 + 3


def test_cancel_from_the_status_bar_leaves_no_layers(qtbot, tmp_path, phantom):
    engine = FakeEngine(phantom_result(phantom), steps=1000, step_s=0.01)
    win, _ = _open(qtbot, phantom, tmp_path, engine=engine)
    win.analyze.analyze()
    qtbot.waitSignal(win.analyze.controller.analysis_progressed, timeout=5_000).wait()
    with qtbot.waitSignal(win.analyze.controller.analysis_cancelled, timeout=5_000):
        win.services.activity.cancel_button.click()
    assert win.state.layers.names() == [] and win.analyze.last_message == "Analysis cancelled."


def test_closing_during_a_run_cancels_it(qtbot, tmp_path, phantom):
    engine = FakeEngine(phantom_result(phantom), steps=10_000, step_s=0.01)
    win, _ = _open(qtbot, phantom, tmp_path, engine=engine)
    win.analyze.analyze()
    assert win.analyze.shutdown(5_000)
    assert not win.analyze.controller.is_running()


def test_main_window_has_analyze_and_closing_cancels_a_run(qtbot, phantom):
    from viewer.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    feature = win.analyze
    assert feature.action.shortcut().toString() == "Ctrl+Shift+A"
    assert feature.action in win.actions() and not feature.action.isEnabled()
    engine = FakeEngine(phantom_result(phantom), steps=10_000, step_s=0.01)
    feature.controller._engine_factory = engine
    feature.menu.set_models([CARD], preferred=CARD)
    win.state.set_volume(Volume(phantom.hu, spacing=phantom.spacing, modality="CT"))
    feature.menu.set_models([CARD], preferred=CARD)
    assert feature.action.isEnabled()
    feature.action.trigger()
    assert feature.controller.is_running()
    win.close()
    assert not feature.controller.is_running() and engine.calls


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


NICE_SCRIPT = """
import os, threading
from viewer.ui.engine_warm_up import lower_thread_priority, thread_nice
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


def test_mask_outline_and_heat_threshold_controls_change_the_drawing(qtbot, tmp_path, phantom):
    from PySide6.QtWidgets import QCheckBox

    win, vol = _open(qtbot, phantom, tmp_path)
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        win.analyze.analyze()
    rows = win.analyze.display.rows
    assert set(rows) == {"Fake segmenter: mask", "Fake segmenter: heat map"}
    outline = rows["Fake segmenter: mask"]
    assert isinstance(outline, QCheckBox)
    view = win.views["axial"]
    overlay = view.overlays["Fake segmenter: mask"]
    filled = int((overlay.image[..., 3] > 0).sum())
    outline.setChecked(True)
    assert win.state.layers.get("Fake segmenter: mask").outline
    assert 0 < int((overlay.image[..., 3] > 0).sum()) < filled
    heat = rows["Fake segmenter: heat map"]
    heat.threshold.setValue(95)  # above the phantom's 0.9: nothing left to draw
    assert win.state.layers.get("Fake segmenter: heat map").threshold == pytest.approx(0.95)
    win.state.layers.update("Fake segmenter: heat map", visible=True)
    assert int((view.overlays["Fake segmenter: heat map"].image[..., 3] > 0).sum()) == 0
    win.state.layers.remove("Fake segmenter: heat map")
    qtbot.wait(20)
    assert set(win.analyze.display.rows) == {"Fake segmenter: mask"}


def test_radiograph_heat_map_and_2d_box_are_drawn_on_the_image(qtbot, tmp_path):
    from phantoms.chest import chest_radiograph
    from radlens_core.results import Box
    from tests.analysis_fakes import analysis_result

    xr = chest_radiograph(96, seed=5, nodule=True)
    y0, x0, y1, x1 = xr.box_yx
    heat = np.zeros((96, 96), np.float32)  # a 2D model answers in (y, x)
    heat[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = 1.0
    answer = analysis_result(
        task="classification",
        heat_map=heat,
        boxes=[Box(xr.box_yx, "nodule", 0.9)],
        probabilities={"normal": 0.1, "nodule": 0.9},
    )
    card = replace(CARD, id="cxr", name="CXR", spatial_dims=2)
    engine = FakeEngine(answer)
    store = ResultStore(tmp_path / "r")
    win = _Window(engine, store, cards=(card,))
    qtbot.addWidget(win)
    win.show()
    win.state.set_volume(Volume(xr.image, modality="DX", series_uid="9.9"))
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        win.analyze.analyze()
    assert engine.calls[0][0] == (96, 96)
    view = win.views["axial"]
    heat_img = view.overlays["CXR: heat map"].image
    cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
    assert heat_img[cy, cx, 3] == 255 and heat_img[2, 2, 3] == 0
    (rect,) = view.overlays["CXR: boxes"].rects
    assert rect.contains(cx + 0.5, cy + 0.5)  # scene mm = pixels here (1 mm spacing)
    kinds = [f.kind for f in win.analyze.findings.findings()]
    assert kinds == ["classification", "box"]


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


def test_result_for_a_series_left_during_the_run_waits_for_its_return(qtbot, tmp_path, phantom):
    engine = FakeEngine(phantom_result(phantom), steps=30, step_s=0.01)
    win, first = _open(qtbot, phantom, tmp_path, engine=engine)
    other = Volume(
        phantom.hu[:, ::-1].copy(), spacing=phantom.spacing, modality="CT", series_uid="1.2.3.10"
    )
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        win.analyze.analyze()
        win.state.set_volume(other)
    assert win.state.layers.names() == [] and not win.analyze.findings.findings()
    win.state.set_volume(first)
    assert len(win.state.layers) == 3


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
