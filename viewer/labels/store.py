"""LabelStore: the autosaved, crash-safe home of one series' Document in the user data folder.

Layout of ``user_data_dir()/labels/<key>/`` (key = ``radlens_core.series.series_key`` of the
SeriesInstanceUID; stores under the former SHA-256 name move there when first opened):
``info.json`` (series, shape), ``snapshot.json`` + ``snapshot.npz`` (compacted state at
journal sequence ``seq``), ``journal.jsonl`` (one applied edit per line, seq-numbered).
A background thread appends queued edits, flushes and fsyncs within ``interval`` seconds
(default 0.5 s, well inside the 2 s promise). Recovery loads the snapshot and replays the
journal lines after its ``seq``; a torn last line (killed mid-write) is ignored.
The source files of the series are never touched.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    fsync_dir,
    sha256_text,
)
from radlens_core.series import series_key
from viewer.labels.document import Document, Edit, edit_from_dict, edit_to_dict
from viewer.labels.model import LabelError
from viewer.study.volume import Volume

log = logging.getLogger(__name__)
STORE_FORMAT = 1


class StoreError(LabelError, UserError):
    """A label store that cannot be opened or restored."""


def store_key(series_uid: str) -> str:
    """The folder name of a series' labels: ``radlens_core.series.series_key``, the one key
    under which a series' stored data lives (the UID when filename-safe, else its hash)."""
    if not series_uid:
        raise StoreError("this series has no SeriesInstanceUID or file hash to key its labels by")
    return series_key(series_uid)


def legacy_store_key(series_uid: str) -> str:
    """The folder name label stores had before the one series key: SHA-256 of the UID."""
    return sha256_text(series_uid)[:32]


def labels_root() -> Path:
    from radlens_core.paths import user_data_dir  # radlens_core.paths is Qt- and torch-free

    return user_data_dir() / "labels"


def store_dir(series_uid: str) -> Path:
    """``user_data_dir()/labels/<series_key>``; a store still under its legacy (hashed)
    name is moved there once, the first time it is asked for."""
    root = labels_root()
    folder = root / store_key(series_uid)
    legacy = root / legacy_store_key(series_uid)
    if legacy != folder and not folder.exists() and legacy.is_dir():
        try:
            os.replace(legacy, folder)
        except OSError:
            if not folder.is_dir():  # another process moving it at the same time is fine
                raise
        fsync_dir(root)
        log.info("label store of series %s moved from %s to %s", series_uid, legacy, folder)
    return folder


class LabelStore:
    """Owns a Document and keeps it on disk. Use ``LabelStore.open(volume)``; ``close()`` when done."""

    def __init__(
        self,
        folder: Path,
        document: Document,
        seq: int = 0,
        interval: float = 0.5,
        compact_every: int = 200,
    ):
        self.folder = folder
        self.document = document
        self.interval = interval
        self.compact_every = compact_every
        self.recovered_edits = 0
        self._seq = seq
        self._snapshot_seq = seq
        self._queue: list[tuple[str, int, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = False
        self._error: BaseException | None = None
        self._journal = open(self.folder / "journal.jsonl", "ab")  # noqa: SIM115 - lives with the store
        self._lock_file: Any = None
        document.listeners.append(self._on_edit)
        self._thread = threading.Thread(
            target=self._run, name=f"label-store-{folder.name}", daemon=True
        )
        self._thread.start()

    # ---- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, volume: Volume, interval: float = 0.5, compact_every: int = 200) -> LabelStore:
        """Open (or create) the store of ``volume``'s series and restore its last journalled state."""
        folder = store_dir(volume.series_uid)
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock(folder)
        try:
            return cls._open_locked(volume, folder, lock, interval, compact_every)
        except BaseException:
            lock.close()
            raise

    @classmethod
    def _open_locked(
        cls, volume: Volume, folder: Path, lock: Any, interval: float, compact_every: int
    ) -> LabelStore:
        info_path = folder / "info.json"
        if info_path.exists():
            info = _read_json(info_path)
            if tuple(info.get("shape", ())) != tuple(volume.shape):
                raise StoreError(
                    f"labels in {folder} were drawn on a {tuple(info.get('shape', ()))} series, "
                    f"but this series is {volume.shape}; they were left untouched"
                )
        else:
            atomic_write_json(
                info_path,
                {
                    "format": STORE_FORMAT,
                    "series_uid": volume.series_uid,
                    "shape": list(volume.shape),
                    "description": volume.description,
                    "modality": volume.modality,
                },
            )
        doc, seq, replayed = _restore(folder, volume)
        store = cls(folder, doc, seq, interval, compact_every)
        store._lock_file = lock
        store.recovered_edits = replayed
        if replayed:
            store.compact()  # fold the replayed journal into a fresh snapshot
        return store

    @staticmethod
    def read(volume: Volume) -> Document:
        """The last journalled state, read-only (no lock, nothing written): for exports while
        the series may be open elsewhere."""
        folder = store_dir(volume.series_uid)
        if not (folder / "info.json").exists():
            raise StoreError(f"no labels are stored for series {volume.series_uid}")
        info = _read_json(folder / "info.json")
        if tuple(info.get("shape", ())) != tuple(volume.shape):
            raise StoreError(
                f"labels in {folder} were drawn on a {tuple(info.get('shape', ()))} series, not {volume.shape}"
            )
        try:
            return _restore(folder, volume)[0]
        except StoreError:  # a writer compacted between our reads of snapshot.json and its .npz
            return _restore(folder, volume)[0]

    # ---- writing ------------------------------------------------------------------------------
    def _on_edit(self, edit: Edit) -> None:
        with self._lock:
            self._seq += 1
            self._queue.append(("edit", self._seq, edit))
            self._idle.clear()
            due = self._seq - self._snapshot_seq >= self.compact_every
        if due:
            self.compact(wait=False)

    def compact(self, wait: bool = True) -> None:
        """Queue a snapshot of the current state (arrays copied now, written by the thread)."""
        meta, arrays = self.document.to_state()
        # Read-only arrays (model layers) never change: written as they are, not copied.
        arrays = {k: v if not v.flags.writeable else v.copy() for k, v in arrays.items()}
        with self._lock:
            self._snapshot_seq = self._seq
            self._queue.append(("snapshot", self._seq, (meta, arrays)))
            self._idle.clear()
        self._wake.set()
        if wait:
            self.flush()

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is on disk (fsync'd)."""
        self._wake.set()
        if not self._idle.wait(timeout):
            raise StoreError(
                f"label store {self.folder} did not finish writing within {timeout:.0f} s"
            )
        if self._error is not None:
            raise StoreError(
                f"label store {self.folder} could not be written: {self._error}"
            ) from self._error

    def close(self) -> None:
        """Write a final snapshot, stop the thread and detach from the document."""
        if self._stop:
            return
        self.compact()
        self._abandon()
        if self._on_edit in self.document.listeners:
            self.document.listeners.remove(self._on_edit)

    def _abandon(self) -> None:
        """Stop without a final snapshot, as a crash would (tests and benchmarks)."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._journal.close()
        self._lock_file.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                items, self._queue = self._queue, []
            try:
                self._write(items)
                self._error = None
            except Exception as exc:  # disk full, permissions...: the thread must live on
                log.error("label store %s: %s", self.folder, exc)
                self._error = exc
                with self._lock:
                    self._queue[:0] = items  # keep them for a retry
            with self._lock:
                if not self._queue or self._error is not None:
                    self._idle.set()
            if self._stop:
                return

    def _write(self, items: list[tuple[str, int, Any]]) -> None:
        lines: list[bytes] = []
        for kind, seq, payload in items:
            if kind == "edit":
                lines.append(
                    json.dumps({"seq": seq, "edit": edit_to_dict(payload)}).encode() + b"\n"
                )
                continue
            self._append(lines)
            lines = []
            meta, arrays = payload
            # The .npz goes first: a snapshot.json always names a complete array file.
            atomic_write_npz(self.folder / f"snapshot-{seq}.npz", arrays)
            atomic_write_json(
                self.folder / "snapshot.json", {**meta, "seq": seq, "arrays": f"snapshot-{seq}.npz"}
            )
            self._journal.close()
            atomic_write_bytes(self.folder / "journal.jsonl", b"")
            self._journal = open(self.folder / "journal.jsonl", "ab")  # noqa: SIM115
            for old in self.folder.glob("snapshot-*.npz"):
                if old.name != f"snapshot-{seq}.npz":
                    old.unlink(missing_ok=True)
        self._append(lines)

    def _append(self, lines: list[bytes]) -> None:
        if not lines:
            return
        self._journal.write(b"".join(lines))
        self._journal.flush()
        os.fsync(self._journal.fileno())


def _lock(folder: Path) -> Any:
    """An exclusive lock on the store: one writer per series (a second window, or a crashed
    process's leftovers, must not interleave journals). The OS frees it when a process dies."""
    f = open(folder / "lock", "a+b")  # noqa: SIM115 - held for the store's lifetime
    try:
        import fcntl
    except ImportError:  # Windows: msvcrt locks a byte range instead
        import msvcrt

        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            f.close()
            raise StoreError(f"the labels in {folder} are open in another RadLens window") from None
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise StoreError(f"the labels in {folder} are open in another RadLens window") from None
    return f


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: cannot be read ({exc})") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object")
    return data


def _restore(folder: Path, volume: Volume) -> tuple[Document, int, int]:
    """(document, last seq, number of journal edits replayed)."""
    snap = folder / "snapshot.json"
    seq = 0
    if snap.exists():
        meta = _read_json(snap)
        try:
            with np.load(folder / meta["arrays"]) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, KeyError, ValueError) as exc:
            raise StoreError(f"{folder}: the label snapshot is unreadable ({exc})") from exc
        doc = Document.from_state(meta, arrays)
        seq = int(meta["seq"])
    else:
        doc = Document(volume.shape, volume.series_uid)
    replayed = 0
    journal = folder / "journal.jsonl"
    if journal.exists():
        raw = journal.read_bytes().split(b"\n")
        for i, line in enumerate(raw):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                edit = edit_from_dict(rec["edit"])
            except (json.JSONDecodeError, KeyError, LabelError, ValueError) as exc:
                if any(rest.strip() for rest in raw[i + 1 :]):
                    log.warning(
                        "%s line %d unreadable (%s); later edits are lost", journal, i + 1, exc
                    )
                break  # a torn last line: the process died while writing it
            if int(rec["seq"]) <= seq:
                continue
            doc.apply(edit, record=False)
            seq = int(rec["seq"])
            replayed += 1
    return doc, seq, replayed
