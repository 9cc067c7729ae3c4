"""RT Structure Set (RTSTRUCT) import and export.

Import: each ROI's closed planar contours (patient mm) filled onto the referenced series'
slices (pixel centres inside, even-odd rule for holes), names and ROIDisplayColor kept, into
the label document as one undoable step. Export: each label's outline per slice, traced along
pixel edges, so import gives back exactly the exported voxels.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from viewer.labels.contours import fill, trace
from viewer.labels.model import LabelError, LabelSet, annotation_class
from viewer.study.volume import Volume

RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"


class RtStructError(LabelError, UserError):
    """An RTSTRUCT that cannot be read or written; the message names the file and why."""


@dataclass
class RtImport:
    array: np.ndarray  # uint8 (z, y, x) label indices
    label_set: LabelSet
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.label_set]


def _slice_axis(volume: Volume, xyz: np.ndarray) -> tuple[int, float]:
    """The (x, y, z) index axis a contour lies across, and its index along it."""
    spread = np.ptp(xyz, axis=0) if len(xyz) > 1 else np.zeros(3)
    axis = int(np.argmin(spread))
    return axis, float(np.mean(xyz[:, axis]))


def read_rtstruct(path: Path | str, volume: Volume) -> RtImport:
    """The ROIs of an RTSTRUCT on ``volume``'s grid. Raises RtStructError with a sentence."""
    import pydicom

    path = Path(path)
    try:
        try:
            ds = pydicom.dcmread(str(path))
        except pydicom.errors.InvalidDicomError:
            # Written without the preamble (as pydicom's own test file is): read when its
            # dataset says it is an RTSTRUCT, which is checked next.
            ds = pydicom.dcmread(str(path), force=True)
    except FileNotFoundError:
        raise RtStructError(f"{path}: no such file") from None
    except (OSError, pydicom.errors.InvalidDicomError, ValueError) as exc:
        raise RtStructError(f"{path}: cannot read it as DICOM ({exc})") from exc
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_STORAGE:
        raise RtStructError(f"{path}: not an RTSTRUCT (SOP class {ds.get('SOPClassUID', '?')})")
    own_for = str(volume.meta.get("frame_of_reference_uid") or "")
    rois = {int(r.ROINumber): r for r in ds.get("StructureSetROISequence") or []}
    fors = {str(r.get("ReferencedFrameOfReferenceUID", "")) for r in rois.values()} - {""}
    if own_for and fors and own_for not in fors:
        raise RtStructError(
            f"{path}: its frame of reference ({', '.join(sorted(fors))}) is not this series' "
            f"({own_for}): it belongs to another series, or its UIDs were remapped by "
            "de-identification"
        )
    contours = list(ds.get("ROIContourSequence") or [])
    if not contours:
        raise RtStructError(f"{path}: the RTSTRUCT holds no contours")
    if len(contours) > 255:
        raise RtStructError(f"{path}: {len(contours)} ROIs; a label map holds at most 255")
    inv = np.linalg.inv(volume.affine_lps)
    size_xyz = volume.shape[::-1]
    notes: list[str] = []
    masks: list[tuple[str, str, np.ndarray]] = []
    off_slice = skipped = 0
    for item in contours:
        number = int(item.get("ReferencedROINumber", 0))
        roi = rois.get(number)
        name = str(roi.get("ROIName", "")) if roi is not None else ""
        name = (name or f"ROI {number}")[:64]
        colour = item.get("ROIDisplayColor")
        hexcol = "#" + "".join(f"{int(v):02x}" for v in colour) if colour else "#ff0000"
        mask = np.zeros(volume.shape, dtype=bool)
        per_plane: dict[tuple[int, int], list[np.ndarray]] = {}
        for c in item.get("ContourSequence") or []:
            if str(c.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                skipped += 1
                continue
            pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            xyz = pts @ inv[:3, :3].T + inv[:3, 3]
            axis, where = _slice_axis(volume, xyz)
            index = int(round(where))
            if abs(where - index) > 0.05:
                off_slice += 1
            if not 0 <= index < size_xyz[axis] or abs(where - index) > 0.5:
                skipped += 1
                continue
            u, v = [a for a in (2, 1, 0) if a != axis]  # plane axes in (z, y, x) array order
            per_plane.setdefault((axis, index), []).append(xyz[:, [u, v]])
        for (axis, index), polys in per_plane.items():
            arr_axis = 2 - axis
            plane_shape = [s for k, s in enumerate(volume.shape) if k != arr_axis]
            region = fill(plane_shape, polys)
            sl: list[Any] = [slice(None)] * 3
            sl[arr_axis] = index
            mask[tuple(sl)] ^= region
        masks.append((name, hexcol, mask))
    # Nested structures (a BODY around organs) are common: larger ROIs are painted first so
    # smaller ones stay visible; the overlap is said.
    order = sorted(range(len(masks)), key=lambda k: -int(masks[k][2].sum()))
    out = np.zeros(volume.shape, dtype=np.uint8)
    classes = []
    names: set[str] = set()
    overlap = 0
    empty = [masks[k][0] for k in order if not masks[k][2].any()]
    if empty:
        notes.append(f"ROIs with no closed contour on this series: {', '.join(empty)}")
    for k in order:
        name, colour, mask = masks[k]
        if not mask.any():
            continue
        index = k + 1
        if name in names:
            name = f"{name} ({index})"
        names.add(name)
        classes.append(annotation_class(index, name, colour))
        overlap += int(np.count_nonzero(mask & (out != 0)))
        out[mask] = index
    if overlap:
        notes.append(
            f"{overlap} voxels lie in more than one ROI; each shows the smallest ROI it is in"
        )
    if off_slice:
        notes.append(f"{off_slice} contours lie between slices and were put on the nearest one")
    if skipped:
        notes.append(f"{skipped} contours were not closed planar contours on this series (skipped)")
    return RtImport(out, LabelSet(tuple(sorted(classes, key=lambda c: c.index))), notes)


def merge_rtstruct(doc: Any, rt: RtImport, path: Path | str) -> RtImport:
    """Put read ROIs into the document's label map and label table as one undoable step; an
    index held by another class in use moves the ROI to a free index (said in ``notes``)."""
    from viewer.labels.merge import merge_labels

    try:
        merged, notes = merge_labels(
            doc, rt.array, list(rt.label_set), str(path), f"import {Path(path).name}"
        )
    except LabelError as exc:
        raise RtStructError(str(exc)) from exc
    rt.label_set = LabelSet(tuple(merged.values()))
    rt.notes += [f"ROI {n}" for n in notes]
    return rt


def import_rtstruct_into(doc: Any, path: Path | str, volume: Volume) -> RtImport:
    """Read an RTSTRUCT onto ``volume`` and merge it into the document (``merge_rtstruct``)."""
    return merge_rtstruct(doc, read_rtstruct(path, volume), path)


def build_rtstruct(
    volume: Volume, labelmap: np.ndarray, label_set: LabelSet, sources: list[Any]
) -> Any:
    """An RT Structure Set of every label present: per slice, its outlines along pixel
    edges in patient mm, referencing ``sources`` (the series' datasets in z order, already
    de-identified when the export is)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    from viewer.labels.dicomseg import TYPE2_COPIED

    if len(sources) != volume.shape[0]:
        raise RtStructError("RTSTRUCT export needs one source DICOM file per slice")
    first = sources[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(RTSTRUCT_STORAGE)
    ds.file_meta.MediaStorageSOPInstanceUID = sop = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_STORAGE, sop
    for keyword in (*TYPE2_COPIED, "StudyInstanceUID", "PatientIdentityRemoved",
                    "DeidentificationMethod"):  # fmt: skip
        setattr(ds, keyword, first.get(keyword, ""))
    if not ds.PatientIdentityRemoved:
        del ds.PatientIdentityRemoved
        del ds.DeidentificationMethod
    now = datetime.datetime.now()
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "RTSTRUCT", generate_uid(), 901
    ds.Manufacturer, ds.InstanceNumber = "RadLens", 1
    ds.StructureSetLabel, ds.StructureSetName = "RadLens", "RadLens labels"
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.StructureSetDate, ds.StructureSetTime
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = for_uid = str(first.FrameOfReferenceUID)
    images = [_image_ref(s) for s in sources]
    series = Dataset()
    series.SeriesInstanceUID = str(first.SeriesInstanceUID)
    series.ContourImageSequence = Seq(images)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    study.ReferencedSOPInstanceUID = str(first.StudyInstanceUID)
    study.RTReferencedSeriesSequence = Seq([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = for_uid
    frame.RTReferencedStudySequence = Seq([study])
    ds.ReferencedFrameOfReferenceSequence = Seq([frame])
    affine = volume.affine_lps
    roi_items, contour_items, observations = [], [], []
    present = [c for c in label_set if np.any(labelmap == c.index)]
    if not present:
        raise RtStructError("the label map is empty: there is nothing to write as RTSTRUCT")
    for number, c in enumerate(present, start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, for_uid
        roi.ROIName, roi.ROIGenerationAlgorithm = c.name[:64], "MANUAL"
        roi_items.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [int(c.color[i : i + 2], 16) for i in (1, 3, 5)]
        seq = []
        for z in np.flatnonzero((labelmap == c.index).any(axis=(1, 2))):
            for loop in trace(labelmap[z] == c.index):
                zyx = np.c_[np.full(len(loop), z, float), loop]
                xyz1 = np.c_[zyx[:, ::-1], np.ones(len(loop))]
                lps = (xyz1 @ affine.T)[:, :3]
                contour = Dataset()
                contour.ContourImageSequence = Seq([_image_ref(sources[z])])
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(loop)
                contour.ContourData = [f"{v:.4f}" for v in lps.reshape(-1)]
                seq.append(contour)
        item.ContourSequence = Seq(seq)
        contour_items.append(item)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = number, number
        obs.RTROIInterpretedType, obs.ROIInterpreter = "ORGAN", ""
        observations.append(obs)
    ds.StructureSetROISequence = Seq(roi_items)
    ds.ROIContourSequence = Seq(contour_items)
    ds.RTROIObservationsSequence = Seq(observations)
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def _image_ref(source: Any) -> Any:
    from pydicom.dataset import Dataset

    ref = Dataset()
    ref.ReferencedSOPClassUID = str(source.SOPClassUID)
    ref.ReferencedSOPInstanceUID = str(source.SOPInstanceUID)
    return ref
