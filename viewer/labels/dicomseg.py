"""DICOM-SEG (BINARY, one segment per label) referencing the source series, via highdicom."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from viewer.labels.model import LabelError, LabelSet
from viewer.study.volume import Volume


class SegExportError(LabelError, UserError):
    """A DICOM-SEG that cannot be made; the message says why and what to do."""


def _property_codes(name: str) -> tuple[Any, Any]:
    """(category, type) codes for a label name; unknown names are generic 'Tissue'."""
    from pydicom.sr.codedict import codes

    n = name.lower()
    abnormal = codes.SCT.MorphologicallyAbnormalStructure
    if "nodule" in n:
        return abnormal, codes.SCT.Nodule
    if "lesion" in n or "tumor" in n or "tumour" in n or "mass" in n:
        return abnormal, codes.SCT.Lesion
    if "lung" in n:
        return codes.SCT.Organ, codes.SCT.Lung
    return codes.SCT.Tissue, codes.SCT.Tissue


def read_sources(volume: Volume) -> list[Any]:
    """The source datasets in z order, read (read-only, no pixels) from Volume.meta['source_files']."""
    import pydicom

    files = volume.meta.get("source_files")
    if not files:
        raise SegExportError(
            "DICOM-SEG needs the source DICOM files of the series; this series was not loaded "
            "from DICOM (export NIfTI or NRRD instead)"
        )
    if len(files) != volume.shape[0]:
        raise SegExportError(
            f"DICOM-SEG needs one source file per slice: {len(files)} files for {volume.shape[0]} slices "
            "(multi-frame sources are not supported yet)"
        )
    frames = volume.meta.get("frame_index") or []
    if any(frames) or len(set(map(str, files))) != len(files):
        raise SegExportError(
            "DICOM-SEG export of a multi-frame source series is not supported yet; export NIfTI instead"
        )
    out = []
    for f in files:
        try:
            out.append(pydicom.dcmread(str(f), stop_before_pixels=True))
        except OSError as exc:
            from viewer.labels.export import write_problem

            raise SegExportError(
                f"cannot read the source DICOM file {f}: {write_problem(exc)}"
            ) from exc
        except pydicom.errors.InvalidDicomError as exc:
            raise SegExportError(f"{f}: cannot read the source DICOM file ({exc})") from exc
    return out


#: Type-2 attributes of the Patient and General Study modules that highdicom copies from the
#: first source into the SEG. Type 2 means present, possibly empty: a source that omits one
#: (as many toolkits' files do) gets it zero-length, which the standard allows.
TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)


def with_type2(sources: list[Any]) -> list[Any]:
    """The sources with every absent TYPE2_COPIED attribute present and empty: copies of
    the datasets that lack one (the caller's datasets, and the files, are never changed)."""
    import copy

    out = []
    for ds in sources:
        missing = [k for k in TYPE2_COPIED if k not in ds]
        if missing:
            ds = copy.deepcopy(ds)
            for keyword in missing:
                setattr(ds, keyword, "")
        out.append(ds)
    return out


def build_segmentation(
    volume: Volume,
    labelmap: np.ndarray,
    label_set: LabelSet,
    sources: list[Any],
    algorithm: str = "MANUAL",
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> tuple[Any, dict[int, int]]:
    """A highdicom Segmentation plus {segment number: label index}.

    ``sources`` must be in z order (already de-identified when the export is). Segment
    numbers run 1..N over the labels present, as BINARY segmentations require."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    present = [c for c in label_set if np.any(labelmap == c.index)]
    if not present:
        raise SegExportError("the label map is empty: there is nothing to write as DICOM-SEG")
    if any(c.index not in label_set for c in present):
        raise SegExportError("the label map uses labels missing from the label table")
    pixels = np.stack([labelmap == c.index for c in present], axis=-1)
    descriptions = []
    for number, c in enumerate(present, start=1):
        category, prop_type = _property_codes(c.name)
        algo = None
        if algorithm != "MANUAL":
            algo = hd.AlgorithmIdentificationSequence(
                name="RadLens",
                family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"),
                version="1",
            )
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=c.name[:64],
                segmented_property_category=category,
                segmented_property_type=prop_type,
                algorithm_type=algorithm,
                algorithm_identification=algo,
                tracking_uid=generate_uid(),
                tracking_id=f"{c.name} ({c.index})"[:64],
                display_color=hd.color.CIELabColor.from_string(c.color),
            )
        )
    try:
        seg = hd.seg.Segmentation(
            source_images=with_type2(sources),
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=series_uid or generate_uid(),
            series_number=900,
            sop_instance_uid=sop_uid or generate_uid(),
            instance_number=1,
            manufacturer="RadLens",
            manufacturer_model_name="RadLens viewer",
            software_versions="0.1.0",
            device_serial_number="0",
            content_label="LABELS",
            content_description="RadLens labels",
            omit_empty_frames=True,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise SegExportError(f"highdicom refused the segmentation: {exc}") from exc
    return seg, {n: c.index for n, c in enumerate(present, start=1)}


def write_segmentation(seg: Any, path: Path) -> None:
    seg.save_as(str(path), enforce_file_format=True)
