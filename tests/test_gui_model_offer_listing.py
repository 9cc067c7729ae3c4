"""Which models fit a series is listed on a worker when it opens: the window does not wait for
the registry (its first listing imports it and hashes every package's weights)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtWidgets import QMainWindow

from tests.analysis_fakes import CARD, FakeEngine, phantom_result
from viewer.labels.results import ResultStore
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisController
from viewer.ui.analyze_feature import AnalyzeFeature
from viewer.ui.feature import WindowServices
from viewer.ui.model_offer import admitted_offer
from viewer.ui.state import ViewerState

pytestmark = pytest.mark.gui

OTHER = replace(CARD, id="other-seg", name="Other segmenter")


class _Window(QMainWindow):
    def __init__(self, models, engine=None, store=None) -> None:
        super().__init__()
        self.state = ViewerState(self)
        self.services = WindowServices(self, self.state)
        ctl = AnalysisController(engine_factory=engine, store=store)
        self.analyze = AnalyzeFeature(self.services, controller=ctl, store=store, models=models)


def _volume(uid: str) -> Volume:
    return Volume(np.zeros((4, 16, 16), np.int16), modality="CT", series_uid=uid)


def test_models_are_listed_on_a_worker_and_the_series_opens_without_waiting(qtbot):
    release = threading.Event()
    listed_on: list[threading.Thread] = []

    def models(volume):
        listed_on.append(threading.current_thread())
        release.wait(10)  # a slow registry (first import, hashing)
        return admitted_offer([CARD])

    win = _Window(models)
    qtbot.addWidget(win)
    win.state.set_volume(_volume("1.2.3.40"))
    # set_volume returned while the listing still waits: it did not run on this thread.
    assert win.analyze.listing_models and not release.is_set()
    release.set()
    with qtbot.waitSignal(win.analyze.models_listed, timeout=10_000) as listed:
        pass
    assert listed.args[0].best is CARD and win.analyze.menu.current() is CARD
    assert listed_on and threading.main_thread() not in listed_on
    assert [name for name, _ in win.analyze.listing_threads] == ["radlens-model-offer"]
    assert win.analyze.listing_threads[0][1] != threading.main_thread().ident
    assert not win.analyze.listing_models and win.analyze.menu.isEnabled()


def test_only_the_offer_of_the_series_still_open_is_shown(qtbot):
    first_may_end = threading.Event()

    def models(volume):
        if volume.series_uid == "1.2.3.41":
            first_may_end.wait(10)
            return admitted_offer([OTHER])
        return admitted_offer([CARD])

    win = _Window(models)
    qtbot.addWidget(win)
    win.state.set_volume(_volume("1.2.3.41"))
    win.state.set_volume(_volume("1.2.3.42"))  # opened before the first list came
    first_may_end.set()
    assert win.analyze.wait_for_models(10)
    qtbot.wait(50)  # the first listing's late answer, if any, is delivered and ignored
    assert [c.id for c in win.analyze.offer.admitted()] == [CARD.id]


def test_analyze_clicked_while_models_are_listed_waits_for_the_list_and_runs(qtbot, tmp_path):
    from phantoms.chest import chest_ct

    ct = chest_ct((16, 32, 32), seed=2, n_nodules=1)
    release = threading.Event()

    def models(volume):
        release.wait(10)
        return admitted_offer([CARD])

    engine = FakeEngine(phantom_result(ct))
    win = _Window(models, engine, ResultStore(tmp_path / "results"))
    qtbot.addWidget(win)
    win.state.set_volume(Volume(ct.hu, spacing=ct.spacing, modality="CT", series_uid="1.2.3.43"))
    threading.Timer(0.2, release.set).start()
    with qtbot.waitSignal(win.analyze.controller.analysis_finished, timeout=10_000):
        assert win.analyze.analyze()
    assert engine.calls and win.analyze.records()[0].model_id == CARD.id


def test_a_model_chosen_while_the_list_is_made_stays_chosen(qtbot):
    release = threading.Event()

    def models(volume):
        release.wait(10)
        return admitted_offer([CARD, OTHER])

    win = _Window(models)
    qtbot.addWidget(win)
    win.state.set_volume(_volume("1.2.3.44"))
    win.analyze.menu.choose(OTHER)  # "Use for Analyze" while the list is being made
    release.set()
    assert win.analyze.wait_for_models(10)
    assert win.analyze.offer.best is CARD and win.analyze.menu.current() is OTHER


def test_a_failing_listing_offers_nothing_and_says_why(qtbot):
    def models(volume):
        raise OSError("models folder unreadable")

    win = _Window(models)
    qtbot.addWidget(win)
    win.state.set_volume(_volume("1.2.3.45"))
    assert win.analyze.wait_for_models(10)
    assert win.analyze.offer.choices == () and win.analyze.offer.facts is not None
    assert not win.analyze.analyze()
    assert "No installed model fits" in win.analyze.last_message
