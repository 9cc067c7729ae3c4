"""RadLens's local cache of retrieved instances (user data folder, size-limited).

Layout: ``<root>/<study key>/<series key>/<SOP key>.dcm``. One file per SOP Instance UID, so
a retrieve that is repeated or resumed never makes a duplicate; each file is written to a
temporary name and renamed, so an interrupted transfer leaves no half file that would pass
for a finished one. After each retrieve the least recently used series are evicted until
the cache fits its limit (the series just retrieved are kept).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from radlens_core.files import PRIVATE_FILE_MODE
from radlens_core.paths import private_dir, user_data_dir
from radlens_core.series import series_key

#: Default size limit; ``RADLENS_PACS_CACHE_GB`` overrides it.
DEFAULT_LIMIT_BYTES = 20 * (1 << 30)
USED_MARK = ".used"
PART = ".part"
PIN = ".pin"
_PART_OWNER = re.compile(r"\.(\d+)-\d+" + re.escape(PART) + "$")

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process pins (one RadLens process at a time)
    fcntl = None  # type: ignore[assignment]


def uid_key(uid: str) -> str:
    return series_key(uid)


def default_limit() -> int:
    text = os.environ.get("RADLENS_PACS_CACHE_GB", "")
    try:
        return max(1 << 20, int(float(text) * (1 << 30))) if text else DEFAULT_LIMIT_BYTES
    except ValueError:
        return DEFAULT_LIMIT_BYTES


class PacsCache:
    def __init__(self, root: Path, limit_bytes: int | None = None) -> None:
        self.root = private_dir(Path(root))
        self.limit_bytes = default_limit() if limit_bytes is None else int(limit_bytes)
        self._lock = threading.Lock()
        self._clean_parts()

    @classmethod
    def default(cls) -> PacsCache:
        return cls(user_data_dir() / "pacs_cache")

    def _clean_parts(self) -> None:
        """Half-written files of an interrupted retrieve are never instances: remove those
        whose process has ended (another process's may be being written right now)."""
        for part in self.root.glob(f"*/*/*{PART}"):
            owner = _part_owner(part.name)
            if owner is not None and (owner == os.getpid() or _alive(owner)):
                continue
            with contextlib.suppress(OSError):
                part.unlink()

    # ---- pins: a series in use is never evicted ----------------------------------------------
    @contextlib.contextmanager
    def pinned(self, study_uid: str, series_uids: Iterable[str]) -> Iterator[None]:
        """Keep these series in the cache while the block runs (retrieving, loading,
        analysing them), against eviction by this or any other process."""
        with contextlib.ExitStack() as stack:
            for uid in sorted(set(series_uids)):
                stack.enter_context(self._pin(self.series_dir(study_uid, uid)))
            yield

    @contextlib.contextmanager
    def _pin(self, folder: Path) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        while True:
            with self._lock:
                private_dir(folder.parent)
                private_dir(folder)
            fd = os.open(folder / PIN, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                try:
                    same = os.stat(folder / PIN).st_ino == os.fstat(fd).st_ino
                except OSError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                break
            os.close(fd)  # the folder was evicted while we waited: pin the new one
        try:
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _evictable(self, folder: Path) -> int | None:
        """An fd holding the folder's pin exclusively (nobody uses it), or None."""
        if fcntl is None:
            return -1
        try:
            fd = os.open(folder / PIN, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    # ---- where things are ------------------------------------------------------------------
    def series_dir(self, study_uid: str, series_uid: str) -> Path:
        return self.root / uid_key(study_uid) / uid_key(series_uid)

    def instance_path(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        return self.series_dir(study_uid, series_uid) / f"{uid_key(sop_uid)}.dcm"

    def has(self, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        return self.instance_path(study_uid, series_uid, sop_uid).is_file()

    def series_files(self, study_uid: str, series_uid: str) -> list[Path]:
        folder = self.series_dir(study_uid, series_uid)
        return sorted(folder.glob("*.dcm")) if folder.is_dir() else []

    def study_series(self, study_uid: str) -> list[Path]:
        folder = self.root / uid_key(study_uid)
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    # ---- writing ---------------------------------------------------------------------------
    def put(self, study_uid: str, series_uid: str, sop_uid: str, data: bytes) -> tuple[Path, bool]:
        """Store one instance's Part-10 bytes; (path, False) when it was already cached."""
        path = self.instance_path(study_uid, series_uid, sop_uid)
        if path.is_file():
            return path, False
        with self._pin(path.parent):
            # Named for this process and thread, and created exclusively: no other writer
            # (in any process) can share it; a leftover of an ended process is replaced.
            tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}{PART}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            try:
                fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
            except FileExistsError:
                tmp.unlink()
                fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)  # two writers of one SOP UID: the same bytes either way
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
        return path, True

    def touch(self, folder: Path) -> None:
        """Mark a series folder as just used (eviction order)."""
        mark = folder / USED_MARK
        with contextlib.suppress(OSError):
            mark.touch()
            os.utime(mark, (time.time(), time.time()))

    # ---- size ------------------------------------------------------------------------------
    def _series_folders(self) -> list[tuple[float, int, Path]]:
        out = []
        for folder in self.root.glob("*/*"):
            if not folder.is_dir():
                continue
            size = sum(f.stat().st_size for f in folder.glob("*.dcm"))
            mark = folder / USED_MARK
            used = mark.stat().st_mtime if mark.exists() else folder.stat().st_mtime
            out.append((used, size, folder))
        return out

    def size_bytes(self) -> int:
        return sum(size for _, size, _ in self._series_folders())

    def enforce_limit(self, keep: set[Path] | frozenset[Path] = frozenset()) -> list[Path]:
        """Evict least recently used series (never those in ``keep``, nor those pinned by
        any process) until under the limit."""
        folders = sorted(self._series_folders())
        total = sum(size for _, size, _ in folders)
        evicted = []
        for _used, size, folder in folders:
            if total <= self.limit_bytes:
                break
            if folder in keep:
                continue
            fd = self._evictable(folder)
            if fd is None:
                continue  # in use (pinned): kept
            try:
                # The pin file goes too: a process waiting on it sees it replaced and pins
                # the folder it then makes anew.
                for f in folder.iterdir():
                    with contextlib.suppress(OSError):
                        f.unlink()
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    if not any(folder.parent.iterdir()):
                        folder.parent.rmdir()
            finally:
                if fd >= 0:
                    os.close(fd)
            total -= size
            evicted.append(folder)
        return evicted


def _part_owner(name: str) -> int | None:
    """The process id a temporary file is named for; None for a name of older code."""
    found = _PART_OWNER.search(name)
    return int(found.group(1)) if found else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    except OSError:
        return False
    return True
