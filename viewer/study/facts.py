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
