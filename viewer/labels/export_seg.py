"""The DICOM-SEG of an export case (``seg.dcm``) and, when it is de-identified, the
de-identified source images it references (``images/``), so the SEG can be shown over them.

A de-identified SEG references remapped UIDs: it cannot be shown over the original images.
Written with the images (``with_image``) it is shown over ``images/``; without them the
export says so plainly in its warnings.
"""

from __future__ import annotations

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

NOT_OVER_ORIGINALS = (
    "seg.dcm is de-identified: it references remapped UIDs, so it cannot be shown over the "
    "original images; export with the image (--with-image) to write the de-identified images "
    "it references (images/), or export without de-identification for internal use"
)


def case_algorithm(doc: Document, algorithm: Algorithm | None) -> Algorithm:
    """AUTOMATIC for an AI result, SEMIAUTOMATIC when a person accepted a model's mask."""
    if algorithm is not None:
        return algorithm
    accepted = any(
        isinstance(a, ModelMask) and a.status in ("accepted", "edited")
        for a in doc.annotations.values()
    )
    return Algorithm("SEMIAUTOMATIC", "RadLens") if accepted else MANUAL


def write_case_seg(
    volume: Volume,
    doc: Document,
    folder: Path,
    final: Path,
    deid: bool,
    d: Deidentifier,
    image: ImageDecision,
    seg_type: str,
    algorithm: Algorithm | None = None,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Write ``folder/seg.dcm`` (+ ``images/`` when de-identified with the image); returns
    (the report's ``dicom_seg`` entry, files written, warnings)."""
    from viewer.labels import dicomseg
    from viewer.labels.export import writing

    path = folder / "seg.dcm"
    sources = dicomseg.read_sources(volume)
    files, _ = dicomseg.source_layout(volume)
    if deid:
        sources = [d.dataset(s, source=str(f)) for s, f in zip(sources, files, strict=True)]
    algo = case_algorithm(doc, algorithm)
    seg, segments = dicomseg.build_segmentation(
        volume, doc.labelmap.array, doc.label_set, sources, algo, seg_type=seg_type
    )
    if deid:  # the SEG's own header came from de-identified sources; the table applies to it too
        d.scrub(seg, required=SEG_REQUIRED)
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
    written, warnings = ["seg.dcm"], []
    if deid and image.write:
        written += write_deidentified_images(files, folder / IMAGES_FOLDER, final, d)
        info["images"] = f"{IMAGES_FOLDER}/ (the de-identified images seg.dcm references)"
    elif deid:
        info["shown_over_originals"] = False
        warnings.append(NOT_OVER_ORIGINALS)
    return info, written, warnings


def write_deidentified_images(
    files: list[str], out: Path, final: Path, d: Deidentifier
) -> list[str]:
    """De-identified copies of the source files (same remapped UIDs as the SEG's references)."""
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
