"""Click-to-segment (Qt-free): a click grows a region from the clicked voxel's intensity
statistics -- connected-threshold region growing (scipy.ndimage) on the slice shown or in 3D,
within a tolerance in multiples of the neighbourhood's spread -- cut where it leaks
through a neck into a neighbour of the same intensity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radlens_core.progress import CancelCheck, Cancelled
from viewer.labels.edit_ops import Region, component_at
from viewer.labels.model import LabelError


def check_cancel(cancel: CancelCheck | None) -> None:
    """Raise Cancelled once ``cancel()`` says so (between the steps of a long operation)."""
    if cancel is not None and cancel():
        raise Cancelled()


@dataclass(frozen=True)
class GrownRegion:
    """A grown mask: ``mask`` covers ``region`` of the series (z, y, x)."""

    region: Region
    mask: np.ndarray
    lower: float
    upper: float

    def full(self, shape: Sequence[int]) -> np.ndarray:
        out = np.zeros(tuple(shape), bool)
        out[self.region] = self.mask
        return out


class RegionGrower:
    """Click-to-segment on one image (kept per image: its spread floor is sampled once)."""

    #: neighbourhood half-size (mm, at least one voxel) whose statistics set the band
    STATS_MM = 3.0

    #: half-size (mm) of the first box the region is grown on (doubled where it is reached)
    START_MM = 20.0

    #: structures thicker than this (mm, at the click) are taken whole: nothing to guard
    THICK_MM = 15.0
    #: connections thinner than this fraction of the clicked structure's thickness are cut
    NECK_FRACTION = 0.6

    def __init__(self, image: np.ndarray, spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        image = np.asarray(image)
        if image.ndim != 3:
            raise LabelError(f"click-to-segment needs a (z, y, x) image, got {image.shape}")
        self.image = image
        self.spacing = np.asarray(spacing_zyx, dtype=float)
        # A floor for the spread: a perfectly flat neighbourhood must still grow across
        # quantisation steps (1% of the image's robust range).
        sample = image[:: max(image.shape[0] // 16, 1), ::8, ::8]
        lo, hi = np.percentile(sample, (1, 99)) if sample.size else (0.0, 1.0)
        self.min_spread = max(float(hi - lo) * 0.01, 1e-6)

    def band(self, zyx: Sequence[int], tolerance: float, axis: int | None) -> tuple[float, float]:
        """[lower, upper] intensities: the neighbourhood's median -+ ``tolerance`` x the
        standard deviation of its inliers (within 3 robust deviations of the median), so a
        click near an edge is not widened by the other side's voxels; always including the
        clicked value."""
        if not 0 < float(tolerance) <= 20:
            raise LabelError(f"the tolerance must be within 0..20, got {tolerance}")
        cut = []
        for a, (i, n) in enumerate(zip(zyx, self.image.shape, strict=True)):
            r = max(int(self.STATS_MM / self.spacing[a]), 1)
            flat = axis is not None and a == axis
            cut.append(slice(i, i + 1) if flat else slice(max(i - r, 0), min(i + r + 1, n)))
        patch = self.image[tuple(cut)].astype(np.float64).ravel()
        centre = float(np.median(patch))
        mad = 1.4826 * float(np.median(np.abs(patch - centre)))
        inliers = patch[np.abs(patch - centre) <= 3 * mad + 1e-9]
        spread = max(float(inliers.std()), self.min_spread)
        value = float(self.image[tuple(zyx)])  # an outlier click still grows from itself
        return min(centre - tolerance * spread, value), max(centre + tolerance * spread, value)

    def grow(
        self,
        zyx: Sequence[float] | np.ndarray,
        tolerance: float = 2.5,
        axis: int | None = None,
        cancel: CancelCheck | None = None,
    ) -> GrownRegion:
        """The connected region around ``zyx`` within the band; on the slice through it
        perpendicular to array ``axis`` (2D), or in 3D when ``axis`` is None."""
        idx = tuple(int(round(float(v))) for v in zyx)
        if len(idx) != 3 or not all(0 <= i < n for i, n in zip(idx, self.image.shape, strict=True)):
            raise LabelError(f"the point {idx} is outside the series {self.image.shape}")
        if axis not in (None, 0, 1, 2):
            raise LabelError(f"the slice axis must be 0, 1 or 2, got {axis}")
        lower, upper = self.band(idx, tolerance, axis)
        check_cancel(cancel)
        # The band's 6-connected component holding the click, labelled on a box grown
        # around it (tests/benchmarks: beside SimpleITK's ConnectedThreshold, same run).
        view, offset = self.image, [0, 0, 0]
        if axis is not None:  # the slice shown: a one-voxel slab across ``axis``
            cut = [slice(None)] * 3
            cut[axis] = slice(idx[axis], idx[axis] + 1)
            view, offset[axis] = self.image[tuple(cut)], idx[axis]
        seed = tuple(i - o for i, o in zip(idx, offset, strict=True))

        def inside(box: Region) -> np.ndarray:
            sub = view[box]
            return (sub >= lower) & (sub <= upper)

        start = [max(int(np.ceil(self.START_MM / s)), 8) for s in self.spacing]
        local, sub = component_at(inside, seed, view.shape, start, cancel)
        region = tuple(slice(s.start + o, s.stop + o) for s, o in zip(local, offset, strict=True))
        region, sub = self._guard_leaks(idx, region, sub, axis)  # type: ignore[arg-type]
        return GrownRegion(region, np.ascontiguousarray(sub), lower, upper)

    def _guard_leaks(
        self, idx: tuple[int, ...], region: Region, sub: np.ndarray, axis: int | None
    ) -> tuple[Region, np.ndarray]:
        """Cut the region where it leaks through a neck (a nodule into the vessels that
        touch it, both soft tissue): for a structure thinner than ``THICK_MM`` at the click,
        keep what an opening by ``NECK_FRACTION`` of its local radius leaves connected to
        the click (restored to its own border), within a few radii of the click -- the
        automatic form of Slicer's "minimum diameter" of its local threshold. A structure
        that goes on beyond those radii is left whole."""
        sp = self.spacing.copy()
        if axis is not None:
            sp[axis] = 1e6  # nothing reaches across the slice
        local = [int(np.ceil(2 * self.THICK_MM / s)) for s in sp]
        offset = [s.start for s in region]
        c = [i - o for i, o in zip(idx, offset, strict=True)]
        win = tuple(
            slice(max(ci - w, 0), min(ci + w + 1, n))
            for ci, w, n in zip(c, local, sub.shape, strict=True)
        )
        near = sub[win]
        cw = tuple(ci - s.start for ci, s in zip(c, win, strict=True))
        radius = _distance_to_background(near, cw, sp)
        if radius >= self.THICK_MM or not near[cw]:
            return region, sub
        neck = self.NECK_FRACTION * radius
        reach = [int(np.ceil((4 * radius + neck) / s)) for s in sp]
        win = tuple(
            slice(max(ci - w, 0), min(ci + w + 1, n))
            for ci, w, n in zip(c, reach, sub.shape, strict=True)
        )
        near = np.ascontiguousarray(sub[win])
        cw = tuple(ci - s.start for ci, s in zip(c, win, strict=True))
        core = ndimage.distance_transform_edt(near, sampling=sp) > neck
        labels, _ = ndimage.label(core)
        if not labels[cw]:
            return region, sub  # the click sits on a neck itself: nothing to cut away
        keep = labels == labels[cw]
        if _touches_edge(keep, win, sub.shape):
            # What the click is on goes on beyond the window (the edge of a large organ, a
            # long tube): a window would only box it in, so it is taken whole.
            return region, sub
        kept = (ndimage.distance_transform_edt(~keep, sampling=sp) <= neck + 1e-6) & near
        full = tuple(slice(o + s.start, o + s.stop) for o, s in zip(offset, win, strict=True))
        return full, kept  # type: ignore[return-value]


def _touches_edge(mask: np.ndarray, win: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``mask`` (on window ``win`` of an array of ``shape``) reaches a window face
    that is not the array's own edge."""
    for axis, s in enumerate(win):
        if mask.shape[axis] == 1:
            continue  # the slice of a 2D growing
        if s.start > 0 and np.take(mask, 0, axis=axis).any():
            return True
        if s.stop < shape[axis] and np.take(mask, -1, axis=axis).any():
            return True
    return False


def _distance_to_background(mask: np.ndarray, at: tuple[int, ...], sp: np.ndarray) -> float:
    """The distance (mm) from voxel ``at`` to the nearest False voxel of ``mask`` (infinite
    when there is none): the distance map's value there, without the whole map."""
    if not mask[at]:
        return 0.0
    outside = np.argwhere(~mask)
    if not len(outside):
        return float("inf")
    d2 = (((outside - np.asarray(at)) * sp) ** 2).sum(axis=1)
    return float(np.sqrt(d2.min()))
