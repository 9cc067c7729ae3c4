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

from radlens_core.errors import UserError
from radlens_core.results import LabelClass
from viewer.labels.model import LabelError, LabelSet, annotation_class
from viewer.study.volume import Volume

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
#: A SEG larger than this (frames x rows x columns) is refused before its pixels are read.
MAX_SEG_PIXELS = 4 * 1024**3
_TRACKED_INDEX = re.compile(r"\((\d{1,3})\)\s*$")


class SegImportError(LabelError, UserError):
    """A DICOM-SEG that cannot be imported onto a series; the message names the file and why."""


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


def _item(group: Any, keyword: str) -> Any:
    seq = group.get(keyword) if group is not None else None
    return seq[0] if seq else None


class _Placer:
    """Maps frames of one orientation/spacing onto the series array (z, y, x) by slicing."""

    def __init__(self, volume: Volume, iop: Any, spacing: Any, path: Path) -> None:
        self.volume, self.path = volume, path
        row_cos, col_cos = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
        dy, dx = float(spacing[0]), float(spacing[1])
        self.inv = np.linalg.inv(volume.affine_lps)
        inv3 = self.inv[:3, :3]
        steps = [inv3 @ (col_cos * dy), inv3 @ (row_cos * dx)]  # per frame row, per frame column
        self.axes, self.signs = [], []
        for step in steps:
            axis = int(np.argmax(np.abs(step)))
            unit = np.zeros(3)
            unit[axis] = np.sign(step[axis])
            if not np.allclose(step, unit, atol=2e-3):
                raise SegImportError(
                    f"{path}: its frames are not on the series' voxel grid (orientation or pixel "
                    "spacing differs); resample the SEG to the series first"
                )
            self.axes.append(axis)
            self.signs.append(int(unit[axis]))
        if self.axes[0] == self.axes[1]:
            raise SegImportError(f"{path}: its frame orientation is degenerate")
        self.fixed = 3 - sum(self.axes)  # the (x, y, z) axis a frame lies across

    def region(
        self, position: Any, shape: tuple[int, int]
    ) -> tuple[tuple[Any, ...], bool, bool, bool]:
        """(index into the (z, y, x) array, flip rows, flip columns, transpose)."""
        o = self.inv @ np.append(np.asarray(position, float), 1.0)
        if not np.allclose(o[:3], np.round(o[:3]), atol=0.05):
            raise SegImportError(
                f"{self.path}: a frame at {tuple(np.round(position, 2))} mm falls between the "
                "series' voxels; resample the SEG to the series first"
            )
        o = np.round(o[:3]).astype(int)
        size = self.volume.shape[::-1]  # (x, y, z)
        index: list[Any] = [None, None, None]
        if not 0 <= o[self.fixed] < size[self.fixed]:
            raise SegImportError(
                f"{self.path}: a frame at {tuple(np.round(position, 2))} mm lies outside the series"
            )
        index[2 - self.fixed] = int(o[self.fixed])
        flips = []
        for axis, sign, n in zip(self.axes, self.signs, shape, strict=True):
            lo = o[axis] if sign > 0 else o[axis] - n + 1
            if lo < 0 or lo + n > size[axis]:
                raise SegImportError(
                    f"{self.path}: a frame at {tuple(np.round(position, 2))} mm extends outside the series"
                )
            index[2 - axis] = slice(int(lo), int(lo + n))
            flips.append(sign < 0)
        transpose = (2 - self.axes[0]) > (2 - self.axes[1])
        return tuple(index), flips[0], flips[1], transpose


def read_seg(path: Path | str, volume: Volume) -> SegImport:
    """The SEG at ``path`` on ``volume``'s grid. Raises SegImportError with a sentence."""
    import pydicom
    from pydicom.pixels import iter_pixels

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
        why = (
            "it belongs to another series, or its UIDs were remapped by de-identification "
            "(a de-identified SEG can only be shown over the de-identified images exported with it)"
        )
        if ref_series and ref_series == volume.series_uid or sop_refs & _referenced_sops(ds):
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
        frames = iter_pixels(str(path))
        for i, frame in enumerate(frames):
            if i >= n_frames:
                break
            group = per_frame[i] if per_frame else None
            frame = np.asarray(frame)
            if seg_type == "LABELMAP":
                labels = lut[frame.astype(np.int64)] if frame.dtype != np.uint8 else lut[frame]
            else:
                seg_item = _item(group, "SegmentIdentificationSequence") or _item(
                    shared, "SegmentIdentificationSequence"
                )
                if seg_item is None:
                    raise SegImportError(f"{path}: frame {i + 1} names no segment")
                value = lut[int(seg_item.ReferencedSegmentNumber)]
                on = frame > threshold if seg_type == "FRACTIONAL" else frame != 0
                labels = np.where(on, value, 0).astype(np.uint8)
            if not labels.any():
                continue
            region = _frame_region(ds, group, shared, volume, path, placers, by_sop, frame_index, i)
            index, flip_r, flip_c, transpose = region
            if flip_r:
                labels = labels[::-1]
            if flip_c:
                labels = labels[:, ::-1]
            if transpose:
                labels = labels.T
            target = out[index]
            if target.shape != labels.shape:
                raise SegImportError(f"{path}: frame {i + 1} does not fit the series' slice size")
            on = labels != 0
            overlap += int(np.count_nonzero(on & (target != 0) & (target != labels)))
            target[on] = labels[on]
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


def _referenced_sops(ds: Any) -> set[str]:
    out = set()
    for series in ds.get("ReferencedSeriesSequence") or []:
        for inst in series.get("ReferencedInstanceSequence") or []:
            out.add(str(inst.ReferencedSOPInstanceUID))
    return out


def _frame_region(
    ds: Any,
    group: Any,
    shared: Any,
    volume: Volume,
    path: Path,
    placers: dict[tuple[Any, ...], _Placer],
    by_sop: dict[str, int],
    frame_index: list[int],
    i: int,
) -> tuple[tuple[Any, ...], bool, bool, bool]:
    """Where frame ``i`` lands: by its plane position and orientation, else by the source
    instance (and frame) it was derived from."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    position = _item(group, "PlanePositionSequence") or _item(shared, "PlanePositionSequence")
    orient = _item(group, "PlaneOrientationSequence") or _item(shared, "PlaneOrientationSequence")
    measures = _item(group, "PixelMeasuresSequence") or _item(shared, "PixelMeasuresSequence")
    if position is not None and orient is not None and measures is not None:
        iop = tuple(float(v) for v in orient.ImageOrientationPatient)
        spacing = tuple(float(v) for v in measures.PixelSpacing)
        key = iop + spacing
        if key not in placers:
            placers[key] = _Placer(volume, iop, spacing, path)
        return placers[key].region([float(v) for v in position.ImagePositionPatient], (rows, cols))
    derivation = _item(group, "DerivationImageSequence")
    source = _item(derivation, "SourceImageSequence")
    if source is not None and str(source.ReferencedSOPInstanceUID) in by_sop:
        uid = str(source.ReferencedSOPInstanceUID)
        frame = int(source.get("ReferencedFrameNumber", 1) or 1) - 1
        candidates = [z for u, z in by_sop.items() if u == uid]
        if frame_index:
            zs = [z for z, u in enumerate(volume.meta["sop_instance_uids"]) if str(u) == uid]
            candidates = [z for z in zs if frame_index[z] == frame] or candidates
        z = candidates[0]
        if (rows, cols) != volume.shape[1:]:
            raise SegImportError(f"{path}: frame {i + 1} does not fit the series' slice size")
        return (z, slice(0, rows), slice(0, cols)), False, False, False
    raise SegImportError(
        f"{path}: frame {i + 1} has neither a plane position nor a source image of this series"
    )


def import_seg_into(doc: Any, path: Path | str, volume: Volume) -> SegImport:
    """Read a SEG onto ``volume`` and put its segments into the document's label map and
    label table (names and colours kept) as one undoable step. A segment whose index holds
    another class the document uses moves to a free index (said in ``notes``)."""
    from viewer.labels.document import CompoundEdit, LabelSetEdit

    imp = read_seg(path, volume)
    if imp.array.shape != doc.shape:
        raise SegImportError(f"{path}: the series is {volume.shape}, the labels {doc.shape}")
    table = doc.label_set
    used = set(doc.labelmap.labels_present()) | {a.label for a in doc.annotations.values()}
    incoming = {s.label.index for s in imp.segments}
    lut = np.arange(256, dtype=np.uint8)
    segments = []
    for s in imp.segments:
        c = s.label
        named = [k.index for k in table if k.name == c.name]
        held = c.index in table and table.get(c.index).name != c.name and c.index in used
        if named and named[0] != c.index or held:
            taken = {k.index for k in table} | incoming
            free = named[0] if named else min(set(range(1, 256)) - taken, default=0)
            if not free:
                raise SegImportError(f"{path}: no free label index left for {c.name!r}")
            imp.notes.append(f"segment {c.name!r} imported as label {free}")
            lut[c.index] = free
            c = annotation_class(free, c.name, c.color)
        table = LabelSet((*(k for k in table if k.index != c.index and k.name != c.name), c))
        segments.append(Segment(s.number, c, s.algorithm_type, s.algorithm_name))
    imp.segments = segments
    imp.array = lut[imp.array]
    new = doc.labelmap.array.copy()
    on = imp.array != 0
    new[on] = imp.array[on]
    mask_edit = doc.labelmap.set_array(new)
    doc.apply(
        CompoundEdit(
            (LabelSetEdit(doc.label_set, table), mask_edit),
            f"import {path.name if isinstance(path, Path) else Path(path).name}",
        )
    )
    return imp
