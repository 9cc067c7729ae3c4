"""A big model result becomes proposals on a worker thread; the UI thread only applies them."""

from __future__ import annotations

import numpy as np
import pytest

import viewer.ui.tools.install as install
from radlens_core.results import Box, LabelClass
from viewer.labels.result_findings import summarise
from viewer.labels.results import ResultRecord
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisOutcome
from viewer.ui.main_window import MainWindow

pytestmark = pytest.mark.gui


def _volume(uid: str) -> Volume:
    return Volume(np.zeros((6, 20, 24), np.int16), modality="CT", series_uid=uid)


def _outcome(volume: Volume) -> AnalysisOutcome:
    label_map = np.zeros(volume.shape, np.uint8)
    label_map[2, 5:9, 5:9] = 2
    rec = ResultRecord(
        model_id="nodule-seg",
        model_name="Nodule finder",
        model_version="0.2",
        task="segmentation",
        shape=volume.shape,
        label_map=label_map,
        labels=[LabelClass(2, "nodule", "#ff7043")],
        boxes=[Box((1, 5, 5, 3, 9, 9), "nodule", 0.8)],
    )
    return AnalysisOutcome(rec, summarise(rec, volume.spacing), "key", None, volume)


@pytest.fixture
def window(qtbot, monkeypatch):
    monkeypatch.setattr(install, "SYNC_PROPOSAL_VOXELS", 0)  # every map goes to the worker
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_big_result_is_proposed_after_the_worker_maps_it(qtbot, window):
    volume = _volume("1.2.3.40")
    window.state.set_volume(volume)
    ann = window.annotations
    window.analyze.controller.analysis_finished.emit(_outcome(volume))
    assert ann.proposals_pending and ann.controller.document.annotations == {}
    qtbot.waitUntil(lambda: not ann.proposals_pending, timeout=10_000)
    doc = ann.controller.document
    assert sorted(a.kind for a in doc.annotations.values()) == ["Box", "ModelMask"]
    (mask,) = [a for a in doc.annotations.values() if a.kind == "ModelMask"]
    assert (doc.layers[mask.layer].array[2, 5:9, 5:9] == mask.label).all()


def test_result_prepared_for_a_series_the_user_left_is_dropped(qtbot, window):
    first, second = _volume("1.2.3.41"), _volume("1.2.3.42")
    window.state.set_volume(first)
    ann = window.annotations
    window.analyze.controller.analysis_finished.emit(_outcome(first))
    window.state.set_volume(second)
    qtbot.waitUntil(lambda: not ann.proposals_pending, timeout=10_000)
    assert ann.controller.document.annotations == {}
