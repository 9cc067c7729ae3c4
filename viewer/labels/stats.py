"""ROI statistics in physical units: HU mean/SD/min/max, area in mm², volume in mL."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from viewer.labels.model import Annotation, LabelError, in_plane_axes
from viewer.labels.planar import is_planar, plane_shape, roi_mask2d, slice_of
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


def _summarise(values: np.ndarray, pixel_mm2: float, voxel_ml: float) -> RoiStats:
    n = int(values.size)
    if n == 0:
        nan = float("nan")
        return RoiStats(0, nan, nan, nan, nan, 0.0, 0.0)
    vals = values.astype(np.float64)
    return RoiStats(
        voxels=n,
        mean=float(vals.mean()),
        sd=float(vals.std(ddof=1)) if n > 1 else 0.0,
        min=float(vals.min()),
        max=float(vals.max()),
        area_mm2=n * pixel_mm2,
        volume_ml=n * voxel_ml,
    )


def _greyscale(volume: Volume) -> np.ndarray:
    if volume.is_rgb:
        raise LabelError("ROI statistics need a greyscale image, this one is RGB")
    return np.asarray(volume.array)


def mask_stats(volume: Volume, mask: np.ndarray) -> RoiStats:
    """Statistics of the image under a boolean (z, y, x) mask, using the volume's spacing."""
    m = np.asarray(mask, dtype=bool)
    if m.shape != volume.shape:
        raise LabelError(f"mask {m.shape} does not match the series {volume.shape}")
    sx, sy, sz = volume.spacing
    return _summarise(_greyscale(volume)[m], sx * sy, sx * sy * sz / 1000.0)


def roi_stats(volume: Volume, roi: Annotation) -> RoiStats:
    """Statistics of a 2D ROI (ellipse, rectangle, polygon) on its slice, along any axis;
    the area is in that slice's plane."""
    if not is_planar(roi):
        raise LabelError(f"{roi.kind} {roi.id} has no area to measure")
    axis = int(roi.axis)  # type: ignore[attr-defined]
    index = slice_of(roi, volume.shape)
    image = np.moveaxis(_greyscale(volume), axis, 0)[index]
    inside = roi_mask2d(roi, plane_shape(volume.shape, axis))
    sx, sy, sz = volume.spacing
    u, v = in_plane_axes(axis)
    spacing_zyx = (sz, sy, sx)
    return _summarise(image[inside], spacing_zyx[u] * spacing_zyx[v], sx * sy * sz / 1000.0)


def label_stats(volume: Volume, labelmap: np.ndarray, label: int) -> RoiStats:
    return mask_stats(volume, np.asarray(labelmap) == label)


def label_measures(volume: Volume, labelmap: np.ndarray) -> dict[int, dict[str, Any]]:
    """{label: voxels, volume_ml, mean, sd} of every label present: bincount sums slice by
    slice over the labelled slices (not one full-volume mask per label: a 100-label map costs
    what one label does). Two passes, deviations from each label's mean, as exact as numpy's
    std. RGB images get voxel counts only."""
    lm = np.asarray(labelmap)
    if lm.ndim == 2:
        lm = lm[np.newaxis]
    zs = [z for z in range(lm.shape[0]) if lm[z].any()]
    counts = np.zeros(256, dtype=np.int64)
    for z in zs:
        counts += np.bincount(lm[z].reshape(-1), minlength=256)
    present = [int(v) for v in np.flatnonzero(counts) if v]
    if volume.is_rgb:
        return {v: {"voxels": int(counts[v])} for v in present}
    image = np.asarray(volume.array)
    if image.ndim == 2:
        image = image[np.newaxis]
    sums = np.zeros(256)
    for z in zs:
        sums += np.bincount(lm[z].reshape(-1), weights=image[z].reshape(-1), minlength=256)
    means = sums / np.maximum(counts, 1)
    squares = np.zeros(256)
    for z in zs:
        labels = lm[z].reshape(-1)
        dev = image[z].reshape(-1) - means[labels]
        squares += np.bincount(labels, weights=dev * dev, minlength=256)
    sx, sy, sz = volume.spacing
    out: dict[int, dict[str, Any]] = {}
    for v in present:
        n = int(counts[v])
        out[v] = {
            "voxels": n,
            "volume_ml": n * sx * sy * sz / 1000.0,
            "mean": float(means[v]),
            "sd": float(np.sqrt(squares[v] / (n - 1))) if n > 1 else 0.0,
        }
    return out
