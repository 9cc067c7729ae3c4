"""What the folder scan read from each file, kept between runs so reopening a folder is quick.

One JSON file per scanned folder in the user data folder (``scan-cache/``, 0700, files 0600),
never beside the sources. An entry is used only when the file's size, modification time,
change time and inode are what they were when it was read, and its modification time is
older than the cache by ``RACY_NS`` (a file written in the same clock tick as the cache
could change again unseen: it is read again, as git does with its index). A cache written
by other code (any change to the header reading modules or the records it holds), for
another folder, or that cannot be parsed is ignored and rewritten. At most
``MAX_CACHE_FILES`` folders and ``MAX_CACHE_BYTES`` are kept, least recently used dropped
first. ``RADLENS_SCAN_CACHE=0`` turns it off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from radlens_core.files import PRIVATE_FILE_MODE
from radlens_core.limits import max_alloc_bytes
from radlens_core.paths import private_dir, user_data_dir
from viewer.study.headers import HEADER_KEYWORDS, HEADER_SEQUENCES, FileHeader
from viewer.study.records import SeriesInfo
from viewer.study.scan_cache_rows import (
    _HEADER_FIELDS,
    _HEADER_OK,
    _decode,
    _fields,
    _header_from_row,
    _header_row,
    _NotCached,
    _tags,
    _tagset,
)

ENV_VAR = "RADLENS_SCAN_CACHE"
CACHE_VERSION = 1
#: Folders remembered, and bytes all their caches may take together.
MAX_CACHE_FILES = 64
MAX_CACHE_BYTES = 256 << 20
#: A folder with more files than this is not cached (its cache would be too big to help).
MAX_ENTRIES = 200_000
#: Files modified this close to (or after) the cache's writing are read again.
RACY_NS = 2_000_000_000
#: The modules whose code decides what an entry holds: a change to any invalidates caches.
# fmt: off
_SOURCES = ("headers", "file_header", "tag_reader", "dataset", "records", "scan", "scan_series",
            "layout", "scan_cache", "scan_cache_rows")
# fmt: on

_fingerprint: list[str] = []


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "1").strip() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    return private_dir(user_data_dir() / "scan-cache")


def fingerprint() -> str:
    """What an entry's meaning depends on: the record fields, the keyword list and the code
    of the modules that read headers (a cache written by other code is not used)."""
    if not _fingerprint:
        h = hashlib.sha256()
        h.update(str(CACHE_VERSION).encode())
        for cls in (FileHeader, SeriesInfo):
            for f in dataclasses.fields(cls):
                h.update(f"{cls.__name__}.{f.name}:{f.type};".encode())
        h.update(repr((HEADER_KEYWORDS, HEADER_SEQUENCES)).encode())
        here = Path(__file__).resolve().parent
        for name in _SOURCES:
            try:
                h.update((here / f"{name}.py").read_bytes())
            except OSError:
                h.update(name.encode())
        _fingerprint.append(h.hexdigest())
    return _fingerprint[0]


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class ScanCache:
    """The cache of one folder during one scan: look files up, store what was read, save."""

    def __init__(self, root: Path) -> None:
        self.root = str(Path(root).resolve())
        self.path = cache_dir() / (hashlib.sha256(self.root.encode()).hexdigest()[:32] + ".json")
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        self._written_ns = 0
        self._bases: list[dict[str, Any]] = []
        self._changed = False
        self._lock = threading.Lock()
        self.hits = 0
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as fp:
                if not stat.S_ISREG(os.fstat(fp.fileno()).st_mode):
                    return
                data = json.loads(fp.read(MAX_CACHE_BYTES + 1))
        except (OSError, ValueError, RecursionError):
            return  # no cache, or a damaged one: read everything again
        if (
            not isinstance(data, dict)
            or data.get("fingerprint") != fingerprint()
            or data.get("root") != self.root
            or not isinstance(data.get("files"), dict)
            or not isinstance(data.get("written_ns"), int)
            or data.get("limit") != max_alloc_bytes()
        ):
            return
        bases = data.get("bases")
        if not isinstance(bases, list) or not all(isinstance(b, dict) for b in bases):
            return
        self._old = data["files"]
        self._bases = bases
        self._written_ns = data["written_ns"]

    def fresh(self, path: Path, st: os.stat_result) -> bool:
        """Whether the cache holds ``path`` as it is now (cheap: nothing is revived)."""
        entry = self._old.get(str(path))
        return (
            isinstance(entry, list)
            and len(entry) == 3
            and entry[0] == _key(st)
            and st.st_mtime_ns < self._written_ns - RACY_NS
        )

    def lookup(self, path: Path, st: os.stat_result) -> tuple[str, Any] | None:
        """What the scan read from ``path`` last time, when the file is unchanged."""
        entry = self._old.get(str(path))
        if not isinstance(entry, list) or len(entry) != 3:
            return None
        key, what, value = entry
        if key != _key(st) or st.st_mtime_ns >= self._written_ns - RACY_NS:
            return None
        try:
            if what == "header":
                value = self._expand(value)
            got = self._revive(what, value)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            return None  # an entry this code cannot use: read the file
        with self._lock:
            self._new[str(path)] = [key, what, value]
            self.hits += 1
        return got

    def _expand(self, value: Any) -> list[Any]:
        """[header row, tags] from [header row, base index, tags that differ, tags absent]."""
        row, base, differ, absent = value
        tags = dict(self._bases[base])
        tags.update(differ)
        for keyword in absent:
            tags.pop(keyword, None)
        return [row, tags]

    @staticmethod
    def _revive(what: str, value: Any) -> tuple[str, Any]:
        if what == "skip":
            if not isinstance(value, str):
                raise ValueError("reason")
            return "skip", value
        if what == "header":
            row, tags = value
            if not isinstance(tags, dict):
                raise ValueError("tags")
            syntax = row[_HEADER_FIELDS.index("transfer_syntax")]
            return "header", _header_from_row(row, _tagset(tags, str(syntax)))
        if what == "non-image":
            return "non-image", (_tagset(value["tags"], ""), str(value["reason"]))
        if what == "image":  # one SeriesInfo per volume of the file
            if not isinstance(value, list):
                raise ValueError("image")
            return "image", [
                SeriesInfo(**{k: _decode(v) for k, v in item.items()}) for item in value
            ]
        raise ValueError(what)

    def store(self, path: Path, st: os.stat_result, what: str, value: Any) -> None:
        """Remember what was read from ``path`` (called from the scan's reading threads)."""
        try:
            if what == "skip":
                payload: Any = value
            elif what == "header":
                if not _HEADER_OK:
                    return
                payload = [_header_row(value), _tags(value.dataset)]
            elif what == "non-image":
                ds, reason = value
                payload = {"tags": _tags(ds), "reason": reason}
            elif what == "image":
                payload = [_fields(v) for v in value]
            else:
                return
        except (_NotCached, TypeError, ValueError, KeyError, AttributeError):
            return
        with self._lock:
            self._new[str(path)] = [_key(st), what, payload]
            self._changed = True

    def save(self) -> None:
        """Write the entries of this scan (only files seen in it) and keep the folder of
        caches within its bounds. A failure to write only costs the next scan its speed."""
        if not self._new or len(self._new) > MAX_ENTRIES:
            return
        if not self._changed and len(self._new) == len(self._old):
            return  # every file came from the cache: it holds this scan already
        files, bases = _compact(self._new)
        data = {
            "fingerprint": fingerprint(),
            "root": self.root,
            "written_ns": time.time_ns(),
            # Headers above the memory limit are refused when read: another limit, another scan.
            "limit": max_alloc_bytes(),
            "bases": bases,
            "files": files,
        }
        try:
            text = json.dumps(data, separators=(",", ":"))
            fd, tmp = tempfile.mkstemp(prefix=".scan.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fp:
                    if os.name == "posix":
                        os.fchmod(fp.fileno(), PRIVATE_FILE_MODE)
                    fp.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _trim(self.path.parent)
        except (OSError, ValueError, TypeError):
            return


def _compact(entries: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Entries with each header's tags written as the difference from the first file of its
    series (the tags of one series are mostly the same: a third of the size)."""
    study = _HEADER_FIELDS.index("study_uid")
    series = _HEADER_FIELDS.index("series_uid")
    base_of: dict[tuple[str, str], int] = {}
    bases: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    for path, (key, what, value) in entries.items():
        if what != "header":
            out[path] = [key, what, value]
            continue
        row, tags = value
        k = base_of.setdefault((row[study], row[series]), len(bases))
        if k == len(bases):
            bases.append(tags)
        base = bases[k]
        differ = {kw: v for kw, v in tags.items() if base.get(kw, _ABSENT) != v}
        absent = [kw for kw in base if kw not in tags]
        out[path] = [key, what, [row, k, differ, absent]]
    return out, bases


_ABSENT = object()


def _trim(folder: Path) -> None:
    """Drop the least recently written caches beyond MAX_CACHE_FILES or MAX_CACHE_BYTES."""
    caches = []
    for p in folder.glob("*.json"):
        try:
            st = p.stat()
        except OSError:
            continue
        caches.append((st.st_mtime_ns, st.st_size, p))
    caches.sort(reverse=True)
    total = 0
    for k, (_, size, p) in enumerate(caches):
        total += size
        if k >= MAX_CACHE_FILES or total > MAX_CACHE_BYTES:
            p.unlink(missing_ok=True)
