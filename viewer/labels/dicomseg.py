"""DICOM-SEG writer: a label map as a LABELMAP (default) or BINARY segmentation, via highdicom.

LABELMAP (DICOM 2024, highdicom's ``SegmentationTypeValues.LABELMAP``) stores one frame per
slice whatever the number of labels, the segment number being the label index; BINARY stores
one 1-bit frame per label and slice, numbered 1..N over the labels present, as the standard
requires. Either way each segment's TrackingID ends in "(<label index>)" so RadLens reads its
own SEGs back to the same label indices (``seg_read``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from viewer.labels.model import LabelError, LabelSet
from viewer.study.volume import Volume

SEG_TYPES = ("labelmap", "binary")
DEFAULT_SEG_TYPE = "labelmap"


class SegExportError(LabelError, UserError):
    """A DICOM-SEG that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Algorithm:
    """Who made the segments: MANUAL, SEMIAUTOMATIC (a person accepted a model's) or
    AUTOMATIC (a model's, unreviewed), with the model's id and version when a model did."""

    kind: str = "MANUAL"
    name: str = ""
    version: str = ""

    @property
    def automatic(self) -> bool:
        return self.kind == "AUTOMATIC"


MANUAL = Algorithm()


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


def source_layout(volume: Volume) -> tuple[list[str], list[int] | None]:
    """(distinct source files, frame order) of a DICOM volume: one file per slice (frame
    order None), or one multi-frame file whose frame ``order[z]`` is slice z."""
    files = [str(f) for f in volume.meta.get("source_files") or []]
    if not files or volume.meta.get("format") not in (None, "", "dicom"):
        raise SegExportError(
            "DICOM-SEG needs the source DICOM files of the series; this series was not loaded "
            "from DICOM (export NIfTI or NRRD instead)"
        )
    if len(files) != volume.shape[0]:
        raise SegExportError(
            f"DICOM-SEG needs one source file per slice (or one multi-frame file): {len(files)} "
            f"for {volume.shape[0]} slices"
        )
    frames = [int(f or 0) for f in volume.meta.get("frame_index") or [0] * len(files)]
    if len(set(files)) == len(files) and not any(frames):
        return files, None
    if len(set(files)) == 1 and sorted(frames) == list(range(len(files))):
        return files[:1], frames
    raise SegExportError(
        "DICOM-SEG export of a series built from several multi-frame files is not supported; "
        "export NIfTI instead"
    )


def read_sources(volume: Volume) -> list[Any]:
    """The source datasets (no pixels, read-only): in z order, or the one multi-frame file."""
    import pydicom

    files, _ = source_layout(volume)
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


def _descriptions(
    present: Sequence[Any], numbers: Sequence[int], algorithm: Algorithm
) -> list[Any]:
    import highdicom as hd
    from pydicom.uid import generate_uid

    algo = None
    if algorithm.kind != "MANUAL":
        algo = hd.AlgorithmIdentificationSequence(
            name=(algorithm.name or "RadLens")[:64],
            family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"),
            version=(algorithm.version or "1")[:64],
        )
    out = []
    for number, c in zip(numbers, present, strict=True):
        category, prop_type = _property_codes(c.name)
        out.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=c.name[:64],
                segmented_property_category=category,
                segmented_property_type=prop_type,
                algorithm_type=algorithm.kind,
                algorithm_identification=algo,
                tracking_uid=generate_uid(),
                tracking_id=f"{c.name[:56]} ({c.index})",
                display_color=hd.color.CIELabColor.from_string(c.color),
            )
        )
    return out


def build_segmentation(
    volume: Volume,
    labelmap: np.ndarray,
    label_set: LabelSet,
    sources: list[Any],
    algorithm: str | Algorithm = "MANUAL",
    series_uid: str | None = None,
    sop_uid: str | None = None,
    seg_type: str = DEFAULT_SEG_TYPE,
) -> tuple[Any, dict[int, int]]:
    """A highdicom Segmentation plus {segment number: label index}.

    ``sources`` are those of ``read_sources`` (already de-identified when the export is).
    LABELMAP numbers each segment by its label index; BINARY numbers them 1..N."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    if isinstance(algorithm, str):
        algorithm = Algorithm(algorithm)
    seg_type = seg_type.lower()
    if seg_type not in SEG_TYPES:
        raise SegExportError(f"unknown DICOM-SEG type {seg_type!r}; choose labelmap or binary")
    labelmap = np.asarray(labelmap)
    seen = np.zeros(256, dtype=bool)  # the values present (a bincount of 78 M voxels is 10x slower)
    seen[labelmap.reshape(-1)] = True
    present = [label_set.get(int(v)) for v in np.flatnonzero(seen) if v and int(v) in label_set]
    if not present:
        raise SegExportError("the label map is empty: there is nothing to write as DICOM-SEG")
    if seg_type == "labelmap":
        numbers = [c.index for c in present]
    else:
        numbers = list(range(1, len(present) + 1))
    lut = np.zeros(256, dtype=np.uint8)  # orphan values (no class) -> background
    for number, c in zip(numbers, present, strict=True):
        lut[c.index] = number
    identity = np.arange(256, dtype=np.uint8)
    pixels = labelmap if np.array_equal(lut[seen], identity[seen]) else lut[labelmap]
    _, frame_order = source_layout(volume)
    if frame_order is not None:  # one multi-frame source: SEG frame i is source frame i
        pixels = pixels[np.argsort(frame_order)]
    try:
        seg = hd.seg.Segmentation(
            source_images=with_type2(sources),
            pixel_array=pixels,
            segmentation_type=(
                hd.seg.SegmentationTypeValues.LABELMAP
                if seg_type == "labelmap"
                else hd.seg.SegmentationTypeValues.BINARY
            ),
            segment_descriptions=_descriptions(present, numbers, algorithm),
            series_instance_uid=series_uid or generate_uid(),
            series_number=900,
            sop_instance_uid=sop_uid or generate_uid(),
            instance_number=1,
            manufacturer="RadLens",
            manufacturer_model_name="RadLens viewer",
            software_versions="0.1.0",
            device_serial_number="0",
            content_label="AI_RESULT" if algorithm.automatic else "LABELS",
            content_description=(
                f"AI result of {algorithm.name} {algorithm.version}"[:64]
                if algorithm.automatic
                else "RadLens labels"
            ),
            omit_empty_frames=True,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise SegExportError(f"highdicom refused the segmentation: {exc}") from exc
    return seg, dict(zip(numbers, (c.index for c in present), strict=True))


def write_segmentation(seg: Any, path: Path) -> None:
    seg.save_as(str(path), enforce_file_format=True)
