"""The label browser for results with many labels: search, show/hide, colour, volume per label."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QMainWindow, QSplitter

from radlens_core.results import LabelClass, LabelMap
from tests.analysis_fakes import CARD, FakeEngine, analysis_result
from viewer.labels.results import ResultStore
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisController
from viewer.ui.analyze_feature import AnalyzeFeature
from viewer.ui.feature import WindowServices
from viewer.ui.model_offer import admitted_offer
from viewer.ui.slice_view import SliceView
from viewer.ui.state import ViewerState

pytestmark = pytest.mark.gui

N_LABELS = 40
SPACING = (1.0, 1.0, 2.0)  # x, y, z mm: a voxel is 2 uL


def many_labels(shape=(8, 40, 40)) -> tuple[np.ndarray, tuple[LabelClass, ...]]:
    """A label map with N_LABELS organ-like labels: label k fills k voxels of row k (label 40
    is in the table but absent from the map)."""
    names = ["liver", "spleen", "kidney_left", "kidney_right", "aorta", "vertebra_L1"]
    names += [f"structure_{k:02d}" for k in range(len(names) + 1, N_LABELS + 1)]
    table = tuple(
        LabelClass(
            k, names[k - 1], f"#{(k * 37) % 256:02x}{(k * 91) % 256:02x}{(k * 53) % 256:02x}"
        )
        for k in range(1, N_LABELS + 1)
    )
    lm = np.zeros(shape, np.uint8)
    for k in range(1, N_LABELS):
        lm[4, k - 1, :k] = k
    return lm, table


class _Window(QMainWindow):
    def __init__(self, engine, store) -> None:
        super().__init__()
        self.state = ViewerState(self)
        split = QSplitter(self)
        self.views = {p: SliceView(self.state, p, split) for p in ("axial",)}
        self.setCentralWidget(split)
        self.services = WindowServices(self, self.state)
        self.analyze = AnalyzeFeature(
            self.services,
            controller=AnalysisController(engine_factory=engine, store=store),
            store=store,
            models=lambda v: admitted_offer([CARD]),
        )


def _analysed(qtbot, tmp_path, label_map: LabelMap, shape=(8, 40, 40)):
    engine = FakeEngine(analysis_result(label_map=label_map))
    win = _Window(engine, ResultStore(tmp_path / "results"))
    qtbot.addWidget(win)
    win.resize(1000, 700)
    win.show()
    vol = Volume(np.zeros(shape, np.int16), spacing=SPACING, modality="CT", series_uid="7.7")
    win.state.set_volume(vol)
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        assert win.analyze.analyze()
    return win


def test_label_browser_searches_hides_recolours_and_lists_volumes_of_40_labels(qtbot, tmp_path):
    lm, table = many_labels()
    win = _analysed(qtbot, tmp_path, LabelMap(lm, table))  # no volumes_ml: counted
    browser = win.analyze.labels
    assert browser.isVisible() and len(browser.rows) == N_LABELS
    assert "40 labels, 39 found" in browser.title.text()
    # Volumes per label: label k has k voxels of 2 uL each; the last one is not in the map.
    assert browser.rows[10].text(1) == "0.020 mL"
    assert browser.rows[N_LABELS].text(1) == "not found"
    # Search narrows the list.
    browser.search.setText("kidney")
    assert browser.listed() == ["kidney_left", "kidney_right"]
    browser.search.setText("")
    assert len(browser.listed()) == N_LABELS
    # Hiding a label removes it from the drawing, on every plane, and nothing else.
    layer_name = "Fake segmenter: mask"
    overlay = win.views["axial"].overlays[layer_name]
    win.state.set_slice("axial", 4)
    geom = win.views["axial"].geometry_
    drawn = overlay.drawn_rgba()[..., 3] > 0
    k = 12  # row k-1 on slice 4, columns 0..k-1
    _, row, col = geom.from_voxel((4, k - 1, 0))
    assert drawn[int(round(row)), int(round(col))]
    browser.set_label_visible(k, False)
    layer = win.state.layers.get(layer_name)
    assert layer.hidden_labels == frozenset({k})
    assert overlay.drawn_rgba()[int(round(row)), int(round(col)), 3] == 0
    assert int((overlay.drawn_rgba()[..., 3] > 0).sum()) == int(drawn.sum()) - k
    # Hide all of a search, show them again.
    browser.search.setText("structure_3")
    browser.hide_all.click()
    assert win.state.layers.get(layer_name).hidden_labels == frozenset({k, *range(30, 40)})
    browser.show_all.click()
    assert win.state.layers.get(layer_name).hidden_labels == frozenset({k})
    # A new colour for one label is what the views draw.
    browser.set_label_colour(k, (1, 2, 3))
    browser.set_label_visible(k, True)
    assert tuple(overlay.drawn_rgba()[int(round(row)), int(round(col)), :3]) == (1, 2, 3)


def test_label_browser_uses_the_engines_volumes_and_works_for_two_labels(qtbot, tmp_path):
    lm = np.zeros((8, 40, 40), np.uint8)
    lm[2:6, 5:20, 5:20] = 1
    lm[3, 30:33, 30:33] = 2
    table = (LabelClass(1, "lung", "#4fc3f7"), LabelClass(2, "nodule", "#ff7043"))
    win = _analysed(qtbot, tmp_path, LabelMap(lm, table, {"lung": 1234.5, "nodule": 0.25}))
    browser = win.analyze.labels
    assert [browser.rows[i].text(0) for i in (1, 2)] == ["lung", "nodule"]
    assert browser.rows[1].text(1) == "1,234.5 mL" and browser.rows[2].text(1) == "0.2 mL"
    win.state.layers.remove("Fake segmenter: mask")
    qtbot.wait(20)
    assert not browser.isVisible()
