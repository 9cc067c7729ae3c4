"""Grid: a voxel grid in patient space; every voxel <-> LPS <-> RAS conversion lives here.

Conventions (DESIGN.md "Coordinates"): arrays are indexed (z, y, x); ``spacing``, ``origin``
and the columns of ``direction`` are in (x, y, z) order, as in SimpleITK and DICOM:
spacing[0] is the column spacing, origin is the LPS position in mm of the centre of voxel
(0, 0, 0), direction[:, 0] is the LPS unit vector along increasing x (columns),
direction[:, 1] along increasing y (rows), direction[:, 2] along increasing z (slices).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: LPS -> RAS flips the first two axes (and is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Grid:
    shape: tuple[int, int, int]  # (z, y, x)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # (x, y, z) mm
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LPS mm of voxel (0, 0, 0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or any(s < 1 for s in shape):
            raise ValueError(f"a grid needs three positive sizes (z, y, x), got {self.shape}")
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or any(s <= 0 for s in spacing):
            raise ValueError(f"spacing must be three positive finite numbers, got {self.spacing}")
        origin = tuple(float(o) for o in self.origin)
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise ValueError(f"origin must be three finite numbers, got {self.origin}")
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        direction.setflags(write=False)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and self.differs_from(other, tol_mm=0.0) is None

    __hash__ = None  # type: ignore[assignment]

    # ---- affines -------------------------------------------------------------------------
    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous (x, y, z) voxel indices to LPS mm."""
        return affine_lps(self.spacing, self.origin, self.direction)

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 matrix mapping (x, y, z) voxel indices to RAS mm (the NIfTI convention)."""
        return lps_to_ras_affine(self.affine_lps)

    @classmethod
    def from_affine_lps(cls, shape: Sequence[int], affine: np.ndarray) -> Grid:
        """The grid of an (x, y, z)-index -> LPS affine (columns may carry the spacing)."""
        a = np.asarray(affine, dtype=float)
        lin = a[:3, :3]
        spacing = np.linalg.norm(lin, axis=0)
        if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
            raise ValueError(f"the affine has a zero or invalid axis: {spacing.tolist()}")
        return cls(
            tuple(int(s) for s in shape),  # type: ignore[arg-type]
            tuple(float(s) for s in spacing),  # type: ignore[arg-type]
            tuple(float(o) for o in a[:3, 3]),  # type: ignore[arg-type]
            lin / spacing,
        )

    @classmethod
    def from_affine_ras(cls, shape: Sequence[int], affine: np.ndarray) -> Grid:
        """The grid of a NIfTI-style (x, y, z)-index -> RAS affine."""
        return cls.from_affine_lps(shape, lps_to_ras_affine(affine))

    # ---- points --------------------------------------------------------------------------
    def index_to_patient(self, zyx: np.ndarray | Sequence[float]) -> np.ndarray:
        """Voxel indices (z, y, x), shape (3,) or (N, 3), to LPS mm (x, y, z order)."""
        return index_to_patient(zyx, self.spacing, self.origin, self.direction)

    def patient_to_index(self, lps: np.ndarray | Sequence[float]) -> np.ndarray:
        """LPS mm points, shape (3,) or (N, 3), to continuous voxel indices (z, y, x)."""
        return patient_to_index(lps, self.spacing, self.origin, self.direction)

    @property
    def slice_normal(self) -> np.ndarray:
        return self.direction[:, 2]

    @property
    def is_2d(self) -> bool:
        return self.shape[0] == 1

    def differs_from(self, other: Grid, tol_mm: float = 1e-3) -> str | None:
        """A sentence saying how two grids differ, or None when they are the same grid."""
        if self.shape != other.shape:
            return f"size {_fmt_shape(self.shape)} vs {_fmt_shape(other.shape)}"
        if not np.allclose(self.spacing, other.spacing, atol=tol_mm, rtol=0):
            return f"spacing {self.spacing} vs {other.spacing} mm"
        if not np.allclose(self.origin, other.origin, atol=tol_mm, rtol=0):
            return f"origin {self.origin} vs {other.origin} mm"
        if not np.allclose(self.direction, other.direction, atol=1e-4 if tol_mm else 0.0, rtol=0):
            return "orientation (direction cosines) differ"
        return None


def _fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def affine_lps(
    spacing: Sequence[float], origin: Sequence[float], direction: np.ndarray
) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(spacing)
    a[:3, 3] = origin
    return a


def lps_to_ras_affine(affine: np.ndarray) -> np.ndarray:
    """Flip an affine's output between LPS and RAS (the same operation both ways)."""
    a = np.array(affine, dtype=float)
    a[:3, :] = LPS_TO_RAS @ a[:3, :]
    return a


def index_to_patient(
    zyx: np.ndarray | Sequence[float],
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray,
) -> np.ndarray:
    p = np.asarray(zyx, dtype=float)
    single = p.ndim == 1
    p = np.atleast_2d(p)[:, ::-1]  # -> (x, y, z)
    out = p * np.asarray(spacing) @ np.asarray(direction).T + np.asarray(origin)
    return out[0] if single else out


def patient_to_index(
    lps: np.ndarray | Sequence[float],
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray,
) -> np.ndarray:
    p = np.asarray(lps, dtype=float)
    single = p.ndim == 1
    p = np.atleast_2d(p) - np.asarray(origin)
    xyz = np.linalg.solve(np.asarray(direction), p.T).T / np.asarray(spacing)
    out = xyz[:, ::-1]
    return out[0] if single else out


def orientation_letters(vector: np.ndarray | Sequence[float]) -> str:
    """Letters for the LPS direction a vector points to, strongest component first ('L', 'PS'...)."""
    v = np.asarray(vector, dtype=float)
    letters = []
    pos, neg = ("L", "P", "S"), ("R", "A", "I")
    order = np.argsort(-np.abs(v))
    for axis in order:
        if (
            abs(v[axis]) > 1e-3 * max(np.abs(v).max(), 1e-12)
            and abs(v[axis]) >= 0.25 * np.abs(v).max()
        ):
            letters.append(pos[axis] if v[axis] > 0 else neg[axis])
    return "".join(letters)
