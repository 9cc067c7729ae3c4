"""What a loaded series' Volume says about itself besides pixels (``Volume.meta``): patient,
study and series attributes of its first file, its files and frames in volume order, and
how its values are labelled (spacing source, VOI LUT, the MONOCHROME1 mirror)."""

from __future__ import annotations

from typing import Any

from viewer.study.headers import FileHeader
from viewer.study.layout import SeriesLayout, rescaled_range


def mirror_range(h: FileHeader) -> tuple[float, float]:
    """The rescaled range of ``h``'s stored values (a Modality LUT's output range): what a
    MONOCHROME1 series' values are mirrored about (lo + hi - value)."""
    if h.modality_lut is not None:
        return float(min(h.modality_lut[1])), float(max(h.modality_lut[1]))
    bits = min(h.bits_stored, h.bits_allocated)
    lo, hi = (
        (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if h.pixel_representation else (0, 2**bits - 1)
    )
    a, b = lo * h.slope + h.intercept, hi * h.slope + h.intercept
    return min(a, b), max(a, b)


def volume_meta(ds: Any, headers: list[FileHeader], layout: SeriesLayout) -> dict[str, Any]:
    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return str(value) if value is not None else ""

    number = ds.get("SeriesNumber")
    return {
        "patient_name": text("PatientName"),
        "patient_id": text("PatientID"),
        "patient_birth_date": text("PatientBirthDate"),
        "patient_sex": text("PatientSex"),
        "study_uid": text("StudyInstanceUID"),
        "study_date": text("StudyDate"),
        "study_description": text("StudyDescription"),
        "series_number": int(number) if number not in (None, "") else None,
        "institution": text("InstitutionName"),
        "frame_of_reference_uid": text("FrameOfReferenceUID"),
        "body_part": text("BodyPartExamined"),
        "manufacturer": text("Manufacturer"),
        "sop_class_uid": text("SOPClassUID"),
        "source_files": [headers[h].path for h, _ in layout.order],
        "sop_instance_uids": [headers[h].sop_instance_uid for h, _ in layout.order],
        "frame_index": [f for _, f in layout.order],
        "photometric": headers[0].photometric,
        "transfer_syntax": headers[0].transfer_syntax,
        "dose_units": text("DoseUnits"),  # RT dose: GY or RELATIVE; values are scaled to it
        # False when the files carry no pixel spacing (1 mm is then a placeholder).
        "pixel_spacing_calibrated": headers[0].pixel_spacing is not None,
        # How honestly it can be labelled (viewer.study.facts reads these).
        "spacing_source": headers[0].spacing_source,
        "patient_orientation": all(h.patient_orientation for h in headers),
        "frame_time_ms": headers[0].frame_time_ms if len(headers) == 1 else None,
        # Of a multi-volume series: which volume this is; the real UID (the key may differ).
        "volume_label": headers[0].volume_label,
        "volume_index": headers[0].volume_index,
        "volume_count": headers[0].volume_count,
        "series_instance_uid": text("SeriesInstanceUID"),
        # VOI LUT (first, bits, table) over the stored series' values; MONOCHROME1 values
        # are mirrored by the reader, so the mirror sum maps them back first.
        "voi_lut": headers[0].voi_lut,
        "voi_lut_mirror": (
            sum(rescaled_range(headers[0])) if headers[0].photometric == "MONOCHROME1" else None
        ),
    }
