"""Scanned headers grouped into series: each SeriesInfo finished with its counts, volumes,
geometry and problems (a mixed series split into parts), as the folder scan reports them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from viewer.study.budget import check_series_size
from viewer.study.errors import BadGeometry, SeriesAssemblyError, StudyError
from viewer.study.headers import FileHeader
from viewer.study.layout import plan_series, split_parts
from viewer.study.multivolume import FramePixels, split_volumes
from viewer.study.records import SeriesInfo


def text_value(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "") if ds is not None else ""
    return str(value) if value is not None else ""


def series_from_dataset(ds: Any, kind: str, header: FileHeader | None) -> SeriesInfo:
    number = ds.get("SeriesNumber")
    try:
        series_number = int(number) if number not in (None, "") else None
    except (TypeError, ValueError):
        series_number = None
    return SeriesInfo(
        series_uid=text_value(ds, "SeriesInstanceUID"),
        study_uid=text_value(ds, "StudyInstanceUID"),
        patient_name=text_value(ds, "PatientName"),
        patient_id=text_value(ds, "PatientID"),
        study_date=text_value(ds, "StudyDate"),
        study_description=text_value(ds, "StudyDescription"),
        modality=text_value(ds, "Modality") or "OT",
        description=text_value(ds, "SeriesDescription"),
        series_number=series_number,
        n_images=0,
        rows=header.rows if header else 0,
        cols=header.cols if header else 0,
        files=[],
        kind=kind,
    )


#: What a hostile header can make the geometry arithmetic raise; a problem of its series.
ASSEMBLY_ERRORS = (ArithmeticError, ValueError, TypeError, IndexError, np.linalg.LinAlgError)


def finish(info: SeriesInfo) -> list[SeriesInfo]:
    """Fill counts, geometry and problems of a series; a mixed series comes back in parts.

    Nothing one series holds stops the others: any failure becomes its problem."""
    try:
        return _finish_series(info)
    except ASSEMBLY_ERRORS as exc:
        first = info.files[0].name if info.files else "?"
        info.problems.append(
            f"cannot be assembled (file {first}: {type(exc).__name__}: {exc}); not loaded"
        )
        info.loadable = False
        info.shape = None
        return [info]


def _finish_series(info: SeriesInfo) -> list[SeriesInfo]:
    if info.kind == "non-image":
        info.n_images = len(info.files)
        info.loadable = False
        return [info]
    info.n_images = sum(h.frames for h in info.headers)
    try:
        check_series_size(info.headers)
    except StudyError as exc:
        info.problems.append(str(exc))
        info.loadable = False
        return [info]
    try:
        plan_series(info.headers)
    except BadGeometry as exc:
        info.problems.append(exc.reason)
        info.loadable = False
        return [info]
    except SeriesAssemblyError as exc:
        why = exc.reason.split("; open the parts separately")[0]
        parts = split_parts(info.headers)
    else:
        parts = [info.headers]
    if len(parts) <= 1:
        return _volumes(info, info.headers, info.series_uid, [])
    # Each stack of one size and orientation is shown on its own; the problem says why.
    out = []
    for k, headers in enumerate(parts):
        uid = info.series_uid if k == 0 else f"{info.series_uid}#{k + 1}"
        out.extend(_volumes(info, list(headers), uid, [f"part {k + 1} of {len(parts)}: {why}"]))
    return out


def _volumes(
    info: SeriesInfo, headers: list[FileHeader], uid: str, problems: list[str]
) -> list[SeriesInfo]:
    """One stack of a series as its volumes: copies collapsed, repeats split (each volume
    keyed ``<uid>#vol<k>`` so its labels are its own; a single volume keeps ``uid``)."""
    split = split_volumes(headers, FramePixels())
    notes = problems + split.notes
    if split.refusal is not None:
        refused = replace(
            info,
            series_uid=uid,
            files=[h.path for h in headers],
            headers=list(headers),
            problems=[*notes, split.refusal],
            loadable=False,
            shape=None,
            duplicates=split.duplicates,
        )
        refused.n_images = sum(len(h.selected_frames) for h in headers)
        return [refused]
    out = []
    for part in split.volumes:
        several = part.count > 1
        volume = replace(
            info,
            series_uid=f"{uid}#vol{part.index}" if several else uid,
            files=list(dict.fromkeys(h.path for h in part.headers)),
            headers=list(part.headers),
            rows=part.headers[0].rows,
            cols=part.headers[0].cols,
            problems=list(notes),
            volume_index=part.index,
            volume_count=part.count,
            volume_label=part.label,
            volume_group=uid if several else "",
            time_series=part.temporal and several,
            duplicates=split.duplicates,
        )
        _plan(volume)
        out.append(volume)
    return out


def _plan(info: SeriesInfo) -> None:
    info.n_images = sum(len(h.selected_frames) for h in info.headers)
    try:
        check_series_size(info.headers)
        layout = plan_series(info.headers)
    except StudyError as exc:
        info.problems.append(exc.reason if isinstance(exc, SeriesAssemblyError) else str(exc))
        info.loadable = False
        return
    info.problems.extend(layout.warnings)
    info.shape = layout.shape[:3]  # type: ignore[assignment]
    info.spacing = layout.spacing


def in_order(found: list[SeriesInfo]) -> list[SeriesInfo]:
    return sorted(
        found,
        key=lambda s: (
            s.study_date,
            s.study_uid,
            s.kind != "dicom",
            s.series_number or 0,
            s.series_uid,
        ),
    )


def snapshot(info: SeriesInfo) -> list[SeriesInfo]:
    """A series as far as it is known now, finished on a copy (the scan goes on adding to
    ``info``)."""
    return finish(
        replace(
            info,
            files=list(info.files),
            headers=list(info.headers),
            problems=list(info.problems),
        )
    )
