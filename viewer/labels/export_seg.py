"""The DICOM objects of an export case: ``seg.dcm`` (DICOM-SEG), ``rtstruct.dcm`` and
``measurements.dcm`` (SR TID 1500), each reported on its own when it fails; and, when they
are de-identified, the de-identified source images they reference (``images/``).

De-identified objects reference remapped UIDs: they cannot be shown over the original
images. Written with the image (``with_image``) they are shown over ``images/``; without it
the export says so plainly in its warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewer.labels.deid import Deidentifier
from viewer.labels.deid_burned_in import ImageDecision
from viewer.labels.dicomseg import MANUAL, Algorithm
from viewer.labels.document import Document
from viewer.labels.model import ModelMask
from viewer.study.volume import Volume

#: What the DICOM-SEG needs present among the table's combined rows: the Enhanced General
#: Equipment module's Device Serial Number (Type 1), RadLens's own dummy value.
SEG_REQUIRED = {"DeviceSerialNumber": "D"}
IMAGES_FOLDER = "images"
DICOM_FORMATS = {"dicom-seg": "seg.dcm", "rtstruct": "rtstruct.dcm", "sr": "measurements.dcm"}

NOT_OVER_ORIGINALS = (
    "{names} de-identified: it references remapped UIDs, so it cannot be shown over the "
    "original images; export with the image (--with-image) to write the de-identified images "
    "it references (images/), or export without de-identification for internal use"
)


@dataclass
class DicomOutputs:
    """What the DICOM objects of a case left in the report."""

    files: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def case_algorithm(doc: Document, algorithm: Algorithm | None) -> Algorithm:
    """AUTOMATIC for an AI result, SEMIAUTOMATIC when a person accepted a model's mask."""
    if algorithm is not None:
        return algorithm
    accepted = any(
        isinstance(a, ModelMask) and a.status in ("accepted", "edited")
        for a in doc.annotations.values()
    )
    return Algorithm("SEMIAUTOMATIC", "RadLens") if accepted else MANUAL


def write_case_dicom(
    volume: Volume,
    doc: Document,
    folder: Path,
    final: Path,
    formats: list[str],
    deid: bool,
    d: Deidentifier,
    image: ImageDecision,
    seg_type: str,
    algorithm: Algorithm | None = None,
) -> DicomOutputs:
    """Write the requested DICOM objects; one that cannot be made is in ``failed`` (with
    the sentence why) and never stops the others."""
    from viewer.labels import dicomseg
    from viewer.labels.rtstruct import RtStructError
    from viewer.labels.sr import SrExportError

    # Errors of what a source or a label map cannot give an object: reported per format.
    # A failed write (disk full) is an ExportError and stops the export as any write does.
    refused = (dicomseg.SegExportError, RtStructError, SrExportError)
    out = DicomOutputs()
    wanted = [f for f in DICOM_FORMATS if f in formats]
    if not wanted:
        return out
    try:
        sources = dicomseg.read_sources(volume)
    except dicomseg.SegExportError as exc:
        out.failed = dict.fromkeys(wanted, str(exc))
        return out
    files, _ = dicomseg.source_layout(volume)
    if deid:
        sources = [d.dataset(s, source=str(f)) for s, f in zip(sources, files, strict=True)]
    seg = segments = None
    for fmt in wanted:
        try:
            if fmt == "dicom-seg":
                seg, segments, out.info["dicom_seg"] = _seg(
                    volume, doc, folder, final, sources, deid, d, seg_type, algorithm
                )
            elif fmt == "rtstruct":
                out.info["rtstruct"] = _rtstruct(volume, doc, folder, final, sources, deid, d)
            else:
                out.info["sr"] = _sr(volume, doc, folder, final, sources, deid, d, seg, segments)
            out.files.append(DICOM_FORMATS[fmt])
        except refused as exc:
            (folder / DICOM_FORMATS[fmt]).unlink(missing_ok=True)
            out.failed[fmt] = str(exc)
    written = [f for f in wanted if f not in out.failed]
    if deid and written and image.write:
        out.files += write_deidentified_images(files, folder / IMAGES_FOLDER, final, d)
        for fmt in written:
            out.info[fmt.replace("-", "_")]["images"] = (
                f"{IMAGES_FOLDER}/ (the de-identified images it references)"
            )
    elif deid and written:
        names = " and ".join(DICOM_FORMATS[f] for f in written)
        verb = "is" if len(written) == 1 else "are"
        out.warnings.append(NOT_OVER_ORIGINALS.format(names=f"{names} {verb}"))
        for fmt in written:
            out.info[fmt.replace("-", "_")]["shown_over_originals"] = False
    return out


def _save(ds: Any, path: Path, final: Path) -> None:
    from viewer.labels.export import writing

    with writing(path, path.parent, final / path.name):
        ds.save_as(str(path), enforce_file_format=True)


def _seg(
    volume: Volume,
    doc: Document,
    folder: Path,
    final: Path,
    sources: list[Any],
    deid: bool,
    d: Deidentifier,
    seg_type: str,
    algorithm: Algorithm | None,
) -> tuple[Any, dict[int, int], dict[str, Any]]:
    from viewer.labels import dicomseg

    algo = case_algorithm(doc, algorithm)
    seg, segments = dicomseg.build_segmentation(
        volume, doc.labelmap.array, doc.label_set, sources, algo, seg_type=seg_type
    )
    if deid:  # the SEG's own header came from de-identified sources; the table applies to it too
        d.scrub(seg, required=SEG_REQUIRED)
    path = folder / DICOM_FORMATS["dicom-seg"]
    from viewer.labels.export import writing

    with writing(path, folder, final / path.name):
        dicomseg.write_segmentation(seg, path)
    info: dict[str, Any] = {
        "type": str(seg.SegmentationType),
        "segments": {str(n): idx for n, idx in segments.items()},
        "series_instance_uid": str(seg.SeriesInstanceUID),
        "referenced_series_uid": str(sources[0].SeriesInstanceUID),
        "algorithm_type": algo.kind,
    }
    if algo.kind != "MANUAL":
        info["algorithm"] = {"name": algo.name, "version": algo.version}
    return seg, segments, info


def _rtstruct(
    volume: Volume,
    doc: Document,
    folder: Path,
    final: Path,
    sources: list[Any],
    deid: bool,
    d: Deidentifier,
) -> dict[str, Any]:
    from viewer.labels.rtstruct import build_rtstruct

    rt = build_rtstruct(volume, doc.labelmap.array, doc.label_set, sources)
    if deid:
        names = [str(r.ROIName) for r in rt.StructureSetROISequence]
        d.scrub(rt)
        # The profile empties ROI Name (a free text that may name a person in other systems);
        # these are the label table's names, exported as they are in seg.dcm and label_table.json.
        for item, name in zip(rt.StructureSetROISequence, names, strict=True):
            item.ROIName = name
    _save(rt, folder / DICOM_FORMATS["rtstruct"], final)
    return {
        "rois": {str(r.ROINumber): str(r.ROIName) for r in rt.StructureSetROISequence},
        "series_instance_uid": str(rt.SeriesInstanceUID),
    }


def _sr(
    volume: Volume,
    doc: Document,
    folder: Path,
    final: Path,
    sources: list[Any],
    deid: bool,
    d: Deidentifier,
    seg: Any,
    segments: dict[int, int] | None,
) -> dict[str, Any]:
    from viewer.labels.sr import build_report

    sr, notes = build_report(volume, doc, sources, seg, segments)
    if deid:
        d.scrub(sr)
    _save(sr, folder / DICOM_FORMATS["sr"], final)
    return {
        "template": "TID 1500",
        "series_instance_uid": str(sr.SeriesInstanceUID),
        "notes": notes,
    }


def write_deidentified_images(
    files: list[str], out: Path, final: Path, d: Deidentifier
) -> list[str]:
    """De-identified copies of the source files (same remapped UIDs as the objects' references)."""
    import pydicom

    from viewer.labels.export import ExportError, writing

    out.mkdir(exist_ok=True)
    written = []
    for i, f in enumerate(files):
        try:
            ds = pydicom.dcmread(f)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ExportError(f"cannot read the source image {f}: {exc}") from exc
        clean = d.dataset(ds, source=f)
        name = f"{IMAGES_FOLDER}/{i + 1:05d}.dcm"
        with writing(out / f"{i + 1:05d}.dcm", out.parent, final / name):
            clean.save_as(str(out / f"{i + 1:05d}.dcm"), enforce_file_format=True)
        written.append(name)
    return written
