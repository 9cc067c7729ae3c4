"""Volume: a voxel array with its patient geometry; the conversions are ``radlens_core.grid``'s.

Conventions (see DESIGN.md "Coordinates"):
- ``array`` is indexed (z, y, x); a single 2D image is stored with z = 1 (``is_2d``);
  RGB data has a trailing channel axis (z, y, x, 3).
- ``spacing``, ``origin`` and the columns of ``direction`` are in (x, y, z) order, as in
  SimpleITK and DICOM: spacing[0] is the column spacing, origin is the LPS position in mm of
  the centre of voxel (0, 0, 0), direction[:, 0] is the LPS unit vector along increasing x
  (columns), direction[:, 1] along increasing y (rows), direction[:, 2] along increasing z.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from radlens_core.grid import (
    LPS_TO_RAS,
    Grid,
    affine_lps,
    index_to_patient,
    lps_to_ras_affine,
    orientation_letters,
    patient_to_index,
)

__all__ = ["LPS_TO_RAS", "Grid", "Volume", "orientation_letters"]


@dataclass(eq=False)
class Volume:
    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = "OT"
    #: Stable key for the label store: SeriesInstanceUID, or a file hash for non-DICOM.
    series_uid: str = ""
    description: str = ""
    #: Window presets from the file itself: list of (center, width, explanation).
    windows: list[tuple[float, float, str]] = field(default_factory=list)
    #: Problems found while assembling (uneven spacing, tilt, missing slices...).
    warnings: list[str] = field(default_factory=list)
    #: Free-form metadata: patient name/id, study uid/date, frame of reference uid,
    #: per-slice ``source_files`` and ``sop_instance_uids`` (index = z), body part, etc.
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim not in (3, 4):
            raise ValueError(f"a Volume needs a 2D or 3D array (or RGB), got shape {arr.shape}")
        if arr.ndim == 4 and arr.shape[-1] not in (3, 4):
            raise ValueError(f"a 4D Volume must be RGB(A) with the channel last, got {arr.shape}")
        self.array = arr
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        self.direction = d
        if any(not math.isfinite(s) or s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive and finite, got {self.spacing}")
        if not all(math.isfinite(o) for o in self.origin) or not np.isfinite(d).all():
            raise ValueError(f"origin and direction must be finite, got {self.origin}")

    # ---- shape -------------------------------------------------------------------------
    @cached_property
    def key(self) -> str:
        """The one identity a series' stored data (labels, AI results) is kept under: the
        SeriesInstanceUID (a file hash for non-DICOM files), else, for a volume built in
        memory, a hash of its pixels. ``radlens_core.series.series_key`` makes it a folder."""
        if self.series_uid:
            return self.series_uid
        digest = hashlib.sha1(np.ascontiguousarray(self.array).tobytes(), usedforsecurity=False)
        return f"pixels-{digest.hexdigest()[:20]}"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) voxel counts, without any colour channel."""
        return tuple(self.array.shape[:3])  # type: ignore[return-value]

    @property
    def is_rgb(self) -> bool:
        return self.array.ndim == 4

    @property
    def is_2d(self) -> bool:
        return self.array.shape[0] == 1

    # ---- geometry (all of it is radlens_core.grid's) ------------------------------------
    @property
    def grid(self) -> Grid:
        """The voxel grid of this volume (shape without colour channel, spacing, origin,
        direction): the one geometry type shared with the engine."""
        return Grid(self.shape, self.spacing, self.origin, self.direction)

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous (x, y, z) voxel indices to LPS mm."""
        return affine_lps(self.spacing, self.origin, self.direction)

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 matrix mapping (x, y, z) voxel indices to RAS mm (the NIfTI convention)."""
        return lps_to_ras_affine(self.affine_lps)

    def index_to_patient(self, zyx: np.ndarray | tuple[float, ...]) -> np.ndarray:
        """Voxel indices (z, y, x), shape (3,) or (N, 3), to LPS mm (x, y, z order)."""
        return index_to_patient(zyx, self.spacing, self.origin, self.direction)

    def patient_to_index(self, lps: np.ndarray | tuple[float, ...]) -> np.ndarray:
        """LPS mm points, shape (3,) or (N, 3), to continuous voxel indices (z, y, x)."""
        return patient_to_index(lps, self.spacing, self.origin, self.direction)

    @property
    def slice_normal(self) -> np.ndarray:
        return self.direction[:, 2]

    def orientation_letters(self, axis_vector: np.ndarray) -> str:
        """Patient-direction letters (e.g. 'L', 'PA'-style 'AP' mix) a vector points to."""
        return orientation_letters(axis_vector)

    # ---- intensity ---------------------------------------------------------------------
    def default_window(self) -> tuple[float, float]:
        """(center, width): the file's first window, else a CT soft-tissue window, else the range."""
        if self.windows:
            c, w, _ = self.windows[0]
            return float(c), float(w)
        if self.modality == "CT":
            return 40.0, 400.0
        finite = self.array[np.isfinite(self.array)] if self.array.dtype.kind == "f" else self.array
        if finite.size == 0:
            return 0.0, 1.0
        lo, hi = np.percentile(finite[:: max(1, finite.size // 200_000)], [0.5, 99.5])
        return float((lo + hi) / 2), float(max(hi - lo, 1e-6))


class VolumeCache:
    """Loaded volumes of a multi-volume series kept by ``Volume.key``, least recently used
    dropped first once their pixels pass ``max_bytes`` (stepping or playing through a time
    series loads each volume once)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: dict[str, Volume] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return sum(v.array.nbytes for v in self._items.values())

    def get(self, key: str) -> Volume | None:
        volume = self._items.pop(key, None)
        if volume is not None:
            self._items[key] = volume  # most recently used last
        return volume

    def put(self, volume: Volume) -> None:
        self._items.pop(volume.key, None)
        if volume.array.nbytes > self.max_bytes:
            return
        self._items[volume.key] = volume
        while self.nbytes > self.max_bytes:
            self._items.pop(next(iter(self._items)))

    def clear(self) -> None:
        self._items.clear()

    def retain(self, keys: set[str]) -> None:
        """Drop every volume whose key is not in ``keys``."""
        for key in [k for k in self._items if k not in keys]:
            del self._items[key]
