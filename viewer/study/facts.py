"""What a loaded series is, as model cards are checked against it (``SeriesFacts``)."""

from __future__ import annotations

import numpy as np

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
#   meta["volume_index"], meta["volume_count"]  its number (1-based) and how many there are;
#                                Volume.key is then "<SeriesInstanceUID>#vol<k>" (labels apart)
#   meta["series_instance_uid"]  the file's own SeriesInstanceUID (the key may carry "#...")

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


def volume_position(volume: Volume) -> tuple[int, int] | None:
    """(index 1-based, count) of this volume in its multi-volume series, when stated."""
    index, count = volume.meta.get("volume_index"), volume.meta.get("volume_count")
    if isinstance(index, int) and isinstance(count, int) and count > 1:
        return index, count
    return None


# -- VOI LUT (display) ----------------------------------------------------------------------
#
#   meta["voi_lut"]         (first mapped value, bits per entry, table) from VOILUTSequence
#   meta["voi_lut_mirror"]  for MONOCHROME1 (stored mirrored so that higher is brighter): the
#                           sum that maps a shown value back to the file's modality value


def has_voi_lut(volume: Volume) -> bool:
    return _voi(volume) is not None


def _voi(volume: Volume) -> tuple[int, int, np.ndarray] | None:
    stated = volume.meta.get("voi_lut")
    if not stated or volume.is_rgb:
        return None
    first, bits, table = stated
    return int(first), int(bits), np.asarray(table)


def voi_lut_window(volume: Volume) -> tuple[float, float] | None:
    """(center, width) that shows ``apply_voi_lut``'s output range in full, or None."""
    voi = _voi(volume)
    if voi is None:
        return None
    top = float(2 ** voi[1] - 1)
    return top / 2.0, top + 1.0


def apply_voi_lut(volume: Volume, values: np.ndarray) -> np.ndarray | None:
    """The file's VOI LUT applied to values of this volume, as pydicom's apply_voi_lut maps
    the file's modality values (below the first entry: the first output; above the last:
    the last). Higher is brighter (a MONOCHROME1 output is inverted). None without a LUT."""
    voi = _voi(volume)
    if voi is None:
        return None
    first, bits, table = voi
    arr = np.asarray(values)
    mirror = volume.meta.get("voi_lut_mirror")
    if isinstance(mirror, (int, float)):
        arr = mirror - arr.astype(np.float64)  # back to the file's own values
    index = np.clip(np.rint(arr).astype(np.int64) - first, 0, len(table) - 1)
    out = table[index]
    if isinstance(mirror, (int, float)):
        out = (2**bits - 1) - out
    return out
