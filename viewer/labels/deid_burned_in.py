"""Whether an image may show burned-in text (names, dates, IDs in the pixels) and so must not
leave in an export unless the user asks for it.

PS3.15 leaves pixel data to the exporter: the Basic Profile removes attributes, not text drawn
into the image. RadLens does not read pixels for text; it refuses the image when the source
says BurnedInAnnotation YES, or when the attribute is missing on an object that is often a
screenshot: secondary capture, ultrasound, visible-light photography and other "OT"-like
modalities or SOP classes, and pictures (PNG, JPEG, TIFF, BMP) opened from plain files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from viewer.study.volume import Volume

#: Modalities whose images are often captured screens, photographs or annotated frames.
SECONDARY_CAPTURE_MODALITIES = frozenset(
    {"US", "IVUS", "SC", "OT", "XC", "ES", "GM", "SM", "OP", "DOC", "EPS", "VIDEO"}
)
#: SOP classes of the same kind: secondary capture (…1.7.*), ultrasound (…1.6.*, …1.3.1),
#: visible light and ophthalmic photography and video (…1.77.1.*).
SECONDARY_CAPTURE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.6.",
    "1.2.840.10008.5.1.4.1.1.3.1",
    "1.2.840.10008.5.1.4.1.1.77.1.",
)
#: Plain picture files: no DICOM header, often screenshots.
PICTURE_FORMATS = frozenset({"png", "jpg", "jpeg", "bmp", "tif", "tiff", "gif"})


def is_secondary_capture(modality: str, sop_class_uid: str) -> bool:
    return modality.strip().upper() in SECONDARY_CAPTURE_MODALITIES or any(
        sop_class_uid.strip().startswith(p) for p in SECONDARY_CAPTURE_SOP_PREFIXES
    )


def burned_in_reason(volume: Volume) -> str | None:
    """A sentence naming the file and why its pixels may carry identifying text, or None."""
    meta = volume.meta
    files = [str(f) for f in dict.fromkeys(meta.get("source_files") or [])]
    fmt = str(meta.get("format") or "").lower()
    if fmt:  # opened from a plain file (NIfTI, NRRD, a picture...)
        if fmt in PICTURE_FORMATS:
            where = files[0] if files else "the image"
            return f"{where} is a {fmt.upper()} picture without a BurnedInAnnotation attribute"
        return None
    if files:
        return _dicom_reason(files)
    if is_secondary_capture(volume.modality, str(meta.get("sop_class_uid") or "")):
        return f"the image ({volume.modality}) has no BurnedInAnnotation attribute"
    return None


def _dicom_reason(files: Sequence[str]) -> str | None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    tags = ["BurnedInAnnotation", "Modality", "SOPClassUID"]
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=tags)
        except (OSError, InvalidDicomError) as exc:
            return f"{f} cannot be read to check BurnedInAnnotation ({exc})"
        flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
        if flag == "YES":
            return f"{f} says BurnedInAnnotation YES"
        if flag != "NO":
            modality = str(ds.get("Modality", "") or "")
            sop_class = str(ds.get("SOPClassUID", "") or "")
            if is_secondary_capture(modality, sop_class):
                kind = modality or "secondary capture"
                return f"{f} is a {kind} image without a BurnedInAnnotation attribute"
    return None


def describe(reason: str, included: bool) -> str:
    """The export report's warning for an image with possible burned-in text."""
    if included:
        return (
            f"the image was exported although {reason}: it may show names, dates or IDs "
            "that de-identification cannot remove"
        )
    return (
        f"the image was not exported because {reason}: it may show names, dates or IDs; "
        "export it with --include-burned-in (or 'Include images that may show burned-in "
        "text' in the export dialog) after checking it"
    )


@dataclass(frozen=True)
class ImageDecision:
    """Whether the image is written, and what the report says about burned-in text."""

    requested: bool
    write: bool
    burned_in: str | None = None
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "exported": self.write,
                "burned_in_risk": self.burned_in}  # fmt: skip


def image_decision(volume: Volume, with_image: bool, include_burned_in: bool) -> ImageDecision:
    """Write the image only when asked, and then only without a burned-in risk or when the
    user asked for such images explicitly; the warning goes into the export report."""
    if not with_image:
        return ImageDecision(False, False)
    reason = burned_in_reason(volume)
    if reason is None:
        return ImageDecision(True, True)
    return ImageDecision(True, include_burned_in, reason, describe(reason, include_burned_in))
