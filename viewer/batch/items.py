"""What a batch analyses: one work item per series (each volume of a multi-volume series is
its own item), from a folder tree; items that cannot be analysed carry the reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radlens_core.series import series_key


@dataclass(frozen=True)
class WorkItem:
    """One series to analyse. ``series`` is what the worker opens: a scanned
    ``viewer.study.records.SeriesInfo`` (folder source) or a PACS series reference
    (``viewer.batch.pacs_source.PacsSeries``). ``skip`` is a sentence when the series
    cannot be analysed at all (no pixels, cannot be assembled): it is never sent to a worker."""

    key: str
    source: str
    description: str
    series: Any
    skip: str = ""


def _describe(info: Any) -> str:
    number = f"#{info.series_number}" if info.series_number is not None else ""
    bits = [info.modality or "", number, info.description or "", info.volume_text]
    text = " ".join(b for b in bits if b)
    return text or info.series_uid


def folder_items(root: Path) -> tuple[list[WorkItem], list[str]]:
    """Every series under ``root`` as a work item, and the files the scan skipped (sentences).

    Non-image objects (SR, RTSTRUCT, PDF) and series that cannot be assembled are items with
    their ``skip`` reason, so the summary lists them too."""
    from viewer.study.scan import scan_folder

    result = scan_folder(root)
    items: list[WorkItem] = []
    seen: set[str] = set()
    for info in result.series:
        key = series_key(info.series_uid)
        if key in seen:  # the same series twice (copies): analysed once
            continue
        seen.add(key)
        skip = ""
        if info.kind == "non-image":
            skip = f"no pixels to analyse ({'; '.join(info.problems) or info.description})"
        elif not info.loadable:
            skip = f"cannot be opened: {'; '.join(info.problems) or 'unknown reason'}"
        where = info.files[0].parent if info.files else root
        items.append(WorkItem(key, str(where), _describe(info), info, skip))
    skipped = [f"{s.path}: {s.reason}" for s in result.skipped]
    return items, skipped
