"""A label store that cannot save when its series closes: said in a sentence, kept, retried."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.labels.model import Point
from viewer.labels.store import LabelStore, StoreError
from viewer.study.volume import Volume
from viewer.ui.state import ViewerState
from viewer.ui.tools.controller import AnnotationController

pytestmark = pytest.mark.gui


def _volume(uid: str) -> Volume:
    return Volume(np.zeros((4, 16, 16), np.int16), series_uid=uid, modality="CT")


def test_switching_series_while_the_disk_fails_keeps_the_store_and_says_so(qtbot, monkeypatch):
    state = ViewerState()
    ctrl = AnnotationController(state)
    messages: list[str] = []
    ctrl.message_posted.connect(messages.append)
    first = _volume("1.2.826.0.1.3680043.8.498.71")
    state.set_volume(first)
    assert ctrl.store is not None and ctrl.document is not None
    ctrl.document.add(Point(1, zyx=(1, 2, 3)))
    failing = ctrl.store
    real_close = LabelStore.close
    disk_full = [True]

    def close(self):
        if self is failing and disk_full[0]:
            raise StoreError(f"{self.folder}: the disk is full; 1 label edit is not saved yet")
        return real_close(self)

    monkeypatch.setattr(LabelStore, "close", close)
    state.set_volume(_volume("1.2.826.0.1.3680043.8.498.72"))  # must not raise out of the slot
    assert any("not saved yet" in m and "the disk is full" in m for m in messages)
    assert failing in ctrl._unsaved_stores and ctrl.store is not failing

    disk_full[0] = False  # space is back: the next series change closes it for good
    state.set_volume(_volume("1.2.826.0.1.3680043.8.498.73"))
    assert failing not in ctrl._unsaved_stores
    with LabelStore.open(first) as again:
        assert len(again.document.annotations) == 1
    ctrl.close()
