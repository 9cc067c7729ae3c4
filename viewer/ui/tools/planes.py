"""Pixel shapes the tools draw on a plane: discs, balls, polygons, box cuts.

The plane itself is ``viewer.ui.planes.Plane`` (re-exported here), the one model the display
and the tools share. Tools work in its *stored* frame: rows and columns index the cut as
stored, unflipped (the view's mapping undoes the display flips before a tool sees the
event). For a grid with identity direction:

- axial:    slice = z, row = y, col = x
- coronal:  slice = y, row = z, col = x
- sagittal: slice = x, row = z, col = y

Qt-free and torch-free so the tools can be tested without a window.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from viewer.labels import labelmap
from viewer.ui.planes import PLANE_AXES, Plane

__all__ = ["PLANE_AXES", "Plane", "ball_region", "box_on_plane", "disc_mask", "polygon_mask"]


def disc_mask(plane: Plane, center_rc: tuple[float, float], radius_mm: float) -> np.ndarray:
    """Boolean (rows, cols) mask of pixels whose centres lie within ``radius_mm`` of a point.

    The pixel at the centre is always included, so a brush smaller than a pixel still paints.
    """
    rows, cols = plane.size
    pr, pc = plane.pixel_mm
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    d2 = ((r - center_rc[0]) * pr) ** 2 + ((c - center_rc[1]) * pc) ** 2
    mask = d2 <= radius_mm**2
    cr, cc = int(round(center_rc[0])), int(round(center_rc[1]))
    if 0 <= cr < rows and 0 <= cc < cols:
        mask[cr, cc] = True
    return mask


def ball_region(
    shape: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
    center_zyx: Iterable[float],
    radius_mm: float,
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """(bounding-box slices, boolean mask within them) of voxels inside a sphere."""
    c = np.asarray(list(center_zyx), dtype=float)
    sp = np.asarray(spacing_zyx, dtype=float)
    ext = radius_mm / sp
    lo = np.maximum(np.floor(c - ext).astype(int), 0)
    hi = np.minimum(np.ceil(c + ext).astype(int) + 1, np.asarray(shape))
    hi = np.maximum(hi, lo)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    grids = np.ogrid[box[0], box[1], box[2]]
    d2 = sum(((g - ci) * si) ** 2 for g, ci, si in zip(grids, c, sp, strict=True))
    mask = np.asarray(d2 <= radius_mm**2)
    ci = np.round(c).astype(int)
    if np.all(ci >= lo) and np.all(ci < hi):
        mask[tuple(ci - lo)] = True
    return box, mask  # type: ignore[return-value]


def box_on_plane(
    plane: Plane, lo_zyx: Iterable[float], hi_zyx: Iterable[float], slice_index: int
) -> tuple[float, float, float, float] | None:
    """(row0, col0, row1, col1) of an inclusive voxel box where it cuts a slice, else None."""
    lo = np.asarray(list(lo_zyx), dtype=float)
    hi = np.asarray(list(hi_zyx), dtype=float)
    s, r, c = plane.axes
    if not (min(lo[s], hi[s]) - 0.5 <= slice_index <= max(lo[s], hi[s]) + 0.5):
        return None
    return lo[r], lo[c], hi[r], hi[c]


def polygon_mask(plane: Plane, points_rc: np.ndarray) -> np.ndarray:
    """Boolean (rows, cols) mask of pixel centres inside a closed polygon (even-odd rule)."""
    pts = np.asarray(points_rc, dtype=float).reshape(-1, 2)
    if len(pts) < 3:
        return np.zeros(plane.size, dtype=bool)
    return labelmap.polygon_mask(plane.size, pts)
