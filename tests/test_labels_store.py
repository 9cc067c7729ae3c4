"""LabelStore: autosave location, journal + snapshot restore, torn lines, geometry checks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from radlens_core.series import series_key
from viewer.labels.journal import frame, journal_records, read_manifest
from viewer.labels.labelmap import disk_mask
from viewer.labels.model import Box, Point
from viewer.labels.store import LabelStore, StoreError, legacy_store_key, store_dir
from viewer.study.volume import Volume


def _volume(uid: str = "1.2.826.0.1.3680043.8.498.1", shape=(6, 24, 24)) -> Volume:
    return Volume(np.zeros(shape, np.int16), series_uid=uid, modality="CT")


def test_store_lives_in_user_data_folder_under_the_one_series_key(_isolated_user_data):
    vol = _volume()
    with LabelStore.open(vol) as store:
        assert store.folder.parent.parent == _isolated_user_data
        assert store.folder == _isolated_user_data / "labels" / series_key(vol.series_uid)
        assert store.folder == store_dir(vol.series_uid)


def test_a_uid_that_is_no_file_name_is_stored_under_its_hash(_isolated_user_data):
    vol = _volume(uid="sha256:ab/cd ef")
    with LabelStore.open(vol) as store:
        assert store.folder == _isolated_user_data / "labels" / series_key(vol.series_uid)
        assert vol.series_uid not in store.folder.name and "/" not in store.folder.name


def test_a_store_under_its_legacy_hashed_name_moves_once_and_keeps_its_labels(
    _isolated_user_data,
):
    vol = _volume()
    with LabelStore.open(vol) as store:
        store.document.add(Point(1, zyx=(1, 2, 3)))
        store.flush()
        new = store.folder
    legacy = _isolated_user_data / "labels" / legacy_store_key(vol.series_uid)
    assert legacy.name != new.name and legacy.name.isalnum() and len(legacy.name) == 32
    new.rename(legacy)  # the layout of an existing user's data
    with LabelStore.open(vol) as store:
        assert store.folder == new and not legacy.exists()
        assert [a.zyx for a in store.document.annotations.values()] == [(1.0, 2.0, 3.0)]
    # A legacy folder reappearing beside an existing store is left alone, never merged.
    legacy.mkdir()
    assert store_dir(vol.series_uid) == new and legacy.is_dir()


def test_edits_are_journalled_within_two_seconds_without_flush():
    vol = _volume()
    store = LabelStore.open(vol)
    try:
        store.document.add(Point(1, zyx=(1, 2, 3)))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not journal_records(store.folder):
            time.sleep(0.05)
        line = journal_records(store.folder)[0]
        assert line["edit"]["after"]["kind"] == "Point"
    finally:
        store.close()


def test_reopen_restores_annotations_labelmap_and_label_set():
    vol = _volume()
    with LabelStore.open(vol) as store:
        doc = store.document
        box = doc.add(Box(2, corners=(1, 2, 3, 4), z=1))
        doc.paint(2, disk_mask((24, 24), (10, 10), 3), 2)
        doc.set_label_set(doc.label_set.add("vessel", "#00ff00"))
        expected = doc.labelmap.array.copy()
    with LabelStore.open(vol) as again:
        assert again.document.get(box.id) == box
        assert np.array_equal(again.document.labelmap.array, expected)
        assert again.document.label_set.by_name("vessel").index == 4


def test_journal_replayed_over_snapshot_and_torn_last_line_ignored():
    vol = _volume()
    store = LabelStore.open(vol, compact_every=3)
    doc = store.document
    ids = [doc.add(Point(1, zyx=(i, 1, 1))).id for i in range(5)]  # snapshot after 3, 2 in journal
    store.flush()
    assert read_manifest(store.folder)["seq"] == 3  # the snapshot
    assert len(journal_records(store.folder)) == 2
    # Simulate a crash: no close(); the process died mid-record.
    store._abandon()
    journal = store.folder / read_manifest(store.folder)["journal"]
    with open(journal, "ab") as f:
        f.write(frame(b'{"seq": 99, "edit": {"type": "annotation"}}')[:30])
    with LabelStore.open(vol) as again:
        assert list(again.document.annotations) == ids
        assert again.recovered_edits == 2


def test_undo_is_journalled_as_an_edit():
    vol = _volume()
    with LabelStore.open(vol) as store:
        store.document.add(Point(1, zyx=(1, 1, 1)))
        store.document.undo()
        store.flush()
    with LabelStore.open(vol) as again:
        assert again.document.annotations == {}


def test_store_of_another_shape_is_refused_not_overwritten():
    with LabelStore.open(_volume()) as store:
        store.document.add(Point(1, zyx=(1, 1, 1)))
    with pytest.raises(StoreError, match=r"\(6, 24, 24\) series"):
        LabelStore.open(_volume(shape=(5, 24, 24)))


def test_series_without_uid_is_a_clear_error():
    with pytest.raises(StoreError, match="no SeriesInstanceUID"):
        LabelStore.open(_volume(uid=""))


def test_second_writer_is_refused_but_a_reader_sees_the_journalled_state():
    vol = _volume()
    with LabelStore.open(vol) as store:
        p = store.document.add(Point(1, zyx=(1, 1, 1)))
        with pytest.raises(StoreError, match="open in another RadLens window"):
            LabelStore.open(vol)
        store.flush()
        assert LabelStore.read(vol).annotations == {p.id: p}
    with LabelStore.open(vol) as again:  # the lock went with close()
        assert p.id in again.document.annotations
