"""Plane geometry for display: which array axes a plane shows, flips, mm spacing, edge letters.

Qt-free so it can be tested without a QApplication. A plane is an un-resampled cut through
the voxel array; the anatomical name (axial/coronal/sagittal) goes to the array axis whose
direction is closest to that plane's normal, so a sagittally acquired MR still shows its
axial plane as axial. Flips put anterior at the top of axial images, the patient's right on
the image left (radiological convention), and superior at the top of coronal/sagittal.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np

from viewer.study.volume import Volume, orientation_letters

PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")

# LPS unit vectors: (normal, screen-right, screen-down) for each anatomical plane.
_L, _P, _S = np.eye(3)
_PLANE_VECTORS = {
    "axial": (_S, _L, _P),
    "coronal": (_P, _L, -_S),
    "sagittal": (_L, _P, -_S),
}


def axis_direction(volume: Volume, axis: int) -> np.ndarray:
    """LPS unit vector along increasing array index ``axis`` (0 = z, 1 = y, 2 = x)."""
    return np.asarray(volume.direction)[:, 2 - axis]


def axis_spacing(volume: Volume, axis: int) -> float:
    """Millimetres between neighbouring voxels along array axis ``axis`` (0 = z, 1 = y, 2 = x)."""
    return float(volume.spacing[2 - axis])


def _normal_axes(volume: Volume) -> dict[str, int]:
    """Array axis cut by each plane: the permutation that best matches the three normals."""
    dirs = [axis_direction(volume, a) for a in range(3)]
    best, best_score = (0, 1, 2), -1.0
    for perm in permutations(range(3)):
        score = sum(abs(float(dirs[perm[i]] @ _PLANE_VECTORS[p][0])) for i, p in enumerate(PLANES))
        if score > best_score + 1e-9:
            best, best_score = perm, score
    return dict(zip(PLANES, best, strict=True))


@dataclass(frozen=True)
class PlaneGeometry:
    """How one plane of a volume is laid out on screen (rows go down, columns go right)."""

    plane: str
    normal_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    n_slices: int
    n_rows: int
    n_cols: int
    row_spacing: float
    col_spacing: float
    slice_spacing: float
    #: LPS unit vectors of screen-down, screen-right and of increasing slice index.
    down: tuple[float, float, float]
    right: tuple[float, float, float]
    normal: tuple[float, float, float]

    @classmethod
    def of(cls, volume: Volume, plane: str) -> PlaneGeometry:
        if plane not in PLANES:
            raise ValueError(f"unknown plane {plane!r}; expected one of {PLANES}")
        if volume.is_2d:
            plane = "axial"  # a single image has one plane: rows down, columns right, as stored
            normal, row, col = 0, 1, 2
            flip_r = flip_c = False
        else:
            normal = _normal_axes(volume)[plane]
            _, want_right, want_down = _PLANE_VECTORS[plane]
            a, b = (ax for ax in range(3) if ax != normal)
            da, db = axis_direction(volume, a), axis_direction(volume, b)
            # Columns go to whichever remaining axis points most along screen-right.
            col, row = (a, b) if abs(da @ want_right) >= abs(db @ want_right) else (b, a)
            flip_c = float(axis_direction(volume, col) @ want_right) < 0
            flip_r = float(axis_direction(volume, row) @ want_down) < 0
        shape = volume.shape
        down = axis_direction(volume, row) * (-1 if flip_r else 1)
        right = axis_direction(volume, col) * (-1 if flip_c else 1)
        return cls(
            plane=plane,
            normal_axis=normal,
            row_axis=row,
            col_axis=col,
            flip_rows=bool(flip_r),
            flip_cols=bool(flip_c),
            n_slices=int(shape[normal]),
            n_rows=int(shape[row]),
            n_cols=int(shape[col]),
            row_spacing=axis_spacing(volume, row),
            col_spacing=axis_spacing(volume, col),
            slice_spacing=axis_spacing(volume, normal),
            down=tuple(float(v) for v in down),  # type: ignore[arg-type]
            right=tuple(float(v) for v in right),  # type: ignore[arg-type]
            normal=tuple(float(v) for v in axis_direction(volume, normal)),  # type: ignore[arg-type]
        )

    # ---- data ----------------------------------------------------------------------------
    def slice_of(self, array: np.ndarray, index: int) -> np.ndarray:
        """The (rows, cols[, channels]) view of ``array`` (z, y, x[, c]) at slice ``index``.

        Works for any array with the volume's (z, y, x) leading shape (label maps, heat maps).
        Returns a strided view, never a copy.
        """
        index = int(np.clip(index, 0, self.n_slices - 1))
        sl: list[object] = [slice(None)] * array.ndim
        sl[self.normal_axis] = index
        plane = array[tuple(sl)]
        # After removing the normal axis the remaining two keep their relative order.
        if self.row_axis > self.col_axis:
            plane = np.swapaxes(plane, 0, 1)
        if self.flip_rows:
            plane = plane[::-1]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane

    # ---- coordinates ---------------------------------------------------------------------
    def to_voxel(self, index: float, row: float, col: float) -> np.ndarray:
        """Screen (slice index, row, col) -> continuous voxel indices (z, y, x)."""
        zyx = np.zeros(3)
        zyx[self.normal_axis] = index
        zyx[self.row_axis] = (self.n_rows - 1 - row) if self.flip_rows else row
        zyx[self.col_axis] = (self.n_cols - 1 - col) if self.flip_cols else col
        return zyx

    def from_voxel(
        self, zyx: np.ndarray | tuple[float, float, float]
    ) -> tuple[float, float, float]:
        """Voxel indices (z, y, x) -> (slice index, row, col) on this plane."""
        p = np.asarray(zyx, dtype=float)
        row = p[self.row_axis]
        col = p[self.col_axis]
        if self.flip_rows:
            row = self.n_rows - 1 - row
        if self.flip_cols:
            col = self.n_cols - 1 - col
        return float(p[self.normal_axis]), float(row), float(col)

    def scene_to_pixel(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Scene mm (image top-left corner at 0, 0) -> continuous (row, col), centres integral."""
        return y_mm / self.row_spacing - 0.5, x_mm / self.col_spacing - 0.5

    def pixel_to_scene(self, row: float, col: float) -> tuple[float, float]:
        """Continuous (row, col) -> scene mm (x, y): the inverse of :meth:`scene_to_pixel`."""
        return (col + 0.5) * self.col_spacing, (row + 0.5) * self.row_spacing

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """(z, y, x) shape of the volume this plane cuts."""
        shape = [0, 0, 0]
        shape[self.normal_axis] = self.n_slices
        shape[self.row_axis] = self.n_rows
        shape[self.col_axis] = self.n_cols
        return (shape[0], shape[1], shape[2])

    @property
    def width_mm(self) -> float:
        return self.n_cols * self.col_spacing

    @property
    def height_mm(self) -> float:
        return self.n_rows * self.row_spacing

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters for the four screen edges: keys top, bottom, left, right."""
        down, right = np.asarray(self.down), np.asarray(self.right)
        return {
            "top": orientation_letters(-down),
            "bottom": orientation_letters(down),
            "left": orientation_letters(-right),
            "right": orientation_letters(right),
        }


def planes_for(volume: Volume) -> dict[str, PlaneGeometry]:
    """The geometry of every plane a volume offers (only axial for a single 2D image)."""
    names = ("axial",) if volume.is_2d else PLANES
    return {p: PlaneGeometry.of(volume, p) for p in names}
