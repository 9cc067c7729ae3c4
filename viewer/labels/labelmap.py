"""LabelMap: a uint8 (z, y, x) mask whose every change is a sparse, reversible diff.

Each painting operation mutates the map and returns a ``MaskEdit``: per touched slice, the
bounding box and the bytes before and after. Undo writes the "before" bytes back, redo (and
journal replay) writes the "after" bytes, so both are idempotent and cheap.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from viewer.labels.model import LabelError


@dataclass(frozen=True)
class SliceDiff:
    z: int
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1 (half-open)
    before: bytes
    after: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "z": self.z,
            "bbox": list(self.bbox),
            "before": _pack(self.before),
            "after": _pack(self.after),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SliceDiff:
        y0, x0, y1, x1 = (int(v) for v in d["bbox"])
        return cls(int(d["z"]), (y0, x0, y1, x1), _unpack(d["before"]), _unpack(d["after"]))


def _pack(b: bytes) -> str:
    return base64.b64encode(zlib.compress(b, 6)).decode("ascii")


def _unpack(s: str) -> bytes:
    return zlib.decompress(base64.b64decode(s))


@dataclass(frozen=True)
class MaskEdit:
    """A reversible change of a label map (``layer`` "" is the user's map)."""

    diffs: tuple[SliceDiff, ...]
    description: str = "paint"
    layer: str = ""

    def inverse(self) -> MaskEdit:
        return MaskEdit(
            tuple(SliceDiff(d.z, d.bbox, d.after, d.before) for d in self.diffs),
            f"undo {self.description}",
            self.layer,
        )

    @property
    def empty(self) -> bool:
        return not self.diffs


def slice_diff(
    z: int, before: np.ndarray, after: np.ndarray, oy: int = 0, ox: int = 0
) -> SliceDiff | None:
    """The diff of slice z between two (rows, cols) regions placed at (oy, ox), cropped to
    the pixels that changed; None when nothing did."""
    changed = before != after
    if not changed.any():
        return None
    ys, xs = np.nonzero(changed)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    return SliceDiff(
        z,
        (y0 + oy, x0 + ox, y1 + oy, x1 + ox),
        np.ascontiguousarray(before[y0:y1, x0:x1], dtype=np.uint8).tobytes(),
        np.ascontiguousarray(after[y0:y1, x0:x1], dtype=np.uint8).tobytes(),
    )


class LabelMap:
    """A uint8 label array (z, y, x); 0 is background, other values are LabelSet indices."""

    def __init__(self, shape: Sequence[int] | None = None, array: np.ndarray | None = None):
        if array is None:
            if shape is None or len(shape) != 3:
                raise LabelError(f"a LabelMap needs a (z, y, x) shape, got {shape}")
            array = np.zeros(tuple(int(s) for s in shape), dtype=np.uint8)
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.ndim != 3:
            raise LabelError(f"a LabelMap must be 3D (z, y, x), got shape {array.shape}")
        if array.dtype != np.uint8:
            if array.size and (array.min() < 0 or array.max() > 255):
                raise LabelError(f"label values must be 0..255, got {array.min()}..{array.max()}")
            array = array.astype(np.uint8)
        self.array = np.ascontiguousarray(array)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    def labels_present(self) -> list[int]:
        return [int(v) for v in np.unique(self.array) if v]

    # ---- applying diffs ----------------------------------------------------------------
    def apply(self, edit: MaskEdit) -> None:
        for d in edit.diffs:
            y0, x0, y1, x1 = d.bbox
            region = np.frombuffer(d.after, dtype=np.uint8).reshape(y1 - y0, x1 - x0)
            self.array[d.z, y0:y1, x0:x1] = region

    def revert(self, edit: MaskEdit) -> None:
        self.apply(edit.inverse())

    def _write(
        self, z: int, new: np.ndarray, description: str, oy: int = 0, ox: int = 0
    ) -> SliceDiff | None:
        """Write ``new`` at (oy, ox) of slice z where it differs; the diff covers the changed
        bbox only, and only the given region is compared (brush dabs stay cheap on 512²)."""
        old = self.array[z, oy : oy + new.shape[0], ox : ox + new.shape[1]]
        d = slice_diff(z, old, new, oy, ox)
        if d is not None:
            y0, x0, y1, x1 = d.bbox
            old[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = new[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        return d

    def _masked_set(
        self, z: int, m: np.ndarray, value: int, only: int | None, what: str
    ) -> SliceDiff | None:
        """Set ``value`` where ``m`` (and the voxel equals ``only`` when given), within m's bbox."""
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if not len(ys):
            return None
        y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
        new = self.array[z, y0:y1, x0:x1].copy()
        mm = m[y0:y1, x0:x1]
        if only is not None:
            mm = mm & (new == only)
        new[mm] = value
        return self._write(z, new, what, y0, x0)

    def _check_z(self, z: int) -> int:
        if not 0 <= z < self.shape[0]:
            raise LabelError(f"slice {z} is outside the series (0..{self.shape[0] - 1})")
        return int(z)

    def _check_mask(self, mask2d: np.ndarray) -> np.ndarray:
        m = np.asarray(mask2d, dtype=bool)
        if m.shape != self.shape[1:]:
            raise LabelError(f"mask of shape {m.shape} does not match slices of {self.shape[1:]}")
        return m

    # ---- editing operations (each mutates and returns its MaskEdit) ---------------------
    def paint(
        self,
        z: int,
        mask2d: np.ndarray,
        label: int,
        hu_slice: np.ndarray | None = None,
        hu_range: tuple[float, float] | None = None,
        overwrite: bool = True,
    ) -> MaskEdit:
        """Set ``label`` where ``mask2d``; with ``hu_range`` only where the image is in [lo, hi]
        (the threshold-limited brush); ``overwrite=False`` leaves other labels alone."""
        z = self._check_z(z)
        m = self._check_mask(mask2d)
        if hu_range is not None:
            if hu_slice is None:
                raise LabelError("a threshold-limited brush needs the image slice")
            lo, hi = hu_range
            m = m & (hu_slice >= lo) & (hu_slice <= hi)
        d = self._masked_set(z, m, label, None if overwrite else 0, "paint")
        return MaskEdit((d,) if d else (), "paint" if hu_range is None else "threshold paint")

    def erase(self, z: int, mask2d: np.ndarray, label: int | None = None) -> MaskEdit:
        """Clear ``mask2d`` (only voxels of ``label`` when given) to background."""
        z = self._check_z(z)
        m = self._check_mask(mask2d)
        d = self._masked_set(z, m, 0, label, "erase")
        return MaskEdit((d,) if d else (), "erase")

    def fill_polygon(
        self, z: int, vertices_yx: Sequence[tuple[float, float]], label: int
    ) -> MaskEdit:
        """Fill a polygon (vertex coordinates in voxel (y, x)) on slice z."""
        edit = self.paint(z, polygon_mask(self.shape[1:], vertices_yx), label)
        return MaskEdit(edit.diffs, "fill polygon")

    def paint_sphere(
        self,
        center_zyx: Sequence[float],
        radius_mm: float,
        label: int,
        spacing_xyz: Sequence[float],
        erase: bool = False,
    ) -> MaskEdit:
        """Paint (or erase) a ball of ``radius_mm`` in physical mm around a voxel centre."""
        sz = np.asarray(spacing_xyz[::-1], dtype=float)
        c = np.asarray(center_zyx, dtype=float)
        r_vox = radius_mm / sz
        lo = np.maximum(np.floor(c - r_vox).astype(int), 0)
        hi = np.minimum(np.ceil(c + r_vox).astype(int) + 1, self.shape)
        zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        ball = ((zz - c[0]) * sz[0]) ** 2 + ((yy - c[1]) * sz[1]) ** 2 + ((xx - c[2]) * sz[2]) ** 2
        ball = ball <= radius_mm**2
        diffs = []
        for i, z in enumerate(range(lo[0], hi[0])):
            new = self.array[z, lo[1] : hi[1], lo[2] : hi[2]].copy()
            new[ball[i]] = 0 if erase else label
            d = self._write(z, new, "sphere", int(lo[1]), int(lo[2]))
            if d:
                diffs.append(d)
        return MaskEdit(tuple(diffs), "erase sphere" if erase else "paint sphere")

    def interpolate_between_slices(self, label: int, s0: int, s1: int, axis: int = 0) -> MaskEdit:
        """Fill the slices strictly between s0 and s1 along array ``axis`` (0: axial z, 1: y,
        2: x) with a shape-based interpolation of ``label`` (linear blend of signed distance
        maps, zero level set)."""
        if axis not in (0, 1, 2):
            raise LabelError(f"interpolation axis must be 0, 1 or 2, got {axis}")
        n = self.shape[axis]
        for s in (s0, s1):
            if not 0 <= s < n:
                raise LabelError(f"slice {s} along axis {axis} is outside the series (0..{n - 1})")
        s0, s1 = sorted((int(s0), int(s1)))
        planes = np.moveaxis(self.array, axis, 0)  # a view: planes[i] is slice i along axis
        a, b = planes[s0] == label, planes[s1] == label
        if not a.any() or not b.any():
            raise LabelError(f"label {label} must be drawn on both slice {s0} and slice {s1}")
        if s1 - s0 < 2:
            return MaskEdit((), "interpolate")
        da, db = signed_distance(a), signed_distance(b)
        block = planes[s0 + 1 : s1].copy()
        for i, s in enumerate(range(s0 + 1, s1)):
            t = (s - s0) / (s1 - s0)
            block[i][(1 - t) * da + t * db <= 0] = label
        # Back in (z, y, x) order the block covers every z (for axis 1/2) but only the gap's
        # rows or columns, so each z slice is written at an offset within that band.
        block = np.moveaxis(block, 0, axis)
        z0, oy, ox = (s0 + 1 if ax == axis else 0 for ax in range(3))
        diffs = []
        for i in range(block.shape[0]):
            d = self._write(z0 + i, block[i], "interpolate", oy, ox)
            if d:
                diffs.append(d)
        return MaskEdit(tuple(diffs), "interpolate")

    def set_array(self, new: np.ndarray) -> MaskEdit:
        """Make the whole map equal ``new`` (an imported mask), slice by slice."""
        new = np.asarray(new, dtype=np.uint8)
        if new.shape != self.shape:
            raise LabelError(f"a label map of shape {new.shape} does not fit {self.shape}")
        diffs = [d for z in range(self.shape[0]) if (d := self._write(z, new[z], "import"))]
        return MaskEdit(tuple(diffs), "import mask")

    def replace_label(self, mask3d: np.ndarray, label: int, clear_label: bool = True) -> MaskEdit:
        """Make ``label`` exactly ``mask3d`` (used to accept a model's mask)."""
        m = np.asarray(mask3d, dtype=bool)
        if m.shape != self.shape:
            raise LabelError(f"mask of shape {m.shape} does not match the series {self.shape}")
        diffs = []
        for z in range(self.shape[0]):
            new = self.array[z].copy()
            if clear_label:
                new[new == label] = 0
            new[m[z]] = label
            d = self._write(z, new, "replace")
            if d:
                diffs.append(d)
        return MaskEdit(tuple(diffs), f"set label {label}")


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed Euclidean distance (voxels): negative inside, positive outside."""
    inside = ndimage.distance_transform_edt(mask)
    outside = ndimage.distance_transform_edt(~mask)
    return np.where(mask, -inside + 0.5, outside - 0.5)


def polygon_mask(shape_yx: Sequence[int], vertices_yx: Sequence[tuple[float, float]]) -> np.ndarray:
    """Boolean mask of voxel centres inside a polygon (even-odd rule)."""
    ny, nx = int(shape_yx[0]), int(shape_yx[1])
    v = np.asarray(vertices_yx, dtype=float)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
        raise LabelError(f"a polygon needs at least 3 (y, x) vertices, got {v.shape}")
    mask = np.zeros((ny, nx), dtype=bool)
    # Only pixels in the polygon's bounding box can be inside: keeps big slices cheap.
    y0, y1 = max(int(np.floor(v[:, 0].min())), 0), min(int(np.ceil(v[:, 0].max())) + 1, ny)
    x0, x1 = max(int(np.floor(v[:, 1].min())), 0), min(int(np.ceil(v[:, 1].max())) + 1, nx)
    if y1 <= y0 or x1 <= x0:
        return mask
    yy = np.arange(y0, y1, dtype=float)[:, None]
    xx = np.arange(x0, x1, dtype=float)[None, :]
    inside = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for (yi, xi), (yj, xj) in zip(v, np.roll(v, -1, axis=0), strict=True):
        if yi == yj:
            continue  # horizontal edges never cross a row's scanline
        crosses = (yi > yy) != (yj > yy)
        x_at = xi + (yy - yi) * (xj - xi) / (yj - yi)
        inside ^= crosses & (xx < x_at)
    mask[y0:y1, x0:x1] = inside
    return mask


def disk_mask(shape_yx: Sequence[int], center_yx: Sequence[float], radius_vox: float) -> np.ndarray:
    """A round brush footprint (voxel units) for ``paint``/``erase``."""
    yy, xx = np.ogrid[0 : shape_yx[0], 0 : shape_yx[1]]
    return (yy - center_yx[0]) ** 2 + (xx - center_yx[1]) ** 2 <= radius_vox**2
