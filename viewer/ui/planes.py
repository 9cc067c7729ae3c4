"""The one plane model, for display and for the annotation tools, built on the volume's Grid.

A plane is an un-resampled cut through the (z, y, x) voxel array. ``Plane.of(volume, name)``
honours the volume's direction: the anatomical name (axial/coronal/sagittal) goes to the
array axis whose direction is closest to that plane's normal, so a sagittally acquired MR
still shows its axial plane as axial. Flips put anterior at the top of axial images, the
patient's right on the image left (radiological convention), and superior at the top of
coronal/sagittal.

Two (row, col) frames share one plane: the *display* frame (flipped as shown: ``slice_of``,
``to_voxel``, ``from_voxel``, ``scene_to_pixel``) and the *stored* frame the tools draw in
(indices into the cut as stored, unflipped: ``size``, ``to_volume``, ``from_volume``,
``take``, ``embed``); ``to_patient`` maps a tool's point to LPS millimetres through the grid.
Qt-free so it can be tested without a QApplication.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import permutations

import numpy as np

from radlens_core.grid import Grid
from viewer.study.facts import spacing_source
from viewer.study.volume import Volume, orientation_letters
from viewer.ui.calibration import Calibration

PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")

# LPS unit vectors: (normal, screen-right, screen-down) for each anatomical plane.
_L, _P, _S = np.eye(3)
_PLANE_VECTORS = {
    "axial": (_S, _L, _P),
    "coronal": (_P, _L, -_S),
    "sagittal": (_L, _P, -_S),
}


#: plane name -> (slice axis, row axis, col axis) in (z, y, x) array axes, for a grid whose
#: direction is the identity (an axial acquisition); ``Plane.of`` chooses by direction.
PLANE_AXES: dict[str, tuple[int, int, int]] = {
    "axial": (0, 1, 2),
    "coronal": (1, 0, 2),
    "sagittal": (2, 0, 1),
}


def grid_of(volume: Volume) -> Grid:
    """The voxel grid of a Volume (its shape without colour channels, spacing, origin,
    direction)."""
    return volume.grid


def axis_direction(grid: Grid, axis: int) -> np.ndarray:
    """LPS unit vector along increasing array index ``axis`` (0 = z, 1 = y, 2 = x)."""
    return np.asarray(grid.direction)[:, 2 - axis]


def axis_spacing(grid: Grid, axis: int) -> float:
    """Millimetres between neighbouring voxels along array axis ``axis`` (0 = z, 1 = y, 2 = x)."""
    return float(grid.spacing[2 - axis])


def _normal_axes(grid: Grid) -> dict[str, int]:
    """Array axis cut by each plane: the permutation that best matches the three normals."""
    dirs = [axis_direction(grid, a) for a in range(3)]
    best, best_score = (0, 1, 2), -1.0
    for perm in permutations(range(3)):
        score = sum(abs(float(dirs[perm[i]] @ _PLANE_VECTORS[p][0])) for i, p in enumerate(PLANES))
        if score > best_score + 1e-9:
            best, best_score = perm, score
    return dict(zip(PLANES, best, strict=True))


@dataclass(frozen=True)
class Plane:
    """One plane through a volume of ``shape`` (z, y, x): which array axes it shows (slice,
    row, col), how the display flips them, and the grid that places voxels in LPS."""

    name: str
    shape: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    #: (slice, row, col) array axes; None: ``PLANE_AXES[name]``
    axes_: tuple[int, int, int] | None = None
    flip_rows: bool = False
    flip_cols: bool = False
    #: where the voxels are in the patient; None: unit axes from the origin
    grid: Grid | None = field(default=None, compare=False)
    #: where the spacing comes from (``viewer.study.facts.SPACING_SOURCES``): "none" measures
    #: in pixels
    spacing_source: str = field(default="patient", compare=False)

    def __post_init__(self) -> None:
        if self.axes_ is None and self.name not in PLANE_AXES:
            raise ValueError(f"unknown plane {self.name!r}; expected one of {sorted(PLANE_AXES)}")
        if self.axes_ is not None and sorted(self.axes_) != [0, 1, 2]:
            raise ValueError(f"plane axes must be a permutation of (0, 1, 2), got {self.axes_}")
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @classmethod
    def of(cls, volume: Volume | Grid, name: str) -> Plane:
        """The plane ``name`` of a volume (or grid), chosen and flipped by its direction."""
        if name not in PLANE_AXES:
            raise ValueError(f"unknown plane {name!r}; expected one of {tuple(PLANE_AXES)}")
        grid = volume if isinstance(volume, Grid) else grid_of(volume)
        if grid.is_2d:
            name = "axial"  # a single image has one plane: rows down, columns right, as stored
            normal, row, col = 0, 1, 2
            flip_r = flip_c = False
        else:
            normal = _normal_axes(grid)[name]
            _, want_right, want_down = _PLANE_VECTORS[name]
            a, b = (ax for ax in range(3) if ax != normal)
            da, db = axis_direction(grid, a), axis_direction(grid, b)
            # Columns go to whichever remaining axis points most along screen-right.
            col, row = (a, b) if abs(da @ want_right) >= abs(db @ want_right) else (b, a)
            flip_c = float(axis_direction(grid, col) @ want_right) < 0
            flip_r = float(axis_direction(grid, row) @ want_down) < 0
        sx, sy, sz = grid.spacing
        source = spacing_source(volume) if isinstance(volume, Volume) else "patient"
        return cls(
            name,
            grid.shape,
            (sz, sy, sx),
            (normal, row, col),
            bool(flip_r),
            bool(flip_c),
            grid,
            source,
        )

    # ---- axes and sizes (both frames) ----------------------------------------------------
    @property
    def plane(self) -> str:
        return self.name

    @property
    def axes(self) -> tuple[int, int, int]:
        return self.axes_ if self.axes_ is not None else PLANE_AXES[self.name]

    @property
    def slice_axis(self) -> int:
        return self.axes[0]

    normal_axis = slice_axis

    @property
    def row_axis(self) -> int:
        return self.axes[1]

    @property
    def col_axis(self) -> int:
        return self.axes[2]

    @property
    def n_slices(self) -> int:
        return self.shape[self.slice_axis]

    @property
    def n_rows(self) -> int:
        return self.shape[self.row_axis]

    @property
    def n_cols(self) -> int:
        return self.shape[self.col_axis]

    @property
    def size(self) -> tuple[int, int]:
        """(rows, cols) of one slice of this plane."""
        return self.n_rows, self.n_cols

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """(z, y, x) shape of the volume this plane cuts."""
        return self.shape

    @property
    def row_spacing(self) -> float:
        return float(self.spacing_zyx[self.row_axis])

    @property
    def col_spacing(self) -> float:
        return float(self.spacing_zyx[self.col_axis])

    @property
    def slice_spacing(self) -> float:
        return float(self.spacing_zyx[self.slice_axis])

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """(row, col) pixel size in mm."""
        return self.row_spacing, self.col_spacing

    slice_mm = slice_spacing

    @property
    def width_mm(self) -> float:
        return self.n_cols * self.col_spacing

    @property
    def height_mm(self) -> float:
        return self.n_rows * self.row_spacing

    # ---- patient directions --------------------------------------------------------------
    @property
    def _grid(self) -> Grid:
        if self.grid is not None:
            return self.grid
        sz, sy, sx = self.spacing_zyx
        return Grid(self.shape, (sx, sy, sz))

    def _axis_vector(self, axis: int) -> tuple[float, float, float]:
        v = axis_direction(self._grid, axis)
        return (float(v[0]), float(v[1]), float(v[2]))

    @property
    def down(self) -> tuple[float, float, float]:
        """LPS unit vector of screen-down (display frame)."""
        v = self._axis_vector(self.row_axis)
        return tuple(-x for x in v) if self.flip_rows else v  # type: ignore[return-value]

    @property
    def right(self) -> tuple[float, float, float]:
        """LPS unit vector of screen-right (display frame)."""
        v = self._axis_vector(self.col_axis)
        return tuple(-x for x in v) if self.flip_cols else v  # type: ignore[return-value]

    @property
    def normal(self) -> tuple[float, float, float]:
        """LPS unit vector of increasing slice index."""
        return self._axis_vector(self.slice_axis)

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters for the four screen edges: keys top, bottom, left, right."""
        down, right = np.asarray(self.down), np.asarray(self.right)
        return {
            "top": orientation_letters(-down),
            "bottom": orientation_letters(down),
            "left": orientation_letters(-right),
            "right": orientation_letters(right),
        }

    # ---- display frame (flipped as shown) ------------------------------------------------
    def slice_of(self, array: np.ndarray, index: int) -> np.ndarray:
        """The displayed (rows, cols[, channels]) view of ``array`` (z, y, x[, c]) at slice
        ``index``: any array with the volume's (z, y, x) leading shape (label maps, heat
        maps). Returns a strided view, never a copy."""
        index = int(np.clip(index, 0, self.n_slices - 1))
        sl: list[object] = [slice(None)] * array.ndim
        sl[self.slice_axis] = index
        plane = array[tuple(sl)]
        # After removing the normal axis the remaining two keep their relative order.
        if self.row_axis > self.col_axis:
            plane = np.swapaxes(plane, 0, 1)
        if self.flip_rows:
            plane = plane[::-1]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane

    def to_voxel(self, index: float, row: float, col: float) -> np.ndarray:
        """Display (slice index, row, col) -> continuous voxel indices (z, y, x)."""
        zyx = np.zeros(3)
        zyx[self.slice_axis] = index
        zyx[self.row_axis] = (self.n_rows - 1 - row) if self.flip_rows else row
        zyx[self.col_axis] = (self.n_cols - 1 - col) if self.flip_cols else col
        return zyx

    def from_voxel(
        self, zyx: np.ndarray | tuple[float, float, float]
    ) -> tuple[float, float, float]:
        """Voxel indices (z, y, x) -> display (slice index, row, col)."""
        p = np.asarray(zyx, dtype=float)
        row, col = p[self.row_axis], p[self.col_axis]
        if self.flip_rows:
            row = self.n_rows - 1 - row
        if self.flip_cols:
            col = self.n_cols - 1 - col
        return float(p[self.slice_axis]), float(row), float(col)

    def scene_to_pixel(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Scene mm (image top-left corner at 0, 0) -> continuous display (row, col)."""
        return y_mm / self.row_spacing - 0.5, x_mm / self.col_spacing - 0.5

    def pixel_to_scene(self, row: float, col: float) -> tuple[float, float]:
        """Continuous display (row, col) -> scene mm (x, y): inverse of ``scene_to_pixel``."""
        return (col + 0.5) * self.col_spacing, (row + 0.5) * self.row_spacing

    # ---- stored frame (the tools') -------------------------------------------------------
    def to_volume(self, row: float, col: float, slice_index: float) -> np.ndarray:
        """Continuous (z, y, x) of a point at stored (row, col) on slice ``slice_index``."""
        out = np.zeros(3)
        s, r, c = self.axes
        out[s], out[r], out[c] = slice_index, row, col
        return out

    def points_to_volume(self, rc: np.ndarray, slice_index: float) -> np.ndarray:
        """(N, 2) stored (row, col) points on a slice -> (N, 3) (z, y, x)."""
        rc = np.asarray(rc, dtype=float).reshape(-1, 2)
        out = np.zeros((len(rc), 3))
        s, r, c = self.axes
        out[:, s] = slice_index
        out[:, r] = rc[:, 0]
        out[:, c] = rc[:, 1]
        return out

    def from_volume(self, zyx: Iterable[float]) -> tuple[float, float, float]:
        """Stored (row, col, slice) of a (z, y, x) point."""
        p = tuple(float(v) for v in zyx)
        s, r, c = self.axes
        return p[r], p[c], p[s]

    def to_patient(self, row: float, col: float, slice_index: float) -> np.ndarray:
        """LPS mm (x, y, z) of a stored (row, col) point on slice ``slice_index``."""
        return self._grid.index_to_patient(self.to_volume(row, col, slice_index))

    def contains(self, row: float, col: float) -> bool:
        rows, cols = self.size
        return -0.5 <= row < rows - 0.5 and -0.5 <= col < cols - 0.5

    def clamp_slice(self, slice_index: float) -> int:
        return int(min(max(round(slice_index), 0), self.n_slices - 1))

    def slice_index_expr(self, slice_index: int) -> tuple:
        """An index tuple selecting slice ``slice_index`` of a (z, y, x) array."""
        idx: list = [slice(None)] * 3
        idx[self.slice_axis] = int(slice_index)
        return tuple(idx)

    def take(self, array: np.ndarray, slice_index: int) -> np.ndarray:
        """The stored (rows, cols) view of slice ``slice_index`` (writes go to ``array``)."""
        cut = array[self.slice_index_expr(slice_index)]
        _, r, c = self.axes
        return cut.T if r > c else cut

    def embed(self, mask2d: np.ndarray, slice_index: int) -> tuple[tuple[slice, ...], np.ndarray]:
        """(region, mask) placing a stored (rows, cols) mask on one slice, in (z, y, x) order."""
        s, r, c = self.axes
        region: list[slice] = [slice(None)] * 3
        region[s] = slice(int(slice_index), int(slice_index) + 1)
        mask3 = np.moveaxis(np.asarray(mask2d)[np.newaxis], (0, 1, 2), (s, r, c))
        return tuple(region), mask3

    def distance_mm(self, a_rc: tuple[float, float], b_rc: tuple[float, float]) -> float:
        pr, pc = self.pixel_mm
        return float(np.hypot((a_rc[0] - b_rc[0]) * pr, (a_rc[1] - b_rc[1]) * pc))

    @property
    def calibration(self) -> Calibration:
        """How lengths on this plane are given: mm (in the patient, at the detector, from an
        ultrasound region) or pixels."""
        return Calibration(self.spacing_source, self.spacing_zyx)

    def distance_text(self, a_rc: tuple[float, float], b_rc: tuple[float, float]) -> str:
        """The length between two stored (row, col) points with its honest unit."""
        a = self.to_volume(a_rc[0], a_rc[1], 0.0)
        b = self.to_volume(b_rc[0], b_rc[1], 0.0)
        return self.calibration.ruler_text(a, b)


def planes_for(volume: Volume) -> dict[str, Plane]:
    """Every plane a volume offers (only axial for a single 2D image)."""
    names = ("axial",) if volume.is_2d else PLANES
    grid = grid_of(volume)
    source = spacing_source(volume)
    return {p: replace(Plane.of(grid, p), spacing_source=source) for p in names}
