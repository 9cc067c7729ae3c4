"""LabelStore: the autosaved, crash-safe home of one series' Document (one module, ~600 lines: writer, compactor and save status share one locking discipline best read together).

Layout of ``user_data_dir()/labels/<key>/`` (key = ``radlens_core.series.series_key`` of the
SeriesInstanceUID; stores under the former SHA-256 name move there when first opened):
``info.json`` (series, shape), ``lock``, and one generation of snapshot + journal named by
``manifest.json`` (format and recovery: ``viewer.labels.journal``). A writer thread appends
each edit as a framed record and fsyncs within ``interval`` seconds (0.5 s, inside the 2 s
promise); model layers go to their own file once and are journalled by reference, so a
record is always small. Compaction (a new snapshot and journal, switched by writing the
manifest last) runs on a second thread and never holds up the journal. A failed write keeps
the edits in memory, shows as a ``SaveStatus`` of FAILING naming the folder, and is retried
on the next edit and every ``retry`` seconds. Folders are 0700, files 0600. The source files
of the series are never touched.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.files import atomic_copy, atomic_write, atomic_write_json, fsync_dir, sha256_text
from radlens_core.series import series_key
from viewer.labels import journal as jr
from viewer.labels.document import Document, Edit, edit_to_dict
from viewer.labels.model import LabelError
from viewer.study.volume import Volume

log = logging.getLogger(__name__)
STORE_FORMAT = 1
MANIFEST_FORMAT = 2


class StoreError(LabelError, UserError):
    """A label store that cannot be opened, restored or written (the sentence names the folder)."""


class SaveState(str, Enum):
    SAVED = "saved"  # every edit is fsync'd in the journal
    PENDING = "pending"  # edits wait for the next write (at most ``interval`` seconds)
    FAILING = "failing"  # the last write failed: edits are only in memory, retried


@dataclass(frozen=True)
class SaveStatus:
    """What the user must know about the store: shown in the status bar (``text``)."""

    state: SaveState
    folder: Path
    unsaved: int = 0  # edits not yet on disk
    message: str = ""  # FAILING: the sentence naming the folder and the cause

    @property
    def text(self) -> str:
        if self.state is SaveState.FAILING:
            return f"Labels NOT saved ({self.unsaved} edits only in memory): {self.message}"
        if self.state is SaveState.PENDING:
            return "Saving labels…"
        return "Labels saved"


def failure_sentence(exc: BaseException, folder: Path, retried: bool = True) -> str:
    """Why ``folder`` cannot be written, as a sentence for the user (no errno numbers);
    ``retried``: the edits wait in memory for the next try (the writer's failures)."""
    code = exc.errno if isinstance(exc, OSError) else None
    why = {
        errno.ENOSPC: f"the disk holding {folder} is full",
        errno.EROFS: f"the folder {folder} is on a read-only disk",
        errno.EDQUOT: f"your disk quota for {folder} is used up",
        errno.EIO: f"the disk holding {folder} reported an input/output error",
        errno.EACCES: f"RadLens is not allowed to write to {folder}",
        errno.EPERM: f"RadLens is not allowed to write to {folder}",
    }.get(code or -1)
    if why is None:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        why = f"the folder {folder} cannot be written ({detail})"
    why = f"{why[0].upper()}{why[1:]}"
    if not retried:
        return f"{why}."
    return f"{why}; the edits are kept in memory and saved as soon as it can be written."


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


def _private(folder: Path) -> None:
    """Create ``folder`` (and the labels root) readable by the user only; make older ones so."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for d in (folder.parent, folder):
        os.chmod(d, 0o700)
    for f in folder.iterdir():
        if f.is_file() and f.stat().st_mode & 0o077:
            os.chmod(f, 0o600)


class LabelStore:
    """Owns a Document and keeps it on disk. Use ``LabelStore.open(volume)``; ``close()`` when done."""

    def __init__(
        self,
        folder: Path,
        document: Document,
        recovery: jr.Recovery | None = None,
        interval: float = 0.5,
        compact_every: int = 200,
        retry: float = 1.0,
    ):
        rec = recovery or jr.Recovery(document)
        self.folder = folder
        self.document = document
        self.interval, self.retry, self.compact_every = interval, retry, compact_every
        self.recovered_edits = rec.replayed
        self.recovery = rec
        #: called with each new SaveStatus, from the thread that changed it
        self.status_listeners: list[Callable[[SaveStatus], None]] = []
        self._status = SaveStatus(SaveState.SAVED, folder)
        self._seq = self._saved_seq = self._snapshot_seq = rec.seq
        self._generation = rec.generation
        self._queue: list[tuple[int, Edit]] = []
        self._since: list[tuple[int, bytes]] = []  # journalled after the snapshot in progress
        self._snapshot_request: tuple[int, dict[str, Any], dict[str, np.ndarray]] | None = None
        self._compacting = False
        self._attempts = 0
        self._error: BaseException | None = None
        self._layers: dict[int, tuple[np.ndarray, str]] = {
            id(a): (a, name) for a, name in rec.layer_files
        }
        self._cond = threading.Condition()
        self._io = threading.Lock()  # the journal file and the layer files
        self._wake = threading.Event()
        self._compact_wake = threading.Event()
        self._stop = False
        self._journal: jr.JournalWriter | None = None
        if rec.generation and rec.journal is not None and not rec.damage:
            self._journal = jr.JournalWriter(rec.journal, rec.journal_end)
        self._lock_file: Any = None
        document.listeners.append(self._on_edit)
        self._thread = threading.Thread(
            target=self._run, name=f"label-store-{folder.name}", daemon=True
        )
        self._compactor = threading.Thread(
            target=self._run_compactor, name=f"label-compact-{folder.name}", daemon=True
        )
        self._thread.start()
        self._compactor.start()

    # ---- opening ----------------------------------------------------------------------------
    @classmethod
    def open(
        cls, volume: Volume, interval: float = 0.5, compact_every: int = 200, retry: float = 1.0
    ) -> LabelStore:
        """Open (or create) the store of ``volume``'s series and restore its last journalled state."""
        folder = store_dir(volume.series_uid)
        try:
            _private(folder)
        except OSError as exc:
            raise StoreError(
                f"the label folder {folder} cannot be created ({exc.strerror})"
            ) from exc
        lock = _lock(folder)
        try:
            return cls._open_locked(volume, folder, lock, interval, compact_every, retry)
        except OSError as exc:
            lock.close()
            raise StoreError(
                f"the labels in {folder} cannot be opened: {failure_sentence(exc, folder, False)}"
            ) from exc
        except BaseException:
            lock.close()
            raise

    @classmethod
    def _open_locked(
        cls,
        volume: Volume,
        folder: Path,
        lock: Any,
        interval: float,
        compact_every: int,
        retry: float,
    ) -> LabelStore:
        _check_info(folder, volume, create=True)
        try:
            rec = jr.restore(folder, volume)
        except (jr.JournalError, LabelError, OSError) as exc:
            raise StoreError(f"the labels in {folder} cannot be restored: {exc}") from exc
        for d in {d.path for d in rec.damage}:  # kept for forensics, never appended to
            side = folder / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}-{d.name}"
            atomic_copy(d, side)
            log.warning("damaged label journal %s copied to %s", d, side)
        store = cls(folder, rec.document, rec, interval, compact_every, retry)
        store._lock_file = lock
        if rec.legacy and rec.journal is None and rec.seq == 0:  # a new store: no snapshot yet
            try:
                store._first_generation()
            except BaseException:
                store._abandon()
                raise
        elif store._journal is None or rec.replayed:
            try:  # a clean journal: fold what was replayed (or migrated) into a new generation
                store.compact()
            except StoreError:
                if store._journal is None:  # nowhere to append: not a store that can save
                    store._abandon()
                    raise
                log.warning("label store %s: replayed journal kept, not compacted", folder)
        return store

    @staticmethod
    def read(volume: Volume) -> Document:
        """The last journalled state, read-only (no lock, nothing written): for exports while
        the series may be open elsewhere. A compaction under way is seen before or after, never
        half: the manifest's generation is read again after reading, and a change means retry."""
        folder = store_dir(volume.series_uid)
        _check_info(folder, volume, create=False)
        error: Exception | None = None
        for _ in range(100):
            try:
                before = jr.read_manifest(folder)
                doc = jr.restore(folder, volume).document
                after = jr.read_manifest(folder)
            except (jr.JournalError, LabelError, OSError) as exc:
                error = exc  # files of a generation just replaced: read the new one
                time.sleep(0.01)
                continue
            if (before or {}).get("generation") == (after or {}).get("generation"):
                return doc
        raise StoreError(f"the labels in {folder} cannot be read: {error}")

    # ---- status -----------------------------------------------------------------------------
    @property
    def status(self) -> SaveStatus:
        return self._status

    def _set_status(self, state: SaveState, message: str = "") -> None:
        with self._cond:
            change = self._status_locked(state, message)
        self._notify(*change)

    def _status_locked(self, state: SaveState, message: str) -> tuple[SaveStatus, SaveStatus]:
        new = SaveStatus(state, self.folder, self._seq - self._saved_seq, message)
        old, self._status = self._status, new
        return old, new

    def _notify(self, old: SaveStatus, new: SaveStatus) -> None:
        if (old.state, old.message) != (new.state, new.message) or (
            new.state is SaveState.FAILING and old.unsaved != new.unsaved
        ):
            for listener in list(self.status_listeners):
                listener(new)

    # ---- writing ------------------------------------------------------------------------------
    def _on_edit(self, edit: Edit) -> None:
        with self._cond:
            self._seq += 1
            self._queue.append((self._seq, edit))
            due = self._seq - self._snapshot_seq >= self.compact_every
            failing = self._error is not None
        if failing:
            self._set_status(SaveState.FAILING, self._status.message)
            self._wake.set()  # retry now: the disk may have room again
        elif self._status.state is SaveState.SAVED:
            self._set_status(SaveState.PENDING)
        if due:
            self.compact(wait=False)

    def compact(self, wait: bool = True) -> None:
        """Snapshot the current state (arrays copied now; written on the compaction thread)."""
        meta, arrays = self.document.to_state()
        # Read-only arrays (model layers) never change: written once, never copied.
        arrays = {k: v if not v.flags.writeable else v.copy() for k, v in arrays.items()}
        with self._cond:
            self._snapshot_seq = self._seq
            self._snapshot_request = (self._seq, meta, arrays)
        self._wake.set()
        if wait:
            self.flush()
            if self._snapshot_error is not None:
                raise StoreError(
                    f"the label snapshot in {self.folder} could not be written: "
                    f"{failure_sentence(self._snapshot_error, self.folder, False)}"
                )

    _snapshot_error: BaseException | None = None

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every edit so far is fsync'd (and a snapshot asked for is written);
        raise StoreError naming the folder when it is not: never success without the bytes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            start = self._attempts
        self._wake.set()
        with self._cond:
            while True:
                done = not self._queue and self._snapshot_request is None and not self._compacting
                if done and self._saved_seq == self._seq:
                    return
                if self._error is not None and self._attempts > start:
                    raise StoreError(
                        f"{self._seq - self._saved_seq} label edits are not saved: "
                        f"{failure_sentence(self._error, self.folder)}"
                    ) from self._error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreError(
                        f"label store {self.folder} did not finish writing within {timeout:.0f} s"
                    )
                self._cond.wait(left)

    def close(self) -> None:
        """Write a final snapshot, stop the threads and detach from the document. Raises
        StoreError (and keeps running, edits in memory) while the journal cannot be written;
        a snapshot that fails is only logged: the journal already holds every edit."""
        if self._stop:
            return
        try:
            self.compact()
        except StoreError:
            if self._error is not None:
                raise
            log.warning("label store %s closed without a final snapshot", self.folder)
        self._abandon()
        if self._on_edit in self.document.listeners:
            self.document.listeners.remove(self._on_edit)

    def _abandon(self) -> None:
        """Stop without a final snapshot, as a crash would (tests and benchmarks)."""
        self._stop = True
        self._wake.set()
        self._compact_wake.set()
        self._thread.join(timeout=30)
        self._compactor.join(timeout=60)
        with self._io:
            if self._journal is not None:
                self._journal.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.retry if self._error is not None else self.interval)
            self._wake.clear()
            stop = self._stop
            with self._cond:
                items = list(self._queue)
                request, self._snapshot_request = self._snapshot_request, None
                if request is not None:
                    self._compacting = True
            error: BaseException | None = None
            try:
                self._append(items)
            except Exception as exc:  # disk full, read-only, quota, EIO: the thread lives on
                error = exc
            with self._cond:
                self._attempts += 1
                self._error = error
                if error is None:
                    del self._queue[: len(items)]
                    if items:
                        self._saved_seq = items[-1][0]
                if request is not None:
                    if error is None:
                        self._compact_request = request
                        self._compact_wake.set()
                    else:
                        self._compacting = False
                        self._snapshot_request = self._snapshot_request or request
                message = "" if error is None else failure_sentence(error, self.folder)
                change = self._status_locked(self._state_locked(), message)
                self._cond.notify_all()
            if error is not None:
                log.error("label store %s: %s", self.folder, error)
            self._notify(*change)
            if stop:
                return

    def _state_locked(self) -> SaveState:
        if self._error is not None:
            return SaveState.FAILING
        return SaveState.SAVED if self._saved_seq == self._seq else SaveState.PENDING

    def _append(self, items: list[tuple[int, Edit]]) -> None:
        with self._io:
            if self._journal is None:
                if not items:
                    return
                raise OSError(errno.EIO, "the store has no clean journal yet")
            payloads = [
                json.dumps({"seq": seq, "edit": edit_to_dict(e, self._put_layer)}).encode()
                for seq, e in items
            ]
            self._journal.append(payloads)
            self._since.extend(zip((s for s, _ in items), payloads, strict=True))

    def _put_layer(self, array: np.ndarray) -> dict[str, Any]:
        """A model layer's file reference; the file is written the first time (it never changes)."""
        name = self._known_layer(array, compare=False) or self._write_layer(array)
        self._layers[id(array)] = (array, name)
        return {"file": name, "shape": list(array.shape)}

    def _known_layer(self, array: np.ndarray, compare: bool = True) -> str | None:
        """The file already holding ``array``: the same object, or (``compare``, off the
        journal's path) an equal copy, as the document keeps of the array a LayerEdit carried."""
        hit = self._layers.get(id(array))
        if hit is None and compare:
            for a, n in list(self._layers.values()):
                if a.shape == array.shape and np.array_equal(a, array):
                    hit = (a, n)
                    break
        if hit is None or not (self.folder / hit[1]).exists():
            return None
        self._layers[id(array)] = (array, hit[1])
        return hit[1]

    def _write_layer(self, array: np.ndarray) -> str:
        name = f"layer-{uuid.uuid4().hex[:16]}.npy.z"
        data = jr.layer_bytes(array)
        atomic_write(self.folder / name, lambda f: f.write(data))
        return name

    # ---- compaction ---------------------------------------------------------------------------
    _compact_request: tuple[int, dict[str, Any], dict[str, np.ndarray]] | None = None

    def _run_compactor(self) -> None:
        while True:
            self._compact_wake.wait()
            self._compact_wake.clear()
            with self._cond:
                request, self._compact_request = self._compact_request, None
            if request is not None:
                try:
                    self._write_generation(*request)
                    self._snapshot_error = None
                except Exception as exc:  # the journal still holds every edit
                    self._snapshot_error = exc
                    log.error("label store %s: snapshot failed: %s", self.folder, exc)
                with self._cond:
                    self._compacting = self._compact_request is not None
                    self._cond.notify_all()
            if self._stop and self._compact_request is None:
                return

    def _first_generation(self) -> None:
        """An empty journal and the manifest naming it: a new store writes no snapshot."""
        name = "journal-1.rlj"
        journal = jr.JournalWriter.create(self.folder / name, [])
        try:
            manifest = {"format": MANIFEST_FORMAT, "generation": 1, "seq": 0, "journal": name}
            atomic_write_json(
                self.folder / jr.MANIFEST, {**manifest, "document": None}, indent=None
            )
        except BaseException:
            journal.close()
            raise
        with self._io:
            self._journal, self._generation = journal, 1

    def _write_generation(
        self, seq: int, meta: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> None:
        """Snapshot at ``seq`` + a journal of what came after it, switched in by the manifest."""
        gen = self._generation + 1
        npz = f"snapshot-{gen}.npz"
        atomic_write(
            self.folder / npz, lambda f: np.savez_compressed(f, labelmap=arrays["labelmap"])
        )
        layers = [arrays[f"layer{i}"] for i in range(len(meta["layers"]))]
        # Written (if new) outside the journal's lock: appends go on meanwhile.
        layer_files = [self._known_layer(a) or self._write_layer(a) for a in layers]
        with self._io:  # the writer waits here for the switch (records since ``seq`` only)
            self._layers.update({id(a): (a, n) for a, n in zip(layers, layer_files, strict=True)})
            tail = [(s, p) for s, p in self._since if s > seq]
            name = f"journal-{gen}.rlj"
            journal = jr.JournalWriter.create(self.folder / name, [p for _, p in tail])
            try:
                manifest = {
                    "format": MANIFEST_FORMAT,
                    "generation": gen,
                    "seq": seq,
                    "document": meta,
                    "arrays": npz,
                    "layer_files": layer_files,
                    "journal": name,
                }
                atomic_write_json(self.folder / jr.MANIFEST, manifest, indent=None)
            except BaseException:
                journal.close()
                raise
            if self._journal is not None:
                self._journal.close()
            self._journal, self._generation, self._since = journal, gen, tail
            keep = {npz, name, *layer_files} | _layer_refs(tail)
            self._layers = {k: v for k, v in self._layers.items() if v[1] in keep}
            for f in self.folder.iterdir():
                if _obsolete(f.name) and f.name not in keep:
                    try:
                        f.unlink(missing_ok=True)
                    except OSError as exc:  # the switch is done; an old file only costs space
                        log.warning("label store %s: %s not removed (%s)", self.folder, f, exc)


def _layer_refs(records: list[tuple[int, bytes]]) -> set[str]:
    out: set[str] = set()
    for _, payload in records:
        if b'"layer-' in payload:
            out.update(part.split(b'"')[0].decode() for part in payload.split(b'"file": "')[1:])
    return out


def _obsolete(name: str) -> bool:
    """Files a superseded generation (or the format before manifests) leaves behind."""
    if name in (jr.LEGACY_SNAPSHOT, jr.LEGACY_JOURNAL):
        return True
    return name.startswith(("snapshot-", "journal-", "layer-")) and not name.startswith(".")


def _check_info(folder: Path, volume: Volume, create: bool) -> None:
    info_path = folder / "info.json"
    if info_path.exists():
        try:
            info = jr.read_json(info_path)
        except jr.JournalError as exc:
            raise StoreError(str(exc)) from exc
        if tuple(info.get("shape", ())) != tuple(volume.shape):
            raise StoreError(
                f"labels in {folder} were drawn on a {tuple(info.get('shape', ()))} series, "
                f"but this series is {volume.shape}; they were left untouched"
            )
    elif not create:
        raise StoreError(f"no labels are stored for series {volume.series_uid} (in {folder})")
    else:
        try:
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
        except OSError as exc:
            raise StoreError(failure_sentence(exc, folder, False)) from exc


def _lock(folder: Path) -> Any:
    """An exclusive lock on the store: one writer per series (a second window, or a crashed
    process's leftovers, must not interleave journals). The OS frees it when a process dies."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"the label folder {folder} cannot be locked ({exc.strerror})") from exc
    f = os.fdopen(fd, "a+b")
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
