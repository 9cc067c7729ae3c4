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
import threading
import time
from pathlib import Path

from radlens_core.files import PRIVATE_FILE_MODE
from radlens_core.paths import private_dir, user_data_dir
from radlens_core.series import series_key

#: Default size limit; ``RADLENS_PACS_CACHE_GB`` overrides it.
DEFAULT_LIMIT_BYTES = 20 * (1 << 30)
USED_MARK = ".used"
PART = ".part"


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
        """Half-written files of an interrupted retrieve are never instances: remove them."""
        for part in self.root.glob(f"*/*/*{PART}"):
            with contextlib.suppress(OSError):
                part.unlink()

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
        with self._lock:
            private_dir(path.parent.parent)
            private_dir(path.parent)
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}{PART}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
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
        """Evict least recently used series (never those in ``keep``) until under the limit."""
        folders = sorted(self._series_folders())
        total = sum(size for _, size, _ in folders)
        evicted = []
        for _used, size, folder in folders:
            if total <= self.limit_bytes:
                break
            if folder in keep:
                continue
            for f in folder.iterdir():
                with contextlib.suppress(OSError):
                    f.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()
                if not any(folder.parent.iterdir()):
                    folder.parent.rmdir()
            total -= size
            evicted.append(folder)
        return evicted
