"""Analyze in a window: layers, findings, the window's one progress bar and Cancel, stored
results coming back, 2D images (pytest-qt)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMainWindow, QSplitter

from phantoms.chest import chest_ct
from tests.analysis_fakes import CARD, FakeEngine, phantom_result
from viewer.labels.results import ResultStore
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisController
from viewer.ui.analyze_feature import AnalyzeFeature
from viewer.ui.feature import WindowServices
from viewer.ui.model_offer import admitted_offer
from viewer.ui.slice_view import SliceView
from viewer.ui.state import ViewerState

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def phantom():
    return chest_ct((32, 64, 64), seed=3, n_nodules=2)


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
            self.services, controller=ctl, store=store, models=lambda v: admitted_offer(cards)
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
        rgba = overlay.drawn_rgba()  # (rows, cols, 4) as drawn
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
    filled = int((overlay.drawn_rgba()[..., 3] > 0).sum())
    outline.setChecked(True)
    assert win.state.layers.get("Fake segmenter: mask").outline
    assert 0 < int((overlay.drawn_rgba()[..., 3] > 0).sum()) < filled
    heat = rows["Fake segmenter: heat map"]
    heat.threshold.setValue(95)  # above the phantom's 0.9: nothing left to draw
    assert win.state.layers.get("Fake segmenter: heat map").threshold == pytest.approx(0.95)
    win.state.layers.update("Fake segmenter: heat map", visible=True)
    assert int((view.overlays["Fake segmenter: heat map"].drawn_rgba()[..., 3] > 0).sum()) == 0
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
    heat_img = view.overlays["CXR: heat map"].drawn_rgba()
    cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
    assert heat_img[cy, cx, 3] == 255 and heat_img[2, 2, 3] == 0
    (rect,) = view.overlays["CXR: boxes"].rects
    assert rect.contains(cx + 0.5, cy + 0.5)  # scene mm = pixels here (1 mm spacing)
    kinds = [f.kind for f in win.analyze.findings.findings()]
    assert kinds == ["classification", "box"]


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


def test_a_finished_run_is_shown_a_layer_per_event_loop_turn_before_it_is_announced(
    qtbot, phantom, tmp_path
):
    win, _ = _open(qtbot, phantom, tmp_path)
    turns = [0]

    def tick():  # one increment per event-loop turn while the result is being shown
        turns[0] += 1
        if turns[0] < 1000:
            QTimer.singleShot(0, tick)

    added: list[tuple[str, int]] = []
    win.state.layers.subscribe(
        lambda event, layer: added.append((layer.name, turns[0])) if event == "added" else None
    )
    ctl = win.analyze.controller
    at_finish: list[list[str]] = []
    ctl.analysis_finished.connect(lambda _o: at_finish.append(win.state.layers.names()))
    ctl._on_succeeded = _tick_first(ctl._on_succeeded, tick)
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        assert win.analyze.analyze()
        assert not ctl.is_presenting()
    names = ["Fake segmenter: mask", "Fake segmenter: heat map", "Fake segmenter: boxes"]
    assert [n for n, _ in added] == names
    # Each layer came in its own turn: the window drew and handled input in between.
    assert len({t for _, t in added}) == 3
    # analysis_finished comes once everything is shown (listeners see the whole result).
    assert at_finish == [names] and win.analyze.findings.runs()
    assert not ctl.is_presenting()


def _tick_first(on_succeeded, tick):
    """Start counting event-loop turns when the run's result reaches the UI thread."""

    def wrapped(outcome):
        tick()
        on_succeeded(outcome)

    return wrapped


def test_a_series_closed_while_its_result_is_shown_stops_the_display_and_still_finishes(
    qtbot, phantom, tmp_path
):
    win, vol = _open(qtbot, phantom, tmp_path)
    ctl = win.analyze.controller

    def close_on_first_layer(event, layer):
        if event == "added" and win.state.volume is vol:
            win.state.set_volume(None)

    win.state.layers.subscribe(close_on_first_layer)
    with qtbot.waitSignal(ctl.analysis_finished, timeout=10_000):
        win.analyze.analyze()
    qtbot.wait(20)
    assert win.state.layers.names() == [] and not win.analyze.findings.runs()
    assert not ctl.is_presenting()
    # The run was stored: reopening the series shows all of it.
    win.state.layers.unsubscribe(close_on_first_layer)
    win.state.set_volume(vol)
    assert len(win.state.layers) == 3
