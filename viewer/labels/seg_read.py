"""DICOM-SEG reader: BINARY, FRACTIONAL (thresholded at 0.5) and LABELMAP segmentations placed
voxel for voxel on a loaded series, with each segment's name and colour.

A SEG is placed by its frame of reference and each frame's position and orientation (so
segments on a subset of frames, any frame order and multi-frame sources all land where they
belong); a frame without a position falls back to the source instance it references. A frame
that does not fall on the series' voxel grid is an error that says so; nothing is resampled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.results import LabelClass
from viewer.labels.model import LabelError, LabelSet, annotation_class
from viewer.labels.seg_geometry import (
    SegImportError,
    _item,
    _Placer,
    frame_region,
    iter_frames,
    referenced_sops,
)
from viewer.study.volume import Volume

__all__ = ["SegImport", "SegImportError", "Segment", "import_seg_into", "merge_seg", "read_seg"]

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
#: A SEG larger than this (frames x rows x columns) is refused before its pixels are read.
MAX_SEG_PIXELS = 4 * 1024**3
_TRACKED_INDEX = re.compile(r"\((\d{1,3})\)\s*$")


@dataclass(frozen=True)
class Segment:
    number: int
    label: LabelClass
    algorithm_type: str  # MANUAL, SEMIAUTOMATIC, AUTOMATIC
    algorithm_name: str = ""


@dataclass
class SegImport:
    """A SEG read onto a series: ``array`` (z, y, x) uint8 holds label indices of ``segments``."""

    array: np.ndarray
    segments: list[Segment]
    seg_type: str  # BINARY, FRACTIONAL, LABELMAP
    referenced_series_uid: str
    notes: list[str] = field(default_factory=list)

    @property
    def label_set(self) -> LabelSet:
        return LabelSet(tuple(s.label for s in self.segments))

    @property
    def automatic(self) -> bool:
        return any(s.algorithm_type == "AUTOMATIC" for s in self.segments)


def _colour(item: Any) -> str:
    """#rrggbb of a segment's RecommendedDisplayCIELabValue (grey when it has none)."""
    import highdicom as hd

    value = item.get("RecommendedDisplayCIELabValue")
    if value is None or len(value) != 3:
        return "#808080"
    r, g, b = hd.color.CIELabColor.from_dicom_value([int(v) for v in value]).to_rgb()
    return f"#{r:02x}{g:02x}{b:02x}"


def _segments(ds: Any, path: Path) -> list[Segment]:
    """The SEG's segments with the label index each becomes: RadLens's own index (its
    TrackingID ends in "(index)"), else the segment number, else 1..N in order."""
    # LABELMAP SEGs may describe the background as segment 0: it is not a label.
    items = [it for it in ds.get("SegmentSequence") or [] if int(it.SegmentNumber) != 0]
    if not items:
        raise SegImportError(f"{path}: the DICOM-SEG describes no segments")
    if len(items) > 255:
        raise SegImportError(f"{path}: {len(items)} segments; a label map holds at most 255 labels")
    numbers = [int(it.SegmentNumber) for it in items]
    tracked = [_TRACKED_INDEX.search(str(it.get("TrackingID", ""))) for it in items]
    own = str(ds.get("Manufacturer", "")) == "RadLens" and all(tracked)
    if own:
        indices = [int(m.group(1)) for m in tracked if m]
    else:
        indices = numbers
    if len(set(indices)) != len(indices) or not all(1 <= i <= 255 for i in indices):
        indices = list(range(1, len(items) + 1))
    out = []
    names: set[str] = set()
    for it, number, index in zip(items, numbers, indices, strict=True):
        name = str(it.get("SegmentLabel", "") or f"segment {number}")[:64]
        if name in names:  # a label table needs distinct names
            name = f"{name} ({number})"
        names.add(name)
        algo = it.get("SegmentAlgorithmName", "")
        if not algo and it.get("SegmentationAlgorithmIdentificationSequence"):
            algo = it.SegmentationAlgorithmIdentificationSequence[0].get("AlgorithmName", "")
        out.append(
            Segment(
                number,
                annotation_class(index, name, _colour(it)),
                str(it.get("SegmentAlgorithmType", "MANUAL")),
                str(algo),
            )
        )
    return out


def read_seg(path: Path | str, volume: Volume) -> SegImport:
    """The SEG at ``path`` on ``volume``'s grid. Raises SegImportError with a sentence."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except FileNotFoundError:
        raise SegImportError(f"{path}: no such file") from None
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise SegImportError(f"{path}: cannot read it as DICOM ({exc})") from exc
    if str(ds.get("SOPClassUID", "")) not in (SEG_STORAGE, LABELMAP_SEG_STORAGE):
        raise SegImportError(f"{path}: not a DICOM-SEG (SOP class {ds.get('SOPClassUID', '?')})")
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    if seg_type not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise SegImportError(f"{path}: unknown SegmentationType {seg_type!r}")
    ref_series = (
        str(_item(ds, "ReferencedSeriesSequence").SeriesInstanceUID)
        if ds.get("ReferencedSeriesSequence")
        else ""
    )
    for_uid = str(ds.get("FrameOfReferenceUID", ""))
    own_for = str(volume.meta.get("frame_of_reference_uid") or "")
    if for_uid and own_for and for_uid != own_for:
        sop_refs = set(map(str, volume.meta.get("sop_instance_uids") or []))
        other = f"series {ref_series}" if ref_series else "another series"
        why = (
            f"it belongs to {other} (open that series to import it), or its UIDs were remapped "
            "by de-identification (a de-identified SEG can only be shown over the de-identified "
            "images exported with it)"
        )
        if (ref_series and ref_series == volume.series_uid) or sop_refs & referenced_sops(ds):
            why = "the SEG references this series but another frame of reference"
        raise SegImportError(
            f"{path}: its frame of reference {for_uid} is not this series' ({own_for}): {why}"
        )
    rows, cols = int(ds.Rows), int(ds.Columns)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols * n_frames > MAX_SEG_PIXELS:
        raise SegImportError(
            f"{path}: {n_frames} frames of {rows}x{cols} pixels is too large to import"
        )
    segments = _segments(ds, path)
    lut = np.zeros(65536, dtype=np.uint8)
    for s in segments:
        lut[s.number] = s.label.index
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence") or [])
    if len(per_frame) not in (0, n_frames):
        raise SegImportError(
            f"{path}: {len(per_frame)} per-frame functional groups for {n_frames} frames"
        )
    out = np.zeros(volume.shape, dtype=np.uint8)
    notes: list[str] = []
    threshold = 0.5 * float(ds.get("MaximumFractionalValue", 255) or 255)
    overlap = 0
    placers: dict[tuple[Any, ...], _Placer] = {}
    by_sop = {str(u): z for z, u in enumerate(volume.meta.get("sop_instance_uids") or [])}
    frame_index = [int(f or 0) for f in volume.meta.get("frame_index") or []]
    try:
        for i, frame in enumerate(iter_frames(path, ds, n_frames)):
            if i >= n_frames:
                break
            group = per_frame[i] if per_frame else None
            if seg_type == "LABELMAP":
                on = frame != 0
                value = None
            else:
                seg_item = _item(group, "SegmentIdentificationSequence") or _item(
                    shared, "SegmentIdentificationSequence"
                )
                if seg_item is None:
                    raise SegImportError(f"{path}: frame {i + 1} names no segment")
                value = int(lut[int(seg_item.ReferencedSegmentNumber)])
                on = frame > threshold if seg_type == "FRACTIONAL" else frame != 0
            # Only the frame's bounding box is touched: a BINARY frame is mostly empty.
            r = np.flatnonzero(on.any(axis=1))
            if not r.size:
                continue
            c = np.flatnonzero(on.any(axis=0))
            box = (slice(int(r[0]), int(r[-1]) + 1), slice(int(c[0]), int(c[-1]) + 1))
            index, flip_r, flip_c, transpose = frame_region(
                ds, group, shared, volume, path, placers, by_sop, frame_index, i
            )
            view = out[index]  # the target plane, viewed in the frame's (row, column) order
            if transpose:
                view = view.T
            if flip_c:
                view = view[:, ::-1]
            if flip_r:
                view = view[::-1]
            if view.shape != frame.shape:
                raise SegImportError(f"{path}: frame {i + 1} does not fit the series' slice size")
            target, inside = view[box], on[box]
            labels = lut[frame[box]] if value is None else np.uint8(value)
            clash = inside & (target != 0) & (target != labels)
            overlap += int(np.count_nonzero(clash))
            np.copyto(target, labels, where=inside)
    except (ValueError, NotImplementedError, AttributeError, KeyError) as exc:
        raise SegImportError(f"{path}: cannot read its frames ({exc})") from exc
    if seg_type == "FRACTIONAL":
        notes.append(
            f"FRACTIONAL segmentation: thresholded at 0.5 (values above {threshold:g} of "
            f"{float(ds.get('MaximumFractionalValue', 255)):g} are in the segment)"
        )
    if overlap:
        notes.append(
            f"{overlap} voxels belong to more than one segment; the higher-numbered segment is kept"
        )
    if ref_series and volume.series_uid and ref_series != volume.series_uid:
        notes.append(
            f"the SEG references series {ref_series}; placed on this one by its frame of reference "
            "and geometry"
        )
    return SegImport(out, segments, seg_type, ref_series, notes)


def merge_seg(doc: Any, imp: SegImport, path: Path | str) -> SegImport:
    """Put a read SEG into the document's label map and label table (names and colours
    kept) as one undoable step; a segment whose index holds another class the document uses
    moves to a free index (said in ``notes``)."""
    from viewer.labels.merge import merge_labels

    name = Path(path).name
    try:
        merged, notes = merge_labels(
            doc, imp.array, [s.label for s in imp.segments], str(path), f"import {name}"
        )
    except LabelError as exc:
        raise SegImportError(str(exc)) from exc
    imp.segments = [
        Segment(s.number, merged[s.label.index], s.algorithm_type, s.algorithm_name)
        for s in imp.segments
    ]
    imp.notes += [f"segment {n}" for n in notes]
    return imp


def import_seg_into(doc: Any, path: Path | str, volume: Volume) -> SegImport:
    """Read a SEG onto ``volume`` and merge it into the document (``merge_seg``)."""
    return merge_seg(doc, read_seg(path, volume), path)
