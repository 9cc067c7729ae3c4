"""Walk a folder (or one file) and index its series from headers only: never reads pixels."""

from __future__ import annotations

import math
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from radlens_core.files import sha256_file
from viewer.study.dataset import read_dataset
from viewer.study.errors import (
    NotAnImage,
    SeriesNotFound,
    StudyError,
)
from viewer.study.headers import (
    HEADER_ERRORS,
    non_image_kind,
    read_header,
)
from viewer.study.opening import not_regular, open_regular
from viewer.study.records import Cancel, Progress, ScanResult, SeriesInfo, SkippedFile
from viewer.study.scan_cache import ScanCache
from viewer.study.scan_cache import enabled as scan_cache_enabled
from viewer.study.scan_series import (
    ASSEMBLY_ERRORS,
    finish,
    in_order,
    series_from_dataset,
    snapshot,
    text_value,
)
from viewer.study.walk import COMPANION_SUFFIXES, scan_order, walk

__all__ = [
    "ASSEMBLY_ERRORS",
    "COMPANION_SUFFIXES",
    "Cancel",
    "Progress",
    "ScanResult",
    "SeriesInfo",
    "SkippedFile",
    "file_sha256",
    "pick_series",
    "scan_folder",
]

#: File name endings read through SimpleITK as one image each.
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Header-reading threads: parsing holds the GIL, but opening files on slow media does not.
SCAN_THREADS = 4
#: Seconds between looks at the cancel flag while a file is being read.
CANCEL_POLL_S = 0.1


def is_image_file(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def file_sha256(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes: the label-store key of a non-DICOM image."""
    return "sha256:" + sha256_file(path)


def image_series(path: Path) -> list[SeriesInfo]:
    """The series of one image file: one, or one per volume of a 4D NIfTI."""
    from viewer.study.formats import image_series as listed

    return listed(path, file_sha256(path))


#: Seconds at least between two reports of the series found so far after the first (a tree
#: with a folder per file would otherwise redo its series and the browser per file).
REPORT_INTERVAL_S = 0.5
#: Called with the series found so far each time a folder of the walk is complete.
SeriesFound = Callable[[list[SeriesInfo]], None]


def scan_folder(
    path: Path | str,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    use_cache: bool = True,
    on_series: SeriesFound | None = None,
) -> ScanResult:
    """Index every series under ``path`` (recursively; a single file works too).

    Unreadable and non-DICOM files are listed in ``skipped`` with the reason; objects without
    pixels (SR, RTSTRUCT, PDF) become ``kind="non-image"`` series. ``cancel`` is checked before
    each file; a cancelled scan returns what it found so far with ``cancelled=True``.
    What each unchanged file held is taken from the scan cache (viewer.study.scan_cache)
    unless ``use_cache`` is False.

    ``on_series(found)`` (on the calling thread) gets the series found so far, finished as
    if the scan ended there, each time the scan leaves a folder in which it found series
    files: a viewer can open one before the scan has finished. A later folder may still add
    files to a series reported earlier (it is then reported again, with them); the returned
    result is the complete one.
    """
    root = Path(path)
    if not root.exists():
        raise StudyError(root, "no such file or folder")
    skipped: list[SkippedFile] = []
    files, cancelled = walk(root, cancel, skipped)
    series: dict[tuple[str, str, str], SeriesInfo] = {}
    images: list[SeriesInfo] = []
    ordered = scan_order(files, skipped, cancel)
    total = max(len(ordered), 1)
    stop = threading.Event()

    cache = ScanCache(root) if use_cache and scan_cache_enabled() else None

    def in_cache(f: Path) -> os.stat_result | None:
        """``f``'s stat when the cache holds it unchanged (its entry is revived only when
        the scan reaches it, so a reopened folder reports its first series at once)."""
        if cache is None:
            return None
        try:
            st = os.stat(f)
        except OSError:
            return None
        return st if stat.S_ISREG(st.st_mode) and cache.fresh(f, st) else None

    def cached(f: Path, st: os.stat_result) -> tuple[str, Any]:
        """What the cache holds for ``f`` (looked up on this thread: cheaper than a trip
        through the pool); read now when its entry cannot be used after all."""
        assert cache is not None
        got = cache.lookup(f, st)
        return got if got is not None else read_one(f)

    def read_one(f: Path) -> tuple[str, Any]:
        if stop.is_set():
            return "stopped", None
        # Only regular files are opened: a FIFO would block the scan for ever.
        try:
            st = os.stat(f)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            return "skip", not_regular(f) or "cannot be examined"
        got = read_file(f)
        if cache is not None:
            cache.store(f, st, *got)
        return got

    def read_file(f: Path) -> tuple[str, Any]:
        try:
            if is_image_file(f):
                return "image", image_series(f)  # one entry per volume of a 4D file
            return "header", read_header(f, keep=True)
        except NotAnImage as exc:
            try:
                with open_regular(f) as fp:
                    return "non-image", (read_dataset(f, fp, stop_before_pixels=True), exc.reason)
            except StudyError as again:
                return "skip", again.reason
            except HEADER_ERRORS as again:
                return "skip", f"unreadable ({again})"
        except StudyError as exc:
            return "skip", exc.reason
        except Exception as exc:  # noqa: BLE001 - one odd file must never stop the scan
            return "skip", f"unreadable ({type(exc).__name__}: {exc})"

    def result_of(future: Future) -> tuple[str, Any] | None:
        """The future's result, or None when the user cancels while waiting for it."""
        while True:
            try:
                return future.result(timeout=CANCEL_POLL_S)
            except FutureTimeout:
                if cancel is not None and cancel():
                    return None

    # Threads overlap the waiting on slow disks and network shares; results are consumed
    # in order here, so grouping, progress and cancel stay on the calling thread, which
    # looks at the cancel flag at least every CANCEL_POLL_S even while a file is slow.
    # Partial reports: a series' snapshot is redone only when a folder added to it.
    snapshots: dict[tuple[str, str, str], list[SeriesInfo]] = {}
    touched: set[tuple[str, str, str]] = set()
    folder: Path | None = None
    images_seen = [0]
    last_report = [-math.inf]

    def report() -> None:
        if on_series is None or time.monotonic() - last_report[0] < REPORT_INTERVAL_S:
            return
        last_report[0] = time.monotonic()
        for key in touched:
            snapshots[key] = snapshot(series[key])
        touched.clear()
        images_seen[0] = len(images)
        on_series(in_order([s for parts in snapshots.values() for s in parts]) + images)

    pool = ThreadPoolExecutor(SCAN_THREADS)
    try:
        futures: list[Future | os.stat_result] = []
        for f in ordered:
            st = in_cache(f)
            futures.append(pool.submit(read_one, f) if st is None else st)
        for i, (f, future) in enumerate(zip(ordered, futures, strict=True)):
            got = result_of(future) if isinstance(future, Future) else cached(f, future)
            if got is None or (cancel is not None and cancel()):
                cancelled = True
                break
            what, value = got
            if f.parent != folder:
                if folder is not None and (touched or len(images) > images_seen[0]):
                    report()
                folder = f.parent
            if progress is not None:
                progress(i / total, f"Reading {f.name} ({i + 1} of {total})")
            if what == "image":
                images.extend(value)
            elif what == "skip":
                skipped.append(SkippedFile(f, value))
            elif what == "non-image":
                ds, reason = value
                key = (
                    text_value(ds, "StudyInstanceUID"),
                    text_value(ds, "SeriesInstanceUID"),
                    "non-image",
                )
                if key not in series:
                    info = series_from_dataset(ds, "non-image", None)
                    info.description = info.description or (
                        non_image_kind(text_value(ds, "SOPClassUID")) or "object without pixels"
                    )
                    info.problems.append(reason)
                    series[key] = info
                series[key].files.append(f)
                touched.add(key)
            elif what == "header":
                # A file without SeriesInstanceUID is a series of its own, keyed by its bytes.
                uid = value.series_uid or file_sha256(f)
                key = (value.study_uid, uid, "dicom")
                if key not in series:
                    series[key] = series_from_dataset(value.dataset, "dicom", value)
                    series[key].series_uid = uid
                series[key].files.append(f)
                series[key].headers.append(value.without_dataset())
                touched.add(key)
    finally:
        stop.set()
        # A cancelled scan returns at once; a file still being read finishes on its own.
        pool.shutdown(wait=not cancelled, cancel_futures=True)
    if cache is not None:
        cache.save()
    if progress is not None and not cancelled:
        progress(1.0, f"Found {len(series) + len(images)} series in {len(files)} files")
    finished = [part for info in series.values() for part in finish(info)]
    result = in_order(finished)
    return ScanResult(root=root, series=result + images, skipped=skipped, cancelled=cancelled)


def pick_series(path: Path | str, uid: str | None = None) -> SeriesInfo:
    """The loadable series ``uid`` in ``path`` (or its only loadable series), for scripts.

    Raises SeriesNotFound naming the folder when the series is absent, when there is none,
    or when there are several and no ``uid`` says which.
    """
    path = Path(path)
    result = scan_folder(path)
    usable = [s for s in result.series if s.kind != "non-image" and s.loadable]
    if uid:
        for s in usable:
            if s.series_uid == uid:
                return s
        volumes = [s for s in usable if s.volume_group == uid]
        if volumes:
            listing = "\n".join(f"  {s.series_uid}  {s.volume_text}" for s in volumes)
            raise SeriesNotFound(
                path,
                f"series {uid} holds {len(volumes)} volumes; choose one with --series:\n" + listing,
            )
        have = ", ".join(s.series_uid for s in usable) or "none"
        raise SeriesNotFound(path, f"no loadable series {uid!r} (found: {have})")
    if not usable:
        refused = [s for s in result.series if s.kind != "non-image" and not s.loadable]
        if refused:
            # Say why the series found cannot be loaded, not merely that none can.
            why = "; ".join(
                f"{s.description or s.series_uid}: {'; '.join(s.problems)}" for s in refused[:3]
            )
            raise SeriesNotFound(path, f"no loadable image series ({why})")
        why = "; ".join(f"{s.path.name}: {s.reason}" for s in result.skipped[:3])
        raise SeriesNotFound(path, "no image series found" + (f" ({why})" if why else ""))
    if len(usable) > 1:
        listing = "\n".join(
            f"  {s.series_uid}  {s.modality} {s.description or ''} ({s.n_images} images)"
            for s in usable
        )
        raise SeriesNotFound(
            path, f"holds {len(usable)} series; choose one with --series:\n{listing}"
        )
    return usable[0]
