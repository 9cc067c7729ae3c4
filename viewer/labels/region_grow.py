"""Click-to-segment (Qt-free; one class and its helpers, over 400 lines because grow and refine share the band, box and guard code): a click grows a region from the clicked voxel's intensity
statistics -- connected-threshold region growing (scipy.ndimage, on a box grown around the
click) on the slice shown or in 3D, within a tolerance in multiples of the neighbourhood's
spread -- cut where it leaks through a neck into a neighbour of the same intensity, and
following a vessel without the thick bodies it runs into.

``RegionGrower.refine`` makes later clicks refine a label instead of replacing it: a
positive click at its border adds the border it missed, one elsewhere a new part; a
negative click carves the part it is on (cut at necks, sparing the label's earlier
positive clicks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radlens_core.progress import CancelCheck, Cancelled
from viewer.labels.edit_ops import Region, component_at, fill_holes, margin
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
    #: a click where the band is thinner than this (mm across) is on a tube: it follows
    #: the tube, not the bodies thicker than TUBE_RATIO x it that the tube runs into
    TUBE_MM = 9.0
    TUBE_RATIO = 1.5
    #: a positive click inside a label's outline keeps its new part within this reach (mm)
    ENCLOSED_MM = 40.0
    #: notches of a label's outline up to this wide (mm) count as inside it (a vessel's
    #: entry into a lung)
    NOTCH_MM = 10.0
    #: how many of a label's latest positive clicks a negative click spares
    REMEMBERED = 20
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
        #: each label's latest positive clicks (``refine``): a negative click spares them
        self._positive: dict[int, list[tuple[int, ...]]] = {}

    def band(self, zyx: Sequence[int], tolerance: float, axis: int | None) -> tuple[float, float]:
        """[lower, upper] intensities: the neighbourhood's median -+ ``tolerance`` x the
        standard deviation of its inliers (within 3 robust deviations of the median), so a
        click near an edge is not widened by the other side's voxels; a click outside that
        band (a thin vessel) takes the statistics of the neighbourhood's voxels nearer its
        own value; always including the clicked value."""
        if not 0 < float(tolerance) <= 20:
            raise LabelError(f"the tolerance must be within 0..20, got {tolerance}")
        patch = self.image[self._neighbourhood(zyx, axis)].astype(np.float64).ravel()
        centre = float(np.median(patch))
        spread = max(_inlier_std(patch), self.min_spread)
        value = float(self.image[tuple(zyx)])
        if abs(value - centre) > tolerance * spread:
            # The click is not of its neighbourhood's main tissue (the centre of a vessel
            # thinner than the neighbourhood): its statistics are those of the voxels
            # nearer its own value -- a smaller neighbourhood, along its intensity.
            own = patch[np.abs(patch - value) < np.abs(patch - centre)]
            if len(own) >= 3:
                centre = float(np.median(own))
                spread = max(_inlier_std(own), self.min_spread)
        # an outlier click still grows from itself
        return min(centre - tolerance * spread, value), max(centre + tolerance * spread, value)

    def grow(
        self,
        zyx: Sequence[float] | np.ndarray,
        tolerance: float = 2.5,
        axis: int | None = None,
        cancel: CancelCheck | None = None,
        bounds: Region | None = None,
    ) -> GrownRegion:
        """The connected region around ``zyx`` within the band; on the slice through it
        perpendicular to array ``axis`` (2D), or in 3D when ``axis`` is None; within the
        box ``bounds`` of the series when given."""
        idx = self._point(zyx, axis)
        lower, upper = self.band(idx, tolerance, axis)
        check_cancel(cancel)
        slab = _Slab(self.image, idx, axis, bounds)

        def inside(box: Region) -> np.ndarray:
            sub = slab.view[box]
            return _within(sub, lower, upper)

        sp = self._spacing(axis)
        radius = self._thickness(slab, inside, sp)
        if radius < self.TUBE_MM / 2:
            # A tube (a vessel): grown along it, not into the thick bodies of the same
            # intensity it runs into (the mediastinum at a hilum): voxels within
            # TUBE_RATIO x its radius of a part that thick are left out.
            wide = self.TUBE_RATIO * radius
            rim = wide + float(sp[sp < 1e5].min())

            def along(box: Region) -> np.ndarray:
                band = inside(box)
                thick = ndimage.distance_transform_edt(band, sampling=sp) > wide
                if not thick.any():
                    return band
                return band & (ndimage.distance_transform_edt(~thick, sampling=sp) > rim)

            try:
                region, sub = self._component(slab, along, cancel)
                return GrownRegion(region, sub, lower, upper)
            except LabelError:
                pass  # the click is on such a body's rim: grown as anything else
        region, sub = self._component(slab, inside, cancel)
        region, sub = self._guard_leaks(idx, region, sub, axis)
        return GrownRegion(region, np.ascontiguousarray(sub), lower, upper)

    def refine(
        self,
        zyx: Sequence[float] | np.ndarray,
        labels: np.ndarray,
        label: int,
        positive: bool = True,
        tolerance: float = 2.5,
        axis: int | None = None,
        cancel: CancelCheck | None = None,
    ) -> GrownRegion:
        """A click on a label that already has voxels: what to add to it (``positive``) or
        remove from it, so that later clicks refine the segmentation instead of replacing
        it. ``labels`` is the label map (series shape); only boxes of it are read.

        - A positive click away from the label grows as ``grow`` does (a new part).
        - A positive click at the label's border (the label within the click's
          neighbourhood) takes the label's own statistics there: the band runs from the
          label's side to half-way towards the other side's median (or to the clicked
          value, when that lies between the two), and only voxels within twice the
          click's distance from the label (a box of that size) are added -- the border the label missed, all
          around it, not a leak. A clicked value beyond both medians, or of the other
          side's tissue, is another tissue the user counts in: grown as a new part.
        - A negative click on the label's border at a voxel leaning to the other side
          removes the border voxels at least that far over (``_trim_border``).
        - Any other negative click removes the part of the label within the clicked voxel's band
          connected to it, cut where that part narrows into the rest (a leak into a
          neighbour of the same intensity goes, what it leaked from stays), and never
          what is geodesically closer to one of the label's earlier positive clicks."""
        idx = self._point(zyx, axis)
        if labels.shape != self.image.shape:
            raise LabelError(f"a label map of {labels.shape} does not fit {self.image.shape}")
        slab = _Slab(self.image, idx, axis)
        cur = _Slab(labels, idx, axis).view

        def current(box: Region) -> np.ndarray:
            return cur[box] == label

        if not positive:
            if not bool(labels[idx] == label):
                return GrownRegion(_point_region(idx), np.zeros((1, 1, 1), bool), 0.0, 0.0)
            trimmed = self._trim_border(idx, labels, label, slab, axis, tolerance, cancel)
            if trimmed is not None:
                return trimmed
            lower, upper = self.band(idx, tolerance, axis)

            def part(box: Region) -> np.ndarray:
                sub = slab.view[box]
                return current(box) & _within(sub, lower, upper)

            region, sub = self._component(slab, part, cancel)
            sp = self._spacing(axis)
            c = tuple(i - r.start for i, r in zip(idx, region, strict=True))
            sub = _coarse(lambda c, m, sp, _: self._carve(c, m, sp), sub, c, sp, [])
            kept = [
                tuple(i - r.start for i, r in zip(p, region, strict=True))
                for p in self._positive.get(label, ())
                if labels[p] == label
                and all(r.start <= i < r.stop for i, r in zip(p, region, strict=True))
            ]
            if kept:
                check_cancel(cancel)
                sub = _coarse(self._spare, sub, c, sp, kept)
            return GrownRegion(region, np.ascontiguousarray(sub), lower, upper)
        self._positive.setdefault(label, []).append(idx)
        del self._positive[label][: -self.REMEMBERED]
        nb = self._neighbourhood(idx, axis)
        near = labels[nb] == label
        if near.all():
            return self.grow(idx, tolerance, axis, cancel)
        if not near.any():
            return self._new_part(idx, labels, label, tolerance, axis, cancel)
        values = self.image[nb].astype(np.float64)
        inner, outer = values[near], values[~near]
        m_in, m_out = float(np.median(inner)), float(np.median(outer))
        spread = max(_inlier_std(inner), self.min_spread)
        value = float(self.image[idx])
        if m_in >= m_out:
            lower, upper = (m_in + m_out) / 2, m_in + tolerance * spread
        else:
            lower, upper = m_in - tolerance * spread, (m_in + m_out) / 2
        out_spread = max(_inlier_std(outer), self.min_spread)
        between = min(m_out, lower) <= value <= max(m_out, upper)
        if not between or abs(value - m_out) <= tolerance * out_spread:
            # Not the label's missed border but another tissue the user counts in (a
            # vessel inside a lung): a new part, grown from its own neighbourhood.
            return self._new_part(idx, labels, label, tolerance, axis, cancel)
        lower, upper = min(lower, value), max(upper, value)  # a partial-volume click
        sp = self.spacing.copy()
        if axis is not None:
            sp[axis] = 1e6  # nothing reaches across the slice
        at = tuple(i - s.start for i, s in zip(idx, nb, strict=True))
        reach = 2 * _distance_to_background(~near, at, sp) + float(sp[sp < 1e5].max())
        size = tuple(2 * int(reach // v) + 1 if v < 1e5 else 1 for v in sp)
        check_cancel(cancel)

        def border(box: Region) -> np.ndarray:
            sub = slab.view[box]
            # a box of ``reach`` mm each way: separable, fast on a lung-sized label
            close = ndimage.maximum_filter(current(box).view(np.uint8), size=size) > 0
            return close & _within(sub, lower, upper)

        region, sub = self._component(slab, border, cancel)
        return GrownRegion(region, np.ascontiguousarray(sub), lower, upper)

    def _new_part(
        self,
        idx: tuple[int, ...],
        labels: np.ndarray,
        label: int,
        tolerance: float,
        axis: int | None,
        cancel: CancelCheck | None,
    ) -> GrownRegion:
        """A new part of the label grown from a positive click. A click inside the label's
        outline (its holes and notches up to ``NOTCH_MM`` across filled, slice by slice
        across ``axis``, axially in 3D: a vessel or nodule in a lung, a vessel where it
        enters from the chest wall) is grown within ``ENCLOSED_MM`` of it and keeps what
        lies inside that outline, connected to the click: the vessel, not the chest wall or
        mediastinum it runs on into (one such click took 95,000 voxels of body into a
        70,000-voxel lung on a phantom). A click outside the outline, or in a hole wider
        than that reach, grows as ``grow`` does."""
        along = 0 if axis is None else axis
        sp = self.spacing
        box = []
        for a, (i, n) in enumerate(zip(idx, labels.shape, strict=True)):
            half = 0 if a == axis else int(np.ceil(self.ENCLOSED_MM / sp[a]))
            box.append(slice(max(i - half, 0), min(i + half + 1, n)))
        lab = labels[tuple(box)] == label
        outline = _outline(lab, sp, along, self.NOTCH_MM)
        at_click = tuple(i - b.start for i, b in zip(idx, box, strict=True))
        if not outline[at_click]:
            return self.grow(idx, tolerance, axis, cancel)
        check_cancel(cancel)
        grown = self.grow(idx, tolerance, axis, cancel, bounds=tuple(box))
        part = np.zeros(lab.shape, bool)
        part[
            tuple(
                slice(r.start - b.start, r.stop - b.start)
                for r, b in zip(grown.region, box, strict=True)
            )
        ] = grown.mask
        part &= outline
        pieces, _ = ndimage.label(part)
        part = pieces == pieces[at_click]
        return GrownRegion(tuple(box), np.ascontiguousarray(part), grown.lower, grown.upper)

    def _trim_border(
        self,
        idx: tuple[int, ...],
        labels: np.ndarray,
        label: int,
        slab: _Slab,
        axis: int | None,
        tolerance: float,
        cancel: CancelCheck | None,
    ) -> GrownRegion | None:
        """A negative click on the label's border whose value leans to the other side's
        (a partial-volume voxel taken in): the label's border voxels at least that far
        towards the other side, within twice the click's distance from the outside --
        the mirror of a positive border click. None when the click is not such a one."""
        nb = self._neighbourhood(idx, axis)
        near = labels[nb] == label
        if near.all():
            return None
        values = self.image[nb].astype(np.float64)
        m_in, m_out = float(np.median(values[near])), float(np.median(values[~near]))
        value = float(self.image[idx])
        if (value - m_in) * (m_out - m_in) <= 0:
            return None  # the label's own tissue, or beyond it: a part to carve
        # as far out as the click, less its noise (never half-way back to the label)
        slack = min(tolerance * self.min_spread, abs(value - m_in) / 2)
        lower, upper = (-np.inf, value + slack) if m_out < m_in else (value - slack, np.inf)
        sp = self._spacing(axis)
        at = tuple(i - s.start for i, s in zip(idx, nb, strict=True))
        reach = 2 * _distance_to_background(near, at, sp) + float(sp[sp < 1e5].max())
        size = tuple(2 * int(reach // v) + 1 if v < 1e5 else 1 for v in sp)
        cur = _Slab(labels, idx, axis).view

        def border(box: Region) -> np.ndarray:
            inside = cur[box] == label
            outside = ndimage.maximum_filter((~inside).view(np.uint8), size=size) > 0
            return inside & outside & _within(slab.view[box], lower, upper)

        region, sub = self._component(slab, border, cancel)
        return GrownRegion(region, sub, float(lower), float(upper))

    def _point(self, zyx: Sequence[float] | np.ndarray, axis: int | None) -> tuple[int, ...]:
        idx = tuple(int(round(float(v))) for v in zyx)
        if len(idx) != 3 or not all(0 <= i < n for i, n in zip(idx, self.image.shape, strict=True)):
            raise LabelError(f"the point {idx} is outside the series {self.image.shape}")
        if axis not in (None, 0, 1, 2):
            raise LabelError(f"the slice axis must be 0, 1 or 2, got {axis}")
        return idx

    def _neighbourhood(self, idx: Sequence[int], axis: int | None) -> Region:
        """The statistics neighbourhood of ``idx`` (``STATS_MM``; flat across ``axis``)."""
        cut = []
        for a, (i, n) in enumerate(zip(idx, self.image.shape, strict=True)):
            r = max(int(self.STATS_MM / self.spacing[a]), 1)
            flat = axis is not None and a == axis
            cut.append(slice(i, i + 1) if flat else slice(max(i - r, 0), min(i + r + 1, n)))
        return tuple(cut)  # type: ignore[return-value]

    def _component(
        self, slab: _Slab, inside: Callable[[Region], np.ndarray], cancel: CancelCheck | None
    ) -> tuple[Region, np.ndarray]:
        """The 6-connected component of ``inside`` holding the click, labelled on a box
        grown around it (tests/benchmarks: beside SimpleITK's ConnectedThreshold, same
        run), as a region of the series."""
        start = [max(int(np.ceil(self.START_MM / s)), 8) for s in self.spacing]
        local, sub = component_at(inside, slab.seed, slab.view.shape, start, cancel)
        region = tuple(
            slice(s.start + o, s.stop + o) for s, o in zip(local, slab.offset, strict=True)
        )
        return region, sub  # type: ignore[return-value]

    def _spacing(self, axis: int | None) -> np.ndarray:
        sp = self.spacing.copy()
        if axis is not None:
            sp[axis] = 1e6  # nothing reaches across the slice
        return sp

    def _thickness(
        self, slab: _Slab, inside: Callable[[Region], np.ndarray], sp: np.ndarray
    ) -> float:
        """The band's radius (mm) at the click: its distance to the nearest voxel out of
        the band, looked for within ``TUBE_MM`` (beyond that: ``inf``)."""
        box = tuple(
            slice(max(c - r, 0), min(c + r + 1, n))
            for c, r, n in zip(
                slab.seed,
                [int(np.ceil(self.TUBE_MM / s)) for s in sp],
                slab.view.shape,
                strict=True,
            )
        )
        at = tuple(c - b.start for c, b in zip(slab.seed, box, strict=True))
        return _distance_to_background(inside(box), at, sp)  # type: ignore[arg-type]

    def _spare(
        self, c: tuple[int, ...], sub: np.ndarray, sp: np.ndarray, inner: list[tuple[int, ...]]
    ) -> np.ndarray:
        """``sub`` less what is geodesically closer (within ``sub``) to one of the label's
        earlier positive clicks ``inner`` than to the negative click ``c``: the user said
        those are in (SimpleITK's fast marching from each side)."""
        inner = [p for p in inner if sub[p]]
        if not inner or not sub[c]:
            return sub
        speed = sitk.GetImageFromArray(np.where(sub, 1.0, 1e-6).astype(np.float32))
        speed.SetSpacing([float(min(v, 1e3)) for v in sp[::-1]])

        def arrival(points: list[tuple[int, ...]]) -> np.ndarray:
            fm = sitk.FastMarchingImageFilter()
            fm.SetTrialPoints([[int(v) for v in p[::-1]] for p in points])
            return sitk.GetArrayFromImage(fm.Execute(speed))

        return sub & (arrival([c]) < arrival(inner))

    def _carve(self, c: tuple[int, ...], sub: np.ndarray, sp: np.ndarray) -> np.ndarray:
        """What a negative click at ``c`` removes of ``sub`` (the part it is on, voxels of
        spacing ``sp``): cut where it narrows below ``NECK_FRACTION`` of its thickness at
        the click -- an opening of the whole part, the clicked core restored to its border
        (a leak into the aorta goes, the vessels it leaked from stay)."""
        # padded: the part's box edge is its border too
        dist = ndimage.distance_transform_edt(np.pad(sub, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
        neck = self.NECK_FRACTION * float(dist[c])
        labels, _ = ndimage.label(dist > neck)
        keep = labels == labels[c]
        del labels, dist
        if keep.sum() == sub.sum():
            return sub
        away = ndimage.distance_transform_edt(~keep, sampling=sp)
        body = (away <= neck + 1e-6) & sub
        # What the opening took off the body's own corners and surface goes with it; a
        # part reaching farther than the neck from it (a vessel) is another structure.
        rest, n = ndimage.label(sub & ~body)
        if n:
            reach = ndimage.maximum(away, rest, np.arange(1, n + 1))
            near = np.flatnonzero(np.asarray(reach) <= neck + float(sp[sp < 1e5].max())) + 1
            body |= np.isin(rest, near)
        return body

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


def _inlier_std(values: np.ndarray) -> float:
    """The standard deviation of ``values`` within 3 robust deviations of their median."""
    centre = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - centre)))
    return float(values[np.abs(values - centre) <= 3 * mad + 1e-9].std())


def _point_region(idx: Sequence[int]) -> Region:
    return tuple(slice(i, i + 1) for i in idx)  # type: ignore[return-value]


class _Slab:
    """The series (or a label map) as grown on: whole in 3D, or the one-voxel slab of the
    slice shown across ``axis`` (2D); ``seed`` is the click in it, ``offset`` its origin."""

    def __init__(
        self, array: np.ndarray, idx: Sequence[int], axis: int | None, bounds: Region | None = None
    ) -> None:
        cut = [slice(None)] * 3 if bounds is None else list(bounds)
        if axis is not None:
            cut[axis] = slice(idx[axis], idx[axis] + 1)
        self.view = array[tuple(cut)]
        self.offset = [c.start or 0 for c in cut]
        self.seed = tuple(int(i) - o for i, o in zip(idx, self.offset, strict=True))


#: a negative click's cut is worked out on a strided copy of a part bigger than this
WORK_VOXELS = 500_000


def _coarse(
    fn: Callable[[tuple[int, ...], np.ndarray, np.ndarray, list], np.ndarray],
    sub: np.ndarray,
    c: tuple[int, ...],
    sp: np.ndarray,
    points: list[tuple[int, ...]],
) -> np.ndarray:
    """``fn(c, sub, sp, points) -> mask`` on ``sub``, worked out on a strided copy of at
    most about ``WORK_VOXELS`` voxels when ``sub`` is bigger (a negative click in a lung:
    its necks are as coarse as it is thick), brought back to full resolution within
    ``sub``; at full resolution when the click misses the strided copy."""
    if sub.size <= WORK_VOXELS:
        return fn(c, sub, sp, points)
    k = int(np.ceil((sub.size / WORK_VOXELS) ** (1 / 3)))
    step = tuple(k if n > 1 else 1 for n in sub.shape)
    small = np.ascontiguousarray(sub[tuple(slice(None, None, s) for s in step)])
    sc = tuple(i // s for i, s in zip(c, step, strict=True))
    if not small[sc]:
        return fn(c, sub, sp, points)
    spts = [tuple(i // s for i, s in zip(p, step, strict=True)) for p in points]
    out = fn(sc, small, sp * np.asarray(step), spts)
    for axis, s in enumerate(step):
        out = np.repeat(out, s, axis=axis)
    return out[tuple(slice(0, n) for n in sub.shape)] & sub


def _within(values: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """``lower <= values <= upper``, compared in the values' own integer type when they
    are integers (no float64 temporaries of a lung-sized box)."""
    if values.dtype.kind in "iu":
        info = np.iinfo(values.dtype)
        lo = int(np.clip(np.ceil(lower), info.min, info.max))
        hi = int(np.clip(np.floor(upper), info.min, info.max))
        return (values >= values.dtype.type(lo)) & (values <= values.dtype.type(hi))
    return (values >= lower) & (values <= upper)


def _outline(lab: np.ndarray, spacing: np.ndarray, along: int, notch_mm: float) -> np.ndarray:
    """A mask's outline slice by slice across ``along``: closed with a disc ``notch_mm``
    across (the Segment Editor's margin out, then in), its holes filled. The mask is padded
    first, so the closing does not stick to the edges of a box cut from the series."""
    sp = np.asarray(spacing, dtype=float).copy()
    sp[along] = 1e6  # nothing reaches across the slice
    pad = [0 if a == along else int(np.ceil(notch_mm / 2 / v)) + 1 for a, v in enumerate(sp)]
    padded = np.pad(lab, [(p, p) for p in pad])
    closed = margin(margin(padded, notch_mm / 2, sp), -notch_mm / 2, sp)
    inner = tuple(slice(p, p + n) for p, n in zip(pad, lab.shape, strict=True))
    return fill_holes(closed[inner] | lab, axis=along)
