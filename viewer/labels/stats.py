"""ROI statistics in physical units: HU mean/SD/min/max, area in mm², volume in mL."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from viewer.labels.model import Annotation, LabelError, Polygon, RoiEllipse, RoiRect
from viewer.study.volume import Volume


@dataclass(frozen=True)
class RoiStats:
    voxels: int
    mean: float
    sd: float
    min: float
    max: float
    area_mm2: float  # in-plane area (for a 3D mask: summed over slices)
    volume_ml: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def roi_mask2d(roi: Annotation, shape_yx: tuple[int, int]) -> np.ndarray:
    """Boolean (y, x) mask of voxel centres inside an ellipse, rectangle or polygon ROI."""
    if isinstance(roi, RoiEllipse):
        y0, x0, y1, x1 = roi.bounds
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        ry, rx = max((y1 - y0) / 2, 0.5), max((x1 - x0) / 2, 0.5)
        yy, xx = np.ogrid[0 : shape_yx[0], 0 : shape_yx[1]]
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    if isinstance(roi, RoiRect):
        y0, x0, y1, x1 = roi.bounds
        yy, xx = np.ogrid[0 : shape_yx[0], 0 : shape_yx[1]]
        return (yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1)
    if isinstance(roi, Polygon):
        from viewer.labels.labelmap import polygon_mask

        return polygon_mask(shape_yx, roi.vertices)
    raise LabelError(f"{roi.kind} {roi.id} has no area to measure")


def mask_stats(volume: Volume, mask: np.ndarray) -> RoiStats:
    """Statistics of the image under a boolean (z, y, x) mask, using the volume's spacing."""
    m = np.asarray(mask, dtype=bool)
    if m.shape != volume.shape:
        raise LabelError(f"mask {m.shape} does not match the series {volume.shape}")
    if volume.is_rgb:
        raise LabelError("ROI statistics need a greyscale image, this one is RGB")
    sx, sy, sz = volume.spacing
    n = int(m.sum())
    vals = np.asarray(volume.array)[m].astype(np.float64)
    if n == 0:
        nan = float("nan")
        return RoiStats(0, nan, nan, nan, nan, 0.0, 0.0)
    return RoiStats(
        voxels=n,
        mean=float(vals.mean()),
        sd=float(vals.std(ddof=1)) if n > 1 else 0.0,
        min=float(vals.min()),
        max=float(vals.max()),
        area_mm2=n * sx * sy,
        volume_ml=n * sx * sy * sz / 1000.0,
    )


def roi_stats(volume: Volume, roi: Annotation) -> RoiStats:
    """Statistics of a 2D ROI (ellipse, rectangle, polygon) on its slice."""
    z = int(getattr(roi, "z", 0))
    if not 0 <= z < volume.shape[0]:
        raise LabelError(f"{roi.kind} {roi.id} is on slice {z}, outside the series")
    m = np.zeros(volume.shape, dtype=bool)
    m[z] = roi_mask2d(roi, volume.shape[1:])
    return mask_stats(volume, m)


def label_stats(volume: Volume, labelmap: np.ndarray, label: int) -> RoiStats:
    return mask_stats(volume, np.asarray(labelmap) == label)
