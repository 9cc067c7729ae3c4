"""The label journal under faults: torn and corrupt records, disk full / read-only / quota /
EIO at every write of an edit session (in process and with SIGKILL), readers racing
compaction in another process, old journals, and private files."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from viewer.labels import journal as jr
from viewer.labels import store as store_module
from viewer.labels.document import Document, LayerEdit, edit_to_dict
from viewer.labels.journal import FILE_MAGIC, frame, journal_records, read_manifest, scan
from viewer.labels.labelmap import disk_mask
from viewer.labels.model import Box, Point
from viewer.labels.store import LabelStore, SaveState, StoreError, failure_sentence, store_dir
from viewer.study.volume import Volume

SHAPE = (6, 24, 24)
REPO = Path(__file__).resolve().parents[1]
needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


def _volume(uid: str = "1.2.826.0.1.3680043.8.498.12") -> Volume:
    return Volume(np.zeros(SHAPE, np.int16), series_uid=uid, modality="CT")


def _layer() -> np.ndarray:
    a = np.zeros(SHAPE, np.uint8)
    a[2:4, 5:10, 5:10] = 1
    return a


def _dab(center: tuple[int, int], r: float) -> np.ndarray:
    return disk_mask(SHAPE[1:], center, r)


#: A scripted edit session: each step makes exactly one journalled edit.
SCRIPT: list[Callable[[Document], object]] = [
    lambda d: d.add(Point(1, id="p1", zyx=(1, 2, 3))),
    lambda d: d.paint(1, _dab((8, 8), 3), 1),
    lambda d: d.add(Box(2, id="b1", corners=(1, 2, 5, 6), z=2)),
    lambda d: d.set_label_set(d.label_set.add("vessel", "#00ff00")),
    lambda d: d.apply(LayerEdit("model:seg@1", None, _layer())),
    lambda d: d.paint(2, _dab((12, 12), 4), 4),
    lambda d: d.remove("p1"),
    lambda d: d.undo(),
    lambda d: d.paint_sphere((3, 16, 16), 2.0, 2, (1.0, 1.0, 1.0)),
    lambda d: d.apply(LayerEdit("model:seg@1", d.layers["model:seg@1"].array, None)),
    lambda d: d.erase(1, _dab((8, 8), 2)),
    lambda d: d.undo(),  # the model layer comes back (its file may be gone by now)
    lambda d: d.add(Point(2, id="p2", zyx=(4, 5, 6))),
    lambda d: d.remove("b1"),
    lambda d: d.paint(5, _dab((4, 20), 3), 3),
    lambda d: d.undo(),
    lambda d: d.redo(),
]


def state(doc: Document) -> Any:
    meta, arrays = doc.to_state()
    annotations = sorted(json.dumps(a, sort_keys=True) for a in meta["annotations"])
    return (
        annotations,
        meta["label_table"],
        meta["layers"],
        {k: v.tobytes() for k, v in arrays.items()},
    )


def expected(steps: int, uid: str) -> Any:
    doc = Document(SHAPE, uid)
    for step in SCRIPT[:steps]:
        step(doc)
    return state(doc)


ATOMIC = {n: getattr(store_module, n) for n in ("atomic_write", "atomic_write_json", "atomic_copy")}


class Faults:
    """Makes every write from the ``fail_at``-th on fail with ``code`` until ``full`` is
    cleared ("space returns"); the write that hits the end of the disk is short (torn)."""

    def __init__(self, fail_at: int, code: int = errno.ENOSPC, on: str = "write") -> None:
        self.fail_at, self.code, self.on = fail_at, code, on
        self.calls = self.failures = 0
        self.full = False

    def _hit(self) -> bool:
        self.calls += 1
        if self.calls == self.fail_at:
            self.full = True
        if self.full:
            self.failures += 1
        return self.full

    def _error(self) -> OSError:
        return OSError(self.code, os.strerror(self.code))

    def write(self, fd: int, data: Any) -> int:
        if self.on == "write" and self._hit():
            if self.failures == 1 and len(data) > 1:
                return os.write(fd, bytes(data[: len(data) // 2]))
            raise self._error()
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.on == "fsync" and self._hit():
            raise self._error()
        os.fsync(fd)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def atomic(*args: Any, **kw: Any) -> Any:
            if self.on == "write" and self._hit():
                raise self._error()
            return fn(*args, **kw)

        return atomic

    def install(self, setattr_: Callable[[Any, str, Any], None]) -> None:
        setattr_(jr, "_write", self.write)
        setattr_(jr, "_fsync", self.fsync)
        for name, fn in ATOMIC.items():
            setattr_(store_module, name, self.wrap(fn))


def run_session(faults: Faults, uid: str, space_returns_after: int = 3) -> tuple[LabelStore, list]:
    """The scripted session under ``faults``; space returns after a few failed writes.
    Answers the store (saved, still open) and every SaveStatus it reported."""
    vol = _volume(uid)
    store = None
    while store is None:
        try:
            store = LabelStore.open(vol, interval=0.005, compact_every=4, retry=0.02)
        except StoreError as exc:
            assert str(store_dir(uid)) in str(exc) and "Errno" not in str(exc)
            faults.full = False
    seen: list = []
    store.status_listeners.append(seen.append)
    for step in SCRIPT:
        step(store.document)
        try:
            store.flush()
        except StoreError as exc:
            assert store.status.state is SaveState.FAILING
            assert str(store.folder) in str(exc) and str(store.folder) in store.status.message
        if faults.failures >= space_returns_after:
            faults.full = False
    faults.full = False
    store.flush()
    assert store.status.state is SaveState.SAVED and store.status.unsaved == 0
    path = store.folder / read_manifest(store.folder)["journal"]
    assert scan(path.read_bytes(), path)[1] == []  # nothing was ever appended after a torn write
    return store, seen


def count_writes(setattr_: Callable[[Any, str, Any], None]) -> int:
    faults = Faults(fail_at=0)
    faults.install(setattr_)
    store, _ = run_session(faults, "1.2.3.count")
    store.close()
    return faults.calls


# ---- framing ----------------------------------------------------------------------------------
def _records(n: int) -> list[bytes]:
    return [json.dumps({"seq": i + 1, "edit": {"i": i}}).encode() for i in range(n)]


def test_a_corrupt_record_in_the_middle_is_skipped_and_every_other_record_kept(tmp_path):
    recs = _records(5)
    framed = [frame(r) for r in recs]
    bad = bytearray(framed[2])
    bad[len(bad) // 2] ^= 0xFF  # one flipped byte inside the payload
    data = FILE_MAGIC + framed[0] + framed[1] + bytes(bad) + framed[3] + framed[4]
    payloads, damage, end = scan(data, tmp_path / "j")
    assert payloads == [recs[0], recs[1], recs[3], recs[4]]
    assert [(d.offset, d.length, d.tail) for d in damage] == [
        (len(FILE_MAGIC) + len(framed[0]) + len(framed[1]), len(bad), False)
    ]
    assert end == len(data)


def test_a_torn_record_mid_journal_loses_only_itself_and_a_torn_tail_is_marked(tmp_path):
    recs = _records(4)
    framed = [frame(r) for r in recs]
    data = FILE_MAGIC + framed[0] + framed[1][:-7] + framed[2] + framed[3][:9]
    payloads, damage, end = scan(data, tmp_path / "j")
    assert payloads == [recs[0], recs[2]]
    assert [d.tail for d in damage] == [False, True]
    assert end == len(data) - 9


def test_a_torn_record_written_mid_journal_then_more_edits_recovers_every_complete_one():
    vol = _volume()
    store = LabelStore.open(vol, compact_every=10**6)
    ids = [store.document.add(Point(1, zyx=(i, 1, 1))).id for i in range(4)]
    store.flush()
    store._abandon()
    journal = store.folder / read_manifest(store.folder)["journal"]
    whole = frame(b'{"seq": 5, "edit": {"type": "annotation", "after": null}}')
    with open(journal, "ab") as f:  # the process died in the middle of this record
        f.write(whole[:25])
    store = LabelStore.open(vol, compact_every=10**6)
    assert store.recovery.damage and store.recovery.damage[0].tail
    assert "damaged" in store.recovery.sentence() and str(store.folder) in store.recovery.sentence()
    side = [p for p in store.folder.iterdir() if p.name.startswith("damaged-")]
    assert len(side) == 1 and side[0].read_bytes().endswith(whole[:25])  # kept for forensics
    ids += [store.document.add(Point(1, zyx=(i, 2, 2))).id for i in range(4, 8)]
    store.flush()
    store._abandon()
    # The torn bytes in the middle, the later records after them: all complete ones come back.
    again = LabelStore.open(vol)
    assert list(again.document.annotations) == ids
    again.close()


def test_a_corrupt_record_between_edits_is_reported_and_the_later_edits_restored():
    vol = _volume()
    store = LabelStore.open(vol, compact_every=10**6)
    ids = [store.document.add(Point(1, zyx=(i, 1, 1))).id for i in range(6)]
    store.flush()
    store._abandon()
    journal = store.folder / read_manifest(store.folder)["journal"]
    data = bytearray(journal.read_bytes())
    third = [i for i in range(len(data)) if data.startswith(jr.RECORD_MAGIC, i)][2]
    data[third + 20] ^= 0x55
    journal.write_bytes(bytes(data))
    with LabelStore.open(vol) as again:
        assert list(again.document.annotations) == ids[:2] + ids[3:]
        assert again.recovered_edits == 5 and not again.recovery.damage[0].tail
    with LabelStore.open(vol) as clean:  # the damage was set aside: a clean journal now
        assert not clean.recovery.damage and list(clean.document.annotations) == ids[:2] + ids[3:]


def test_an_old_unframed_journal_opens_and_is_migrated(_isolated_user_data):
    vol = _volume()
    folder = store_dir(vol.series_uid)
    folder.mkdir(parents=True)
    doc = Document(SHAPE, vol.series_uid)
    lines: list[bytes] = []
    doc.listeners.append(
        lambda e: lines.append(
            json.dumps({"seq": len(lines) + 1, "edit": edit_to_dict(e)}).encode() + b"\n"
        )
    )
    for step in SCRIPT[:9]:
        step(doc)
    # Today's format: snapshot.json + .npz at seq 2, then one JSON line per edit; a torn
    # line (disk full) in the middle with the next record appended right after it.
    first = Document(SHAPE, vol.series_uid)
    for step in SCRIPT[:2]:
        step(first)
    meta, arrays = first.to_state()
    np.savez_compressed(folder / "snapshot-2.npz", **arrays)
    (folder / "snapshot.json").write_text(
        json.dumps({**meta, "seq": 2, "arrays": "snapshot-2.npz"})
    )
    (folder / "info.json").write_text(json.dumps({"format": 1, "shape": list(SHAPE)}))
    torn = lines[4][: len(lines[4]) // 2]
    journal = b"".join(lines[2:4]) + torn + b"".join(lines[4:])
    (folder / "journal.jsonl").write_bytes(journal)
    os.chmod(folder / "journal.jsonl", 0o644)
    with LabelStore.open(vol) as store:
        assert state(store.document) == expected(9, vol.series_uid)
        assert store.recovery.damage and not (folder / "journal.jsonl").exists()
        assert not (folder / "snapshot.json").exists() and read_manifest(folder) is not None
    assert state(LabelStore.read(vol)) == expected(9, vol.series_uid)


# ---- failed writes ----------------------------------------------------------------------------
def test_disk_full_at_every_write_of_an_edit_session_loses_nothing(monkeypatch):
    with monkeypatch.context() as m:
        total = count_writes(m.setattr)
    assert total > 30
    failed_sessions = 0
    for k in range(1, total + 1):
        with monkeypatch.context() as m:
            faults = Faults(fail_at=k)
            faults.install(m.setattr)
            uid = f"1.2.3.full.{k}"
            store, seen = run_session(faults, uid)
            states = [s.state for s in seen]
            if SaveState.FAILING in states:
                failed_sessions += 1
                assert states[-1] is SaveState.SAVED  # and saved once space came back
                assert "full" in next(s.message for s in seen if s.state is SaveState.FAILING)
            store._abandon()  # as a crash would
        with LabelStore.open(_volume(uid)) as again:
            assert state(again.document) == expected(len(SCRIPT), uid), f"write {k} failed"
    assert failed_sessions > total // 2


@pytest.mark.parametrize(
    ("code", "on", "words"),
    [
        (errno.EROFS, "write", "read-only"),
        (errno.EDQUOT, "write", "quota"),
        (errno.EIO, "fsync", "input/output"),
    ],
)
def test_read_only_quota_and_io_errors_are_surfaced_and_retried(monkeypatch, code, on, words):
    with monkeypatch.context() as m:
        total = count_writes(m.setattr)
    for k in range(3, total, 5):
        with monkeypatch.context() as m:
            faults = Faults(fail_at=k, code=code, on=on)
            faults.install(m.setattr)
            uid = f"1.2.3.{code}.{k}"
            store, seen = run_session(faults, uid)
            failing = [s for s in seen if s.state is SaveState.FAILING]
            assert not failing or (
                words in failing[0].message and str(store.folder) in failing[0].text
            )
            store._abandon()
        with LabelStore.open(_volume(uid)) as again:
            assert state(again.document) == expected(len(SCRIPT), uid)


def test_flush_never_reports_saved_while_the_disk_is_full(monkeypatch):
    faults = Faults(fail_at=10**9)
    faults.install(monkeypatch.setattr)
    store = LabelStore.open(_volume(), retry=0.05)
    store.document.add(Point(1, id="a", zyx=(1, 1, 1)))
    store.flush()
    faults.full = True
    store.document.add(Point(1, id="b", zyx=(2, 2, 2)))
    with pytest.raises(
        StoreError, match="1 label edits are not saved: The disk holding .* is full"
    ):
        store.flush()
    assert store.status.state is SaveState.FAILING and store.status.unsaved == 1
    store.document.add(Point(1, id="c", zyx=(3, 3, 3)))
    assert store.status.unsaved == 2
    with pytest.raises(StoreError):
        store.close()  # closing while the edits are only in memory is refused, loudly
    faults.full = False  # space returns: the timer retries without another edit
    deadline = time.monotonic() + 10
    while store.status.state is not SaveState.SAVED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.status.state is SaveState.SAVED
    store.close()
    assert set(LabelStore.read(_volume()).annotations) == {"a", "b", "c"}


def test_every_failure_sentence_names_the_folder_and_no_errno(tmp_path):
    for code in (
        errno.ENOSPC,
        errno.EROFS,
        errno.EDQUOT,
        errno.EIO,
        errno.EACCES,
        errno.ENAMETOOLONG,
    ):
        text = failure_sentence(OSError(code, os.strerror(code)), tmp_path)
        assert str(tmp_path) in text and "Errno" not in text and text[0].isupper()


# ---- SIGKILL after disk-full episodes ---------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import sys, time
    from tests.test_journal_faults import Faults, SCRIPT, count_writes, run_session
    from viewer.labels.model import Point
    from viewer.labels.store import StoreError

    total = count_writes(setattr)
    stores = []
    for k in range(1, total + 1):
        faults = Faults(fail_at=k)
        faults.install(setattr)
        stores.append(run_session(faults, f"1.2.3.kill.{k}")[0])  # saved, never closed
    # One more killed in the middle of its episode: the edits saved before it must survive.
    faults = Faults(fail_at=10**9)
    faults.install(setattr)
    store, _ = run_session(faults, "1.2.3.kill.during")
    faults.full = True
    for step in range(3):
        store.document.add(Point(1, id=f"lost{step}", zyx=(1, 1, 1)))
    try:
        store.flush()
    except StoreError:
        pass
    print(total, store._saved_seq, store.status.state.value, flush=True)
    time.sleep(600)
    """
)


@needs_sigkill
def test_sigkill_after_disk_full_at_every_write_then_reopen_loses_nothing(_isolated_user_data):
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADLENS_DATA_DIR": str(_isolated_user_data)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        total, saved, status = child.stdout.readline().split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert status == "failing" and int(saved) == len(SCRIPT)
    for k in range(1, int(total) + 1):
        uid = f"1.2.3.kill.{k}"
        with LabelStore.open(_volume(uid)) as store:
            assert state(store.document) == expected(len(SCRIPT), uid), f"write {k}"
    with LabelStore.open(_volume("1.2.3.kill.during")) as store:
        # Every saved edit is back; of the three only in memory, a complete record that
        # reached the file before the disk filled may come back too, in order.
        doc = store.document
        lost = [i for i in doc.annotations if i.startswith("lost")]
        assert lost == [f"lost{i}" for i in range(len(lost))]
        for i in lost:
            doc.remove(i)
        assert state(doc) == expected(len(SCRIPT), "1.2.3.kill.during")


# ---- readers racing compaction ------------------------------------------------------------------
WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from viewer.labels.model import Point
    from viewer.labels.store import LabelStore
    from viewer.study.volume import Volume

    vol = Volume(np.zeros((6, 24, 24), np.int16), series_uid="1.2.3.race", modality="CT")
    store = LabelStore.open(vol, interval=0.005, compact_every=3)
    store.document.add(Point(1, id="p0", zyx=(1, 1, 1)))
    store.flush()
    print("ready", flush=True)
    i, end = 1, time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        store.document.add(Point(1, id=f"p{i}", zyx=(1, 1, 1)))
        i += 1
        if i % 4 == 0:
            time.sleep(0.002)
    store.close()
    print(i, flush=True)
    """
)


def test_a_reader_racing_compactions_in_another_process_never_goes_back(_isolated_user_data):
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADLENS_DATA_DIR": str(_isolated_user_data)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, "4"], env=env, stdout=subprocess.PIPE, text=True
    )
    vol = Volume(np.zeros((6, 24, 24), np.int16), series_uid="1.2.3.race", modality="CT")
    counts: list[int] = []
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        while child.poll() is None:
            counts.append(len(LabelStore.read(vol).annotations))
        total = int(child.stdout.readline())
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert len(counts) > 10 and counts[-1] > counts[0]
    backwards = [(a, b) for a, b in zip(counts, counts[1:], strict=False) if b < a]
    assert backwards == []
    assert len(LabelStore.read(vol).annotations) == total
    assert read_manifest(store_dir(vol.series_uid))["generation"] > 10  # it did compact meanwhile


# ---- privacy ------------------------------------------------------------------------------------
def test_store_folders_are_0700_and_every_file_0600(_isolated_user_data):
    vol = _volume()
    with LabelStore.open(vol, compact_every=2) as store:
        for step in SCRIPT[:6]:
            step(store.document)
        store.flush()
        names = {p.name.split("-")[0] for p in store.folder.iterdir()}
        assert {"lock", "manifest.json", "info.json", "journal", "snapshot", "layer"} <= names
        for p in store.folder.iterdir():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(store.folder.parent.stat().st_mode) == 0o700
    assert journal_records(store.folder) == []  # the final snapshot took them all


# ---- what the user sees -------------------------------------------------------------------------
def test_a_failing_store_shows_in_the_status_bar_and_a_dialog_until_saved(qtbot, monkeypatch):
    from viewer.ui.main_window import MainWindow

    faults = Faults(fail_at=10**9)
    faults.install(monkeypatch.setattr)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.state.set_volume(_volume("1.2.3.gui"))
    saving, ctrl = window.saving, window.annotations.controller
    assert ctrl.store is not None and saving.store is ctrl.store
    folder = str(ctrl.store.folder)
    qtbot.waitUntil(lambda: saving.label.text() == "Labels saved")
    faults.full = True  # the disk fills up
    ctrl.document.add(Point(1, id="a", zyx=(1, 1, 1)))
    qtbot.waitUntil(lambda: saving.dialog is not None and saving.dialog.isVisible(), timeout=5000)
    assert "Labels NOT saved (1 edits only in memory)" in saving.label.text()
    assert folder in saving.label.text() and "is full" in saving.label.text()
    text = saving.dialog.text()
    assert "1 label edit(s) of this series are not saved yet" in text and folder in text
    ctrl.document.add(Point(1, id="b", zyx=(2, 2, 2)))
    qtbot.waitUntil(lambda: "2 label edit(s)" in saving.dialog.text(), timeout=5000)
    faults.full = False  # space returns: saved on the next retry, the dialog goes
    qtbot.waitUntil(lambda: saving.label.text() == "Labels saved", timeout=5000)
    assert saving.dialog is None
    window.close()
    assert set(LabelStore.read(_volume("1.2.3.gui")).annotations) == {"a", "b"}


def test_a_damaged_journal_found_on_open_is_reported_in_the_status_bar(qtbot):
    from viewer.ui.main_window import MainWindow

    vol = _volume("1.2.3.gui.damaged")
    store = LabelStore.open(vol, compact_every=10**6)
    store.document.add(Point(1, id="kept", zyx=(1, 1, 1)))
    store.flush()
    store._abandon()
    with open(store.folder / read_manifest(store.folder)["journal"], "ab") as f:
        f.write(frame(b'{"seq": 2, "edit": {}}')[:11])  # torn by a crash
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.state.set_volume(vol)
    message = window.statusBar().currentMessage()
    assert "The label journal was damaged" in message and str(store.folder) in message
    assert "1 edits around it were recovered" in message
    assert set(window.annotations.controller.document.annotations) == {"kept"}
    window.close()
