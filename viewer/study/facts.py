"""What a loaded series is, as model cards are checked against it (``SeriesFacts``)."""

from __future__ import annotations

from radlens_core.admission import SeriesFacts
from viewer.study.layout import NO_PIXEL_SPACING
from viewer.study.volume import Volume

#: Raster formats read as images without any physical pixel size (spacing 1 is a placeholder).
UNCALIBRATED_FORMATS = frozenset({"png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff"})


def has_calibrated_spacing(volume: Volume) -> bool:
    """Whether the pixel spacing is real millimetres. ``meta["pixel_spacing_calibrated"]``
    decides when the loader states it (the DICOM series reader does); for volumes built
    elsewhere, the reader's no-spacing warning or a plain raster file says no."""
    stated = volume.meta.get("pixel_spacing_calibrated")
    if isinstance(stated, bool):
        return stated
    if any(str(w) == NO_PIXEL_SPACING for w in volume.warnings):
        return False
    return str(volume.meta.get("format", "")).lower() not in UNCALIBRATED_FORMATS


def series_facts(volume: Volume, modality: str | None = None) -> SeriesFacts:
    """Modality (``modality`` overrides the volume's), 2D/3D, shape, body part from the
    header, calibrated spacing and channels of a loaded series."""
    return SeriesFacts(
        modality=modality or volume.modality or "OT",
        spatial_dims=2 if volume.is_2d else 3,
        shape=volume.shape,
        body_part=str(volume.meta.get("body_part") or ""),
        has_spacing=has_calibrated_spacing(volume),
        channels=int(volume.array.shape[-1]) if volume.is_rgb else 1,
    )


# -- How honestly a volume can be labelled (the reader states it; the viewer asks here) --------
#
# The DICOM reader fills these ``meta`` keys; volumes built elsewhere (NIfTI, NRRD, tests) fall
# back to what their format implies. The viewer never reads the keys directly.
#
#   meta["spacing_source"]       "patient" (PixelSpacing), "detector" (ImagerPixelSpacing, at the
#                                detector plane), "ultrasound" (SequenceOfUltrasoundRegions) or
#                                "none" (lengths are in pixels)
#   meta["patient_orientation"]  False for images without patient orientation (US, SC, OT, XC,
#                                ophthalmic, no ImageOrientationPatient): no letters, no plane names
#   meta["frame_time_ms"]        the time between frames of a multi-frame cine, when stated
#   meta["volume_label"]         which volume of a multi-volume series this is ("echo 2, TE 30 ms")

SPACING_SOURCES = ("patient", "detector", "ultrasound", "none")


def spacing_source(volume: Volume) -> str:
    """Where the pixel spacing comes from: one of ``SPACING_SOURCES``."""
    stated = volume.meta.get("spacing_source")
    if stated in SPACING_SOURCES:
        return str(stated)
    return "patient" if has_calibrated_spacing(volume) else "none"


def has_patient_orientation(volume: Volume) -> bool:
    """Whether orientation letters, plane names and patient positions mean anything."""
    stated = volume.meta.get("patient_orientation")
    return stated if isinstance(stated, bool) else True


def frame_time_ms(volume: Volume) -> float | None:
    """The time between frames of a cine series, when the files state it."""
    value = volume.meta.get("frame_time_ms")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def volume_label(volume: Volume) -> str | None:
    """Which volume of a multi-volume series this is, in words, or None for a single volume."""
    value = volume.meta.get("volume_label")
    return str(value) if value else None
