"""Planar annotations (polygons, ROIs) on a slice along any array axis: masks, overlap, cuts."""

from __future__ import annotations

import math

import numpy as np

from viewer.labels.model import (
    Annotation,
    LabelError,
    Polygon,
    RoiEllipse,
    RoiRect,
    in_plane_axes,
    plane_point,
)

Segment = tuple[tuple[float, float, float], tuple[float, float, float]]


def is_planar(a: Annotation) -> bool:
    return isinstance(a, (Polygon, RoiRect))


def plane_shape(shape_zyx: tuple[int, ...], axis: int) -> tuple[int, int]:
    """(rows, cols) of a slice along ``axis``: the sizes of the in-plane axes, in order."""
    u, v = in_plane_axes(axis)
    return int(shape_zyx[u]), int(shape_zyx[v])


def roi_mask2d(roi: Annotation, shape_ab: tuple[int, int]) -> np.ndarray:
    """Boolean mask of voxel centres inside an ellipse, rectangle or polygon ROI, on its own
    slice: rows and columns are the annotation's in-plane axes ((y, x) when axial)."""
    if isinstance(roi, RoiEllipse):
        a0, b0, a1, b1 = roi.bounds
        ca, cb = (a0 + a1) / 2, (b0 + b1) / 2
        ra, rb = max((a1 - a0) / 2, 0.5), max((b1 - b0) / 2, 0.5)
        aa, bb = np.ogrid[0 : shape_ab[0], 0 : shape_ab[1]]
        return ((aa - ca) / ra) ** 2 + ((bb - cb) / rb) ** 2 <= 1.0
    if isinstance(roi, RoiRect):
        a0, b0, a1, b1 = roi.bounds
        aa, bb = np.ogrid[0 : shape_ab[0], 0 : shape_ab[1]]
        return (aa >= a0) & (aa <= a1) & (bb >= b0) & (bb <= b1)
    if isinstance(roi, Polygon):
        from viewer.labels.labelmap import polygon_mask

        return polygon_mask(shape_ab, roi.vertices)
    raise LabelError(f"{roi.kind} {roi.id} has no area to measure")


def slice_of(roi: Annotation, shape_zyx: tuple[int, ...]) -> int:
    """The annotation's slice index, checked against the series."""
    axis, index = int(roi.axis), int(roi.z)  # type: ignore[attr-defined]
    if not 0 <= index < shape_zyx[axis]:
        raise LabelError(
            f"{roi.kind} {roi.id} is on slice {index} along axis {axis}, outside the series "
            f"(0..{shape_zyx[axis] - 1})"
        )
    return index


def roi_mask3d(roi: Annotation, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """Boolean (z, y, x) mask of a planar annotation: its 2D mask on its own slice."""
    index = slice_of(roi, shape_zyx)
    m = np.zeros(shape_zyx, dtype=bool)
    np.moveaxis(m, roi.axis, 0)[index] = roi_mask2d(roi, plane_shape(shape_zyx, roi.axis))  # type: ignore[attr-defined]
    return m


def masks_on_one_plane(
    a: Annotation, b: Annotation, shape_zyx: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """2D masks of two planar annotations on ``a``'s slice; ``b`` on another slice shares
    no voxel with it, so its mask there is empty."""
    plane = plane_shape(shape_zyx, a.axis)  # type: ignore[attr-defined]
    ma = roi_mask2d(a, plane)
    if (a.axis, a.z) != (b.axis, b.z):  # type: ignore[attr-defined]
        return ma, np.zeros_like(ma)
    return ma, roi_mask2d(b, plane)


def cut_segments(a: Annotation, axis: int, index: float) -> list[Segment]:
    """Where the slice ``index`` along ``axis`` (another plane than the annotation's) cuts a
    planar annotation: (z, y, x) end points of each segment, empty when it misses."""
    own = int(a.axis)  # type: ignore[attr-defined]
    if axis == own:
        return []
    u, v = in_plane_axes(own)
    # The cutting plane fixes one in-plane coordinate (k); the cut runs along the other.
    k = 0 if axis == u else 1
    pairs = _intervals(a, k, float(index))

    def point(along: float) -> tuple[float, float, float]:
        ab = (float(index), along) if k == 0 else (along, float(index))
        return plane_point(own, a.z, *ab)  # type: ignore[attr-defined]

    return [(point(lo), point(hi)) for lo, hi in pairs]


def _intervals(a: Annotation, k: int, t: float) -> list[tuple[float, float]]:
    """Intervals of the free in-plane coordinate where the line coordinate[k] = t is inside."""
    if isinstance(a, RoiRect):
        lo, hi = a.bounds[k], a.bounds[k + 2]
        if not lo - 0.5 <= t <= hi + 0.5:
            return []
        o0, o1 = a.bounds[1 - k], a.bounds[3 - k]
        if isinstance(a, RoiEllipse):
            c, r = (lo + hi) / 2, max((hi - lo) / 2, 0.5)
            co, ro = (o0 + o1) / 2, max((o1 - o0) / 2, 0.5)
            f = 1.0 - ((t - c) / r) ** 2
            if f < 0:
                return []
            half = ro * math.sqrt(f)
            return [(co - half, co + half)]
        return [(o0, o1)]
    if isinstance(a, Polygon):
        verts = a.vertices
        hits = []
        for p0, p1 in zip(verts, verts[1:] + verts[:1], strict=True):
            s0, s1 = p0[k], p1[k]
            if (s0 > t) != (s1 > t):  # the same half-open rule as the even-odd fill
                f = (t - s0) / (s1 - s0)
                hits.append(p0[1 - k] + f * (p1[1 - k] - p0[1 - k]))
        hits.sort()
        return list(zip(hits[0::2], hits[1::2], strict=False))
    return []
