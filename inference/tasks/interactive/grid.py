"""Where a promptable model looks: the patch (the model's fixed grid placed around the
prompts and the previous mask), the image sampled onto it, and its answer mapped back onto
the image's own voxels. Plain numpy, shared with the training recipe
(``demo_models.interactive``) so that the network is trained on what it sees in use."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.card_data import CardError

#: Input channels a card may name: the image, RadLens's combined prompt maps ("positive":
#: clicks 1, box 0.5, scribble 1), the previous mask, and nnInteractive's separate maps.
CHANNELS = (
    "image", "positive", "negative", "previous",
    "box+", "box-", "points+", "points-", "scribble+", "scribble-",
)  # fmt: skip


@dataclass(frozen=True)
class PatchSpec:
    """How a card's patch is placed: model grid (z, y, x) voxels, the smallest side in mm,
    the margin around what the prompts span, and the click radius in model voxels."""

    shape: tuple[int, int, int]
    min_extent_mm: float
    margin: float
    click_radius: float
    #: the network's input channels, in order (see ``CHANNELS``)
    channels: tuple[str, ...] = ("image", "positive", "negative", "previous")
    #: "mm": an isotropic patch in millimetres; "voxels": the image's own voxels, zoomed out
    #: by a whole factor when the prompts span more than the patch (nnInteractive's way)
    grid: str = "mm"
    #: times the patch may be doubled (and the model run again) when the answer reaches a
    #: side of the patch that is not the image's edge: the structure goes on beyond it
    zoom_out: int = 0
    #: keep only the change the newest click asked for (added voxels for a positive click,
    #: removed ones for a negative click) connected to it (FocalClick's local refinement):
    #: a click corrects the error it is on and never moves the rest of the mask
    focus: bool = False

    @classmethod
    def from_card(cls, inference: dict[str, Any], patch_xyz: Sequence[int] | None) -> PatchSpec:
        block = inference.get("interactive", {})
        if not isinstance(block, dict):
            raise CardError("inference.interactive must be an object")
        if not patch_xyz or len(patch_xyz) != 3:
            raise CardError("an interactive model needs a 3D patch_size (its model grid)")

        def number(key: str, default: float, lo: float, hi: float) -> float:
            v = block.get(key, default)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise CardError(f"inference.interactive.{key} must be a number in [{lo}, {hi}]")
            return float(v)

        channels = block.get("channels", ["image", "positive", "negative", "previous"])
        if (
            not isinstance(channels, list)
            or not 1 <= len(channels) <= 16
            or any(c not in CHANNELS for c in channels)
            or "image" not in channels
        ):
            raise CardError(
                f"inference.interactive.channels must list the image and prompt channels, each"
                f" one of {', '.join(CHANNELS)}"
            )
        grid = block.get("grid", "mm")
        if grid not in ("mm", "voxels"):
            raise CardError("inference.interactive.grid must be 'mm' or 'voxels'")
        return cls(
            shape=(int(patch_xyz[2]), int(patch_xyz[1]), int(patch_xyz[0])),
            min_extent_mm=number("min_extent_mm", 96.0, 8.0, 1000.0),
            margin=number("margin", 1.3, 1.0, 4.0),
            click_radius=number("click_radius", 1.5, 0.5, 8.0),
            channels=tuple(channels),
            grid=grid,
            zoom_out=int(number("zoom_out", 0, 0, 4)),
            focus=_flag(block, "focus"),
        )


def _flag(block: dict[str, Any], key: str) -> bool:
    v = block.get(key, False)
    if not isinstance(v, bool):
        raise CardError(f"inference.interactive.{key} must be true or false")
    return v


@dataclass(frozen=True)
class Patch:
    """Where the model grid lies in the image: voxel i of axis a is at image index
    ``lo[a] + i * step[a]`` (continuous), for i in 0..shape[a]-1."""

    lo: np.ndarray
    step: np.ndarray
    shape: tuple[int, int, int]

    def axis(self, a: int) -> np.ndarray:
        return self.lo[a] + np.arange(self.shape[a]) * self.step[a]

    def to_model(self, pts: np.ndarray) -> np.ndarray:
        return (pts - self.lo) / self.step

    def region(self, image_shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
        """The image voxels the patch covers (clipped to the image)."""
        hi = self.lo + (np.asarray(self.shape) - 1) * self.step
        out = []
        for a in range(3):
            start = max(0, math.ceil(self.lo[a] - 1e-6))
            stop = min(image_shape[a], math.floor(hi[a] + 1e-6) + 1)
            out.append(slice(start, max(start, stop)))
        return tuple(out)  # type: ignore[return-value]


def place_patch(
    spec: PatchSpec,
    image_shape: tuple[int, ...],
    spacing_zyx: Sequence[float],
    pos: np.ndarray,
    neg: np.ndarray,
    box: np.ndarray | None,
    previous: np.ndarray | None,
    zoom: float = 1.0,
    bbox: np.ndarray | None = None,
) -> Patch:
    """The patch around what the prompts span (positive points, the box, the previous mask's
    bounding box -- ``bbox`` when the caller knows it; negative points only widen it), at
    least ``min_extent_mm`` per side, ``zoom`` times that, and no larger than the image; the
    model grid is isotropic in mm where the image allows."""
    shape = np.asarray(image_shape, float)
    sp = np.asarray(spacing_zyx, float)
    parts = [pos, neg] + ([box.reshape(2, 3)] if box is not None else [])
    if bbox is None and previous is not None:
        bbox = mask_bbox(previous)
    if bbox is not None:
        parts.append(bbox)
    pts = np.concatenate([p for p in parts if len(p)])
    lo_i, hi_i = pts.min(axis=0), pts.max(axis=0)
    centre = (lo_i + hi_i) / 2.0
    extent_mm = (hi_i - lo_i + 1) * sp * spec.margin
    side = max(float(extent_mm.max()), spec.min_extent_mm) * zoom
    full_mm = shape * sp
    ext = np.minimum(side, full_mm)  # per axis, mm
    n = np.asarray(spec.shape, float)
    step = np.maximum(ext / sp / n, 1e-3)  # image voxels per model voxel
    if spec.grid == "voxels":  # the image's own voxels, zoomed out as a whole when needed
        need = (hi_i - lo_i + 1) * spec.margin
        step = np.full(3, max(1.0, float(np.ceil(np.max(need / n)))) * zoom)
    span = step * (n - 1)
    lo = centre - span / 2.0
    # Inside the image where it fits; centred on the image where it does not.
    lo = np.where(span <= shape - 1, np.clip(lo, 0.0, shape - 1 - span), (shape - 1 - span) / 2)
    return Patch(lo, step, tuple(int(v) for v in spec.shape))  # type: ignore[arg-type]


def mask_bbox(mask: np.ndarray) -> np.ndarray | None:
    """(2, 3) inclusive corners of ``mask``'s voxels, or None when empty: one pass over the
    volume (its z profile), the rest on the slab it spans."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if not len(zs):
        return None
    slab = mask[zs[0] : zs[-1] + 1]
    ys = np.flatnonzero(slab.any(axis=(0, 2)))
    xs = np.flatnonzero(slab.any(axis=(0, 1)))
    return np.array([[zs[0], ys[0], xs[0]], [zs[-1], ys[-1], xs[-1]]], float)


def sample(volume: np.ndarray, patch: Patch) -> np.ndarray:
    """``volume`` trilinearly sampled on the patch's grid (float32, the patch's shape); the
    image's edge value beyond it. Separable gathers: never a float copy of the volume."""
    idx, wts = [], []
    for a in range(3):
        c = np.clip(patch.axis(a), 0, volume.shape[a] - 1)
        i0 = np.floor(c).astype(np.intp)
        i1 = np.minimum(i0 + 1, volume.shape[a] - 1)
        idx.append((i0, i1))
        wts.append((c - i0).astype(np.float32))
    out = np.zeros(patch.shape, np.float32)
    for bz in (0, 1):
        wz = wts[0] if bz else 1 - wts[0]
        for by in (0, 1):
            wy = wts[1] if by else 1 - wts[1]
            for bx in (0, 1):
                wx = wts[2] if bx else 1 - wts[2]
                g = volume[np.ix_(idx[0][bz], idx[1][by], idx[2][bx])].astype(np.float32)
                out += g * wz[:, None, None] * wy[None, :, None] * wx[None, None, :]
    return out


def _taps(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w) of linear interpolation at continuous ``coords`` on 0..n-1."""
    c = np.clip(coords, 0, n - 1)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (c - i0).astype(np.float32)


def paste(
    logits: np.ndarray,
    patch: Patch,
    image_shape: tuple[int, ...],
    within: np.ndarray | None = None,
) -> tuple[Any, np.ndarray]:
    """(region, bool mask there): the patch's logits (float (D, H, W)) interpolated back onto
    the image voxels the patch covers (trilinear, as ``sample`` went), > 0. ``within`` (bool,
    the model grid): only the image voxels around those cells (the region shrinks to them).

    x and y are interpolated on the model's z planes the region needs (small); along z only
    the pixels whose sign differs between two neighbouring planes are interpolated --
    elsewhere a convex combination keeps the sign both share -- so the full-resolution work
    is about one copy of the region, whatever its size (a whole lung)."""
    region: tuple[slice, ...] = patch.region(image_shape)
    if within is not None:
        cells = np.argwhere(within)
        if not len(cells):
            return tuple(slice(r.start, r.start) for r in region), np.zeros((0, 0, 0), bool)
        lo_m, hi_m = cells.min(0) - 1, cells.max(0) + 1
        region = tuple(
            slice(
                max(r.start, math.ceil(patch.lo[a] + lo_m[a] * patch.step[a] - 1e-6)),
                max(
                    r.start,
                    min(r.stop, math.floor(patch.lo[a] + hi_m[a] * patch.step[a] + 1e-6) + 1),
                ),
            )
            for a, r in enumerate(region)
        )
    out = np.zeros(tuple(s.stop - s.start for s in region), bool)
    if not out.size:
        return region, out
    taps = [
        _taps((np.arange(s.start, s.stop) - patch.lo[a]) / patch.step[a], patch.shape[a])
        for a, s in enumerate(region)
    ]
    z0, z1, wz = taps[0]
    first, last = int(z0.min()), int(z1.max())
    p = np.asarray(logits, np.float32)[first : last + 1]
    x0, x1, wx = taps[2]
    p = p[:, :, x0] * (1 - wx) + p[:, :, x1] * wx
    y0, y1, wy = taps[1]
    p = p[:, y0] * (1 - wy)[:, None] + p[:, y1] * wy[:, None]  # (planes, ny, nx)
    positive = p > 0
    flat = p.reshape(len(p), -1)
    rows = out.reshape(len(out), -1)
    # The fine slices between planes k and k + 1 (one block per k): the shared sign, then the
    # pixels where the two planes disagree, interpolated for the whole block at once.
    for k in np.unique(z0):
        block = np.flatnonzero(z0 == k)
        kk = int(k) - first
        out[block] = positive[kk]
        if z1[block[0]] == k:
            continue
        idx = np.flatnonzero(positive[kk] != positive[kk + 1])
        if len(idx):
            w = wz[block][:, None]
            vals = flat[kk, idx][None] * (1 - w) + flat[kk + 1, idx][None] * w
            rows[block[:, None], idx[None]] = vals > 0
    return region, out


def touches_side(logits: np.ndarray, patch: Patch, image_shape: tuple[int, ...]) -> bool:
    """Whether the answer (logits on the model grid, > 0) reaches a side of the patch that
    is not the image's edge: the structure may go on beyond the patch."""
    positive = np.asarray(logits) > 0
    for a in range(3):
        far = patch.lo[a] + (patch.shape[a] - 1) * patch.step[a]
        for end, inside in ((0, patch.lo[a] > 0.5), (-1, far < image_shape[a] - 1.5)):
            if inside and np.take(positive, end, axis=a).any():
                return True
    return False


def focus_cells(
    logits: np.ndarray,
    before: np.ndarray,
    patch: Patch,
    focus: np.ndarray,
    positive: bool,
    radius: float = 2.0,
) -> np.ndarray:
    """+1 on the model cells the answer may change, -1 elsewhere (a field for ``paste``): what
    the newest click asked for -- voxels added for a positive click, removed for a negative
    one (answer vs ``before``, the previous mask on the model grid) -- where that change is
    connected to within ``radius`` model voxels of ``focus`` (image indices: a click, or the
    voxels of a stroke), one cell wider
    so that the interpolated border between the change and the rest is its own."""
    from scipy import ndimage

    answer = np.asarray(logits) > 0
    changed = answer & ~before if positive else before & ~answer
    labels, n = ndimage.label(changed)
    field = np.full(patch.shape, -1.0, np.float32)
    if n == 0:
        return field
    near = np.zeros(patch.shape, bool)
    r = int(math.ceil(radius))
    for m in patch.to_model(np.asarray(focus, float).reshape(-1, 3)):
        lo = [max(0, int(round(m[a])) - r) for a in range(3)]
        hi = [min(patch.shape[a], int(round(m[a])) + r + 1) for a in range(3)]
        near[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    keep = np.isin(labels, np.unique(labels[near & (labels > 0)]))
    field[ndimage.binary_dilation(keep)] = 1.0
    return field


def box_cells(box: np.ndarray, patch: Patch) -> np.ndarray:
    """The model cells of ``box`` (image indices, inclusive corners), one cell wider."""
    lo = np.floor(patch.to_model(box[:3])).astype(int) - 1
    hi = np.ceil(patch.to_model(box[3:])).astype(int) + 1
    cells = np.zeros(patch.shape, bool)
    sl = tuple(slice(max(0, lo[a]), max(0, min(patch.shape[a], hi[a] + 1))) for a in range(3))
    cells[sl] = True
    return cells
