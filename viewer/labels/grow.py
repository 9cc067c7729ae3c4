"""Interactive segmentation with no model (Qt-free): grow from seeds (and, re-exported,
click-to-segment's ``RegionGrower`` from ``viewer.labels.region_grow``).

- ``SeedGrower``: strokes of two or more labels (or one label, the region's border then
  being background) compete over the image by a seeded watershed on the gradient magnitude
  (SimpleITK's morphological watershed from markers: the equivalent of grow-cut that
  Slicer's "Watershed" effect uses). The region is the strokes' bounding box plus a
  margin; a preview is computed on a strided copy of at most ``preview_voxels`` voxels
  (its gradient kept between updates), the accepted result at full resolution with the
  preview's sure interior as seeds, and boundary voxels snapped to the closer label.

No Qt and no label Document here: arrays in, (region, values) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radlens_core.progress import CancelCheck
from viewer.labels.edit_ops import Region
from viewer.labels.model import LabelError
from viewer.labels.region_grow import GrownRegion, RegionGrower, check_cancel

__all__ = ["GrownRegion", "RegionGrower", "SeedGrower", "SeedResult"]

#: internal marker for "the region's border is background" when only one label has strokes:
#: above every label (1..255), within the watershed's unsigned 16-bit markers
_BORDER = 256


@dataclass(frozen=True)
class SeedResult:
    """Grown labels on ``region``: ``values`` holds label indices (0 nowhere grown).

    ``step`` is the stride the result was computed at ((1, 1, 1): full resolution)."""

    region: Region
    values: np.ndarray
    labels: tuple[int, ...]
    step: tuple[int, int, int]


class SeedGrower:
    """Grow from seeds on one image (see the module docstring)."""

    def __init__(
        self,
        image: np.ndarray,
        spacing_zyx: Sequence[float],
        preview_voxels: int = 750_000,
        margin_fraction: float = 0.15,
        margin_mm: float = 10.0,
    ) -> None:
        image = np.asarray(image)
        if image.ndim != 3:
            raise LabelError(f"grow from seeds needs a (z, y, x) image, got {image.shape}")
        self.image = image
        self.spacing = np.asarray(spacing_zyx, dtype=float)
        self.preview_voxels = int(preview_voxels)
        self.margin_fraction = float(margin_fraction)
        self.margin_mm = float(margin_mm)
        self._gradients: dict[tuple, np.ndarray] = {}

    # ---- the region and its resolution ----------------------------------------------------
    def region_of(self, seeds: np.ndarray) -> Region:
        """The strokes' bounding box plus the margin (a fraction of its size, at least
        ``margin_mm``; twice that with strokes of one label, whose border is the only
        background), clipped to the series."""
        return self._region(_Strokes.of(seeds))

    def _region(self, strokes: _Strokes) -> Region:
        one_label = len(strokes.labels) == 1
        region = []
        for axis in range(3):
            lo, hi = int(strokes.coords[axis].min()), int(strokes.coords[axis].max()) + 1
            extent_mm = (hi - lo) * self.spacing[axis]
            mm = max(self.margin_mm, self.margin_fraction * extent_mm) * (2 if one_label else 1)
            pad = int(np.ceil(mm / self.spacing[axis]))
            region.append(slice(max(lo - pad, 0), min(hi + pad, strokes.shape[axis])))
        return tuple(region)  # type: ignore[return-value]

    def step_for(self, region: Region) -> tuple[int, int, int]:
        """Per-axis strides bringing ``region`` under ``preview_voxels``, coarsening the
        finest axis (in mm) first so the preview's voxels grow towards cubes."""
        shape = np.array([s.stop - s.start for s in region], dtype=float)
        step = np.ones(3, int)
        while np.prod(np.ceil(shape / step)) > self.preview_voxels:
            sizes = self.spacing * step
            sizes[np.ceil(shape / step) <= 2] = np.inf  # never collapse an axis
            if not np.isfinite(sizes).any():
                break
            step[int(np.argmin(sizes))] += 1
        return int(step[0]), int(step[1]), int(step[2])

    def _gradient(self, region: Region, step: tuple[int, int, int]) -> np.ndarray:
        """uint16 gradient magnitude of the image on ``region`` at ``step`` (cached)."""
        key = (tuple((s.start, s.stop) for s in region), step)
        cached = self._gradients.get(key)
        if cached is not None:
            return cached
        sub = self.image[region][:: step[0], :: step[1], :: step[2]].astype(np.float32)
        # One voxel of the grid it runs on: enough against noise, and a step edge keeps a
        # sharp ridge (a wider kernel leaves a plateau the line may cross anywhere).
        grad = ndimage.gaussian_gradient_magnitude(sub, sigma=1.0)
        scale = float(np.percentile(grad[::2, ::2, ::2], 99.5)) or 1.0
        out = np.clip(grad * (16000.0 / scale), 0, 65535).astype(np.uint16)
        self._gradients = {key: out} | {
            k: v for k, v in self._gradients.items() if k[0] == key[0]
        }  # keep one region's gradients (preview and full) only
        return out

    # ---- growing ----------------------------------------------------------------------------
    def preview(self, seeds: np.ndarray, cancel: CancelCheck | None = None) -> SeedResult:
        """Grown labels at preview resolution, expanded to full resolution on the region."""
        strokes = _Strokes.of(seeds)
        region = self._region(strokes)
        return self._grow(strokes, region, self.step_for(region), None, cancel)

    def refine(
        self, seeds: np.ndarray, coarse: SeedResult | None = None, cancel: CancelCheck | None = None
    ) -> SeedResult:
        """Full-resolution labels: where ``coarse`` (a preview of the same strokes) is sure
        -- farther than two preview voxels from any of its boundaries -- it is kept as a
        seed; the band in between is grown again on the full-resolution gradient."""
        strokes = _Strokes.of(seeds)
        region = self._region(strokes)
        if coarse is not None and coarse.region != region:
            coarse = None  # strokes moved the region: grow from scratch
        if coarse is not None and coarse.step == (1, 1, 1):
            return coarse
        return self._grow(strokes, region, (1, 1, 1), coarse, cancel)

    def _grow(
        self,
        strokes: _Strokes,
        region: Region,
        step: tuple[int, int, int],
        coarse: SeedResult | None,
        cancel: CancelCheck | None,
    ) -> SeedResult:
        labels = strokes.labels
        check_cancel(cancel)
        grad = self._gradient(region, step)
        check_cancel(cancel)
        markers = np.zeros(grad.shape, np.int16)
        if coarse is not None:
            markers[...] = _sure(coarse, step_band=2)
        # Strokes win over anything: every stroke voxel marks its preview voxel.
        at = tuple((c - s.start) // k for c, s, k in zip(strokes.coords, region, step, strict=True))
        markers[at] = strokes.values
        if len(labels) == 1 and coarse is None:
            # One label: the region's border (where it is not the series' edge or a stroke)
            # stands for "everything else".
            border = np.zeros(markers.shape, bool)
            for axis, s in enumerate(region):
                faces = [(0, s.start > 0), (-1, s.stop < strokes.shape[axis])]
                for end, inside_series in faces:
                    if inside_series:
                        cut = [slice(None)] * 3
                        cut[axis] = end  # type: ignore[call-overload]
                        border[tuple(cut)] = True
            markers[border & (markers == 0)] = _BORDER
        check_cancel(cancel)
        grown = _watershed(grad, markers)
        check_cancel(cancel)
        if coarse is None or step == (1, 1, 1):
            sub_image = self.image[region][:: step[0], :: step[1], :: step[2]]
            # A rim two voxels thick moves in two passes (one at preview resolution).
            for _ in range(2 if step == (1, 1, 1) else 1):
                grown = _snap_boundary(grown, sub_image)
        grown[grown == _BORDER] = 0
        values = grown.astype(np.uint8)
        if step != (1, 1, 1):
            shape = tuple(s.stop - s.start for s in region)
            for axis, k in enumerate(step):
                if k > 1:  # k copies of each, the last one cut to the region's edge
                    counts = np.full(values.shape[axis], k)
                    counts[-1] = shape[axis] - k * (values.shape[axis] - 1)
                    values = np.repeat(values, counts, axis=axis)
        return SeedResult(region, values, labels, step)


@dataclass(frozen=True)
class _Strokes:
    """The stroke voxels of a label map: coordinates, values, the labels present (found in
    one pass over the map; strokes are sparse, the map is not)."""

    shape: tuple[int, int, int]
    coords: tuple[np.ndarray, np.ndarray, np.ndarray]
    values: np.ndarray
    labels: tuple[int, ...]

    @classmethod
    def of(cls, seeds: np.ndarray) -> _Strokes:
        seeds = np.asarray(seeds)
        if seeds.ndim != 3:
            raise LabelError(f"strokes must be a (z, y, x) label map, got {seeds.shape}")
        flat = seeds.reshape(-1)
        if seeds.dtype == np.uint8 and flat.flags.c_contiguous and flat.size % 8 == 0:
            # Eight voxels at a time: the words holding a stroke, then their bytes.
            words = np.flatnonzero(flat.view(np.uint64))
            idx = (words[:, None] * 8 + np.arange(8)).reshape(-1)
            idx = idx[flat[idx] != 0]
        else:
            idx = np.flatnonzero(flat)
        if not len(idx):
            raise LabelError("paint strokes of at least one label before growing from seeds")
        values = flat[idx]
        coords = np.unravel_index(idx, seeds.shape)
        labels = tuple(int(v) for v in np.unique(values))
        return cls(seeds.shape, coords, values, labels)  # type: ignore[arg-type]


def _watershed(gradient: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Seeded watershed (ITK's morphological watershed from markers, face connectivity).

    Not ``scipy.ndimage.watershed_ift``: on a chest CT it hands a label air it can reach
    only across the chest wall (its queue does not keep path costs), which a test pins."""
    result = sitk.MorphologicalWatershedFromMarkers(
        sitk.GetImageFromArray(gradient),
        sitk.GetImageFromArray(markers.astype(np.uint16)),
        markWatershedLine=False,
        fullyConnected=False,
    )
    return sitk.GetArrayFromImage(result).astype(np.int16)


def _snap_boundary(grown: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Move each voxel on a boundary between two grown labels to the one whose mean
    intensity it is closer to. A watershed on the gradient puts the line on the ridge,
    which for a step edge is a tie between the voxels either side of it: left alone, one
    label systematically takes a one-voxel rim of the other."""
    hi = ndimage.maximum_filter(grown, size=3, mode="nearest")
    lo = ndimage.minimum_filter(grown, size=3, mode="nearest")
    band = hi != lo
    if not band.any():
        return grown
    inner = ~band
    ids = grown[inner].astype(np.int64)
    counts = np.bincount(ids, minlength=_BORDER + 1)
    sums = np.bincount(ids, weights=image[inner].astype(np.float64), minlength=_BORDER + 1)
    if not counts.any():
        return grown
    means = np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)
    a, b, v = hi[band], lo[band], image[band].astype(np.float64)
    ma, mb = means[a], means[b]
    # Where a label has no interior (a thin stroke's label) keep the watershed's choice.
    pick_a = np.abs(v - ma) < np.abs(v - mb)
    pick_b = np.abs(v - mb) < np.abs(v - ma)
    out = grown.copy()
    cur = out[band]
    cur[pick_a] = a[pick_a]
    cur[pick_b] = b[pick_b]
    out[band] = cur
    return out


def _sure(coarse: SeedResult, step_band: int) -> np.ndarray:
    """``coarse``'s labels where no other label lies within ``step_band`` preview voxels
    (0 in the uncertain band), at full resolution on its region."""
    values = coarse.values
    size = [2 * step_band * k + 1 for k in coarse.step]
    hi = ndimage.maximum_filter(values, size=size, mode="nearest")
    lo = ndimage.minimum_filter(values, size=size, mode="nearest")
    sure = np.where(hi == lo, values, 0).astype(np.int16)
    sure[(hi == lo) & (values == 0)] = _BORDER  # sure background (one-label growing)
    return sure
