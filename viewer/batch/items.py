"""What a batch analyses: one work item per series (each volume of a multi-volume series is
its own item), from a folder tree; items that cannot be analysed carry the reason. A folder
tree is scanned while the workers already analyse the series found first (``FolderScan``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radlens_core.series import series_key


@dataclass(frozen=True)
class WorkItem:
    """One series to analyse. ``series`` is what the worker opens: a scanned
    ``viewer.study.records.SeriesInfo`` (folder source) or a PACS series reference
    (``viewer.batch.pacs_source.PacsSeries``). ``skip`` is a sentence when the series
    cannot be analysed at all (no pixels, cannot be assembled): it is never sent to a worker.
    ``generation`` counts the times the scan handed this series out: a series found again
    with more files (a later folder held some of its slices) is analysed again, and the
    result of an older generation is dropped."""

    key: str
    source: str
    description: str
    series: Any
    skip: str = ""
    generation: int = 0


def _describe(info: Any) -> str:
    number = f"#{info.series_number}" if info.series_number is not None else ""
    bits = [info.modality or "", number, info.description or "", info.volume_text]
    text = " ".join(b for b in bits if b)
    return text or info.series_uid


def item_of(info: Any, root: Path, generation: int = 0) -> WorkItem:
    """The work item of a scanned series. Non-image objects (SR, RTSTRUCT, PDF) and series
    that cannot be assembled carry their ``skip`` reason, so the summary lists them too."""
    skip = ""
    if info.kind == "non-image":
        skip = f"no pixels to analyse ({'; '.join(info.problems) or info.description})"
    elif not info.loadable:
        skip = f"cannot be opened: {'; '.join(info.problems) or 'unknown reason'}"
    where = info.files[0].parent if info.files else root
    key = series_key(info.series_uid)
    return WorkItem(key, str(where), _describe(info), info, skip, generation)


def folder_items(root: Path) -> tuple[list[WorkItem], list[str]]:
    """Every series under ``root`` as a work item (after the whole scan), and the files the
    scan skipped (sentences)."""
    from viewer.study.scan import scan_folder

    result = scan_folder(root)
    items: list[WorkItem] = []
    seen: set[str] = set()
    for info in result.series:
        key = series_key(info.series_uid)
        if key in seen:  # the same series twice (copies): analysed once
            continue
        seen.add(key)
        items.append(item_of(info, root))
    skipped = [f"{s.path}: {s.reason}" for s in result.skipped]
    return items, skipped


_END = object()


class FolderScan:
    """The series under ``root`` as work items, handed out while the scan goes on: a series
    is handed out when the scan leaves the folder it was found in (the scan's ``on_series``
    reports, as the viewer opens a series before its scan ends), so the workers start on
    the first series while the driver still reads the headers of the rest. When the scan
    ends, a series it completed with files from a later folder is handed out again (a newer
    ``generation``); one never reported is handed out then. ``notes`` holds the skipped
    files' sentences once the iteration ends. Iterate once; ``close`` stops the scan."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.notes: list[str] = []
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._handed: dict[str, tuple[tuple[Path, ...], int]] = {}
        self._thread = threading.Thread(target=self._scan, name="batch-scan", daemon=True)

    def __iter__(self) -> Iterator[WorkItem]:
        self._thread.start()
        try:
            while True:
                got = self._queue.get()
                if got is _END:
                    return
                if isinstance(got, BaseException):
                    raise got
                yield got
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    # -- on the scan thread -------------------------------------------------------------------
    def _hand_out(self, info: Any, final: bool) -> None:
        key = series_key(info.series_uid)
        files = tuple(info.files)
        before = self._handed.get(key)
        if before is None:
            generation = 0
        elif final and before[0] != files:
            generation = before[1] + 1
        else:
            return
        self._handed[key] = (files, generation)
        self._queue.put(item_of(info, self.root, generation))

    def _reported(self, found: list[Any]) -> None:
        for info in found:
            self._hand_out(info, final=False)

    def _scan(self) -> None:
        from viewer.study.scan import scan_folder

        try:
            result = scan_folder(self.root, cancel=self._stop.is_set, on_series=self._reported)
            seen: set[str] = set()
            for info in result.series:
                key = series_key(info.series_uid)
                if key in seen:  # the same series twice (copies): analysed once
                    continue
                seen.add(key)
                self._hand_out(info, final=True)
            self.notes = [f"{s.path}: {s.reason}" for s in result.skipped]
        except BaseException as exc:  # noqa: BLE001 - raised again on the iterating thread
            self._queue.put(exc)
        finally:
            self._queue.put(_END)
