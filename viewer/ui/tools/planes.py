"""Plane geometry for tools: (row, col) on a slice of one plane <-> volume voxel (z, y, x).

A plane shows a 2D cut of the (z, y, x) array. Rows and columns are indices into that cut
*as stored*, unflipped (the view may flip it for display; the view's own mapping undoes that
before a tool sees the event). By default (axes of an axially acquired series):

- axial:    slice = z, row = y, col = x
- coronal:  slice = y, row = z, col = x
- sagittal: slice = x, row = z, col = y

``Plane.of_geometry`` takes the axes the display chose instead (a sagittal acquisition
shows its axial plane across other array axes).

Qt-free and torch-free so the tools can be tested without a window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from viewer.labels import labelmap

#: plane name -> (slice axis, row axis, col axis) in (z, y, x) array axes
PLANE_AXES: dict[str, tuple[int, int, int]] = {
    "axial": (0, 1, 2),
    "coronal": (1, 0, 2),
    "sagittal": (2, 0, 1),
}


@dataclass(frozen=True)
class Plane:
    """One of the three orthogonal planes through a volume of ``shape`` (z, y, x)."""

    name: str
    shape: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    #: (slice, row, col) array axes; None: the default for ``name``
    axes_: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.axes_ is None and self.name not in PLANE_AXES:
            raise ValueError(f"unknown plane {self.name!r}; expected one of {sorted(PLANE_AXES)}")
        if self.axes_ is not None and sorted(self.axes_) != [0, 1, 2]:
            raise ValueError(f"plane axes must be a permutation of (0, 1, 2), got {self.axes_}")

    @classmethod
    def of(cls, name: str, volume) -> Plane:  # volume: viewer.study.volume.Volume
        """The plane ``name`` of a Volume (whose spacing is stored in (x, y, z) order)."""
        sx, sy, sz = volume.spacing
        return cls(name, tuple(int(n) for n in volume.shape), (sz, sy, sx))

    @classmethod
    def of_geometry(cls, geometry, volume) -> Plane:  # viewer.ui.planes.PlaneGeometry, Volume
        """The tool plane for a displayed plane: same axes, no flips."""
        base = cls.of(geometry.plane, volume) if geometry.plane in PLANE_AXES else None
        shape = base.shape if base else tuple(int(n) for n in volume.shape)
        sx, sy, sz = volume.spacing
        axes = (int(geometry.normal_axis), int(geometry.row_axis), int(geometry.col_axis))
        return cls(geometry.plane, shape, (sz, sy, sx), axes)  # type: ignore[arg-type]

    @property
    def axes(self) -> tuple[int, int, int]:
        return self.axes_ if self.axes_ is not None else PLANE_AXES[self.name]

    @property
    def slice_axis(self) -> int:
        return self.axes[0]

    @property
    def n_slices(self) -> int:
        return self.shape[self.slice_axis]

    @property
    def size(self) -> tuple[int, int]:
        """(rows, cols) of one slice of this plane."""
        return self.shape[self.axes[1]], self.shape[self.axes[2]]

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """(row, col) pixel size in mm."""
        return self.spacing_zyx[self.axes[1]], self.spacing_zyx[self.axes[2]]

    @property
    def slice_mm(self) -> float:
        return self.spacing_zyx[self.slice_axis]

    # ---- point mapping -----------------------------------------------------------------
    def to_volume(self, row: float, col: float, slice_index: float) -> np.ndarray:
        """Continuous (z, y, x) of a point at (row, col) on slice ``slice_index``."""
        out = np.zeros(3)
        s, r, c = self.axes
        out[s], out[r], out[c] = slice_index, row, col
        return out

    def points_to_volume(self, rc: np.ndarray, slice_index: float) -> np.ndarray:
        """(N, 2) (row, col) points on a slice -> (N, 3) (z, y, x)."""
        rc = np.asarray(rc, dtype=float).reshape(-1, 2)
        out = np.zeros((len(rc), 3))
        s, r, c = self.axes
        out[:, s] = slice_index
        out[:, r] = rc[:, 0]
        out[:, c] = rc[:, 1]
        return out

    def from_volume(self, zyx: Iterable[float]) -> tuple[float, float, float]:
        """(row, col, slice) of a (z, y, x) point."""
        p = tuple(float(v) for v in zyx)
        s, r, c = self.axes
        return p[r], p[c], p[s]

    def contains(self, row: float, col: float) -> bool:
        rows, cols = self.size
        return -0.5 <= row < rows - 0.5 and -0.5 <= col < cols - 0.5

    def clamp_slice(self, slice_index: float) -> int:
        return int(min(max(round(slice_index), 0), self.n_slices - 1))

    # ---- arrays ------------------------------------------------------------------------
    def slice_index_expr(self, slice_index: int) -> tuple:
        """An index tuple selecting slice ``slice_index`` of a (z, y, x) array as (rows, cols)."""
        idx: list = [slice(None)] * 3
        idx[self.slice_axis] = int(slice_index)
        return tuple(idx)

    def take(self, array: np.ndarray, slice_index: int) -> np.ndarray:
        """The (rows, cols) view of slice ``slice_index`` (a view: writes go to ``array``)."""
        cut = array[self.slice_index_expr(slice_index)]
        _, r, c = self.axes
        return cut.T if r > c else cut

    def embed(self, mask2d: np.ndarray, slice_index: int) -> tuple[tuple[slice, ...], np.ndarray]:
        """(region, mask) placing a (rows, cols) mask on one slice, in (z, y, x) axis order."""
        s, r, c = self.axes
        region: list[slice] = [slice(None)] * 3
        region[s] = slice(int(slice_index), int(slice_index) + 1)
        mask3 = np.moveaxis(np.asarray(mask2d)[np.newaxis], (0, 1, 2), (s, r, c))
        return tuple(region), mask3

    def distance_mm(self, a_rc: tuple[float, float], b_rc: tuple[float, float]) -> float:
        pr, pc = self.pixel_mm
        return float(np.hypot((a_rc[0] - b_rc[0]) * pr, (a_rc[1] - b_rc[1]) * pc))


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
