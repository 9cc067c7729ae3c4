"""The interactive (promptable) task: clicks, a box or a scribble and the previous mask in, one
3D mask out. A patch around the prompts is sampled onto the model's fixed grid, the network
sees (image, positive map, negative map, previous mask), and its answer replaces the previous
mask inside the patch only (outside it the previous mask stays as it was).

The geometry and the prompt encoding are plain numpy, shared with the training recipe
(``demo_models.interactive``) so that the network is trained on exactly what it sees here."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.card_data import CardError
from inference.nnunet import NnunetModel
from inference.runtime import RunContext, Step, TaskOutput, forward
from radlens_core.errors import UserError
from radlens_core.results import LabelMap

#: Most prompt points one run takes (a scribble is thinned to this many voxels).
MAX_POINTS = 4096
#: What a box paints in the positive channel (a click paints 1.0).
BOX_VALUE = 0.5
#: Input channels a card may name: the image, RadLens's combined prompt maps ("positive":
#: clicks 1, box 0.5, scribble 1), the previous mask, and nnInteractive's separate maps.
CHANNELS = (
    "image", "positive", "negative", "previous",
    "box+", "box-", "points+", "points-", "scribble+", "scribble-",
)  # fmt: skip


class PromptError(UserError, ValueError):
    """Prompts that cannot be used, in a sentence (no prompt, a point outside the image...)."""


@dataclass(frozen=True)
class Prompts:
    """What the user said, in the image's (z, y, x) voxel indices.

    ``box``: (z0, y0, x0, z1, y1, x1) inclusive corners; ``scribble``: an int8 array of the
    image's shape, 1 where the user drew the structure, -1 where they drew background."""

    positive: tuple[tuple[float, float, float], ...] = ()
    negative: tuple[tuple[float, float, float], ...] = ()
    box: tuple[float, float, float, float, float, float] | None = None
    scribble: np.ndarray | None = None

    def points(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(positive (N, 3), negative (M, 3)) float points, the scribble's thinned in; checked
        against ``shape``."""
        pos = [np.asarray(self.positive, float).reshape(-1, 3)]
        neg = [np.asarray(self.negative, float).reshape(-1, 3)]
        if self.scribble is not None:
            s = np.asarray(self.scribble)
            if s.shape != tuple(shape):
                raise PromptError(f"the scribble has shape {s.shape}; the image has {tuple(shape)}")
            for sign, out in ((1, pos), (-1, neg)):
                idx = np.argwhere(s == sign).astype(float)
                if len(idx) > MAX_POINTS // 2:
                    idx = idx[:: math.ceil(len(idx) / (MAX_POINTS // 2))]
                out.append(idx)
        p, n = np.concatenate(pos), np.concatenate(neg)
        if len(p) + len(n) > MAX_POINTS:
            raise PromptError(f"{len(p) + len(n)} prompt points; at most {MAX_POINTS} are taken")
        for pts in (p, n):
            if len(pts) and (
                not np.isfinite(pts).all()
                or (pts < -0.5).any()
                or (pts > np.asarray(shape) - 0.5).any()
            ):
                raise PromptError(f"a prompt point lies outside the image of shape {shape}")
        return p, n

    def checked_box(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if self.box is None:
            return None
        b = np.asarray(self.box, float)
        if b.shape != (6,) or not np.isfinite(b).all():
            raise PromptError("a box needs six finite corners (z0, y0, x0, z1, y1, x1)")
        lo, hi = np.minimum(b[:3], b[3:]), np.maximum(b[:3], b[3:])
        lo, hi = np.clip(lo, 0, np.asarray(shape) - 1), np.clip(hi, 0, np.asarray(shape) - 1)
        if (hi < lo).any():
            raise PromptError(f"the box lies outside the image of shape {shape}")
        return np.concatenate([lo, hi])


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
        )


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
) -> Patch:
    """The patch around what the prompts span (positive points, the box, the previous mask's
    bounding box; negative points only widen it), at least ``min_extent_mm`` per side and no
    larger than the image; the model grid is isotropic in mm where the image allows."""
    shape = np.asarray(image_shape, float)
    sp = np.asarray(spacing_zyx, float)
    parts = [pos, neg] + ([box.reshape(2, 3)] if box is not None else [])
    bbox = mask_bbox(previous) if previous is not None else None
    if bbox is not None:
        parts.append(bbox)
    pts = np.concatenate([p for p in parts if len(p)])
    lo_i, hi_i = pts.min(axis=0), pts.max(axis=0)
    centre = (lo_i + hi_i) / 2.0
    extent_mm = (hi_i - lo_i + 1) * sp * spec.margin
    side = max(float(extent_mm.max()), spec.min_extent_mm)
    full_mm = shape * sp
    ext = np.minimum(side, full_mm)  # per axis, mm
    n = np.asarray(spec.shape, float)
    step = np.maximum(ext / sp / n, 1e-3)  # image voxels per model voxel
    if spec.grid == "voxels":  # the image's own voxels, zoomed out as a whole when needed
        need = (hi_i - lo_i + 1) * spec.margin
        step = np.full(3, max(1.0, float(np.ceil(np.max(need / n)))))
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


def click_map(points: np.ndarray, patch: Patch, radius: float, value: float = 1.0) -> np.ndarray:
    """Balls of ``radius`` model voxels at ``points`` (image indices); points off the patch
    paint nothing."""
    out = np.zeros(patch.shape, np.float32)
    if not len(points):
        return out
    m = patch.to_model(points)
    r = int(math.ceil(radius))
    off = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    off = off[(off**2).sum(1) <= radius**2 + 1e-6]
    at = (np.rint(m)[:, None, :] + off[None]).reshape(-1, 3).astype(np.intp)
    ok = ((at >= 0) & (at < np.asarray(patch.shape))).all(1)
    at = at[ok]
    out[at[:, 0], at[:, 1], at[:, 2]] = value
    return out


def box_map(box: np.ndarray | None, patch: Patch, out: np.ndarray) -> None:
    """Paints the box's voxels ``BOX_VALUE`` into ``out`` (where no click painted)."""
    if box is None:
        return
    lo, hi = patch.to_model(box[:3]), patch.to_model(box[3:])
    sl = []
    for a in range(3):
        s = max(0, math.floor(lo[a] + 0.5))
        e = min(patch.shape[a], math.floor(hi[a] + 0.5) + 1)
        sl.append(slice(s, max(s, e)))
    view = out[tuple(sl)]
    view[view < BOX_VALUE] = BOX_VALUE


def encode(
    image_norm: np.ndarray,
    patch: Patch,
    spec: PatchSpec,
    pos: np.ndarray,
    neg: np.ndarray,
    box: np.ndarray | None,
    previous: np.ndarray | None,
    scribble: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The network's input (len(spec.channels), *patch.shape) in the card's channel order.
    RadLens's layout: normalised image, positive map (clicks 1, box 0.5), negative map,
    previous mask; nnInteractive's: the image, then previous mask, box +/-, points +/-,
    scribble +/- (the scribble's points; with no separate scribble they count as points)."""
    maps: dict[str, np.ndarray] = {"image": image_norm}
    empty = np.zeros(patch.shape, np.float32)
    want = set(spec.channels)
    if "positive" in want:
        pmap = click_map(pos, patch, spec.click_radius)
        box_map(box, patch, pmap)
        maps["positive"] = pmap
    if "negative" in want:
        maps["negative"] = click_map(neg, patch, spec.click_radius)
    if "previous" in want:
        maps["previous"] = (
            sample(previous.view(np.uint8) if previous.dtype == bool else previous, patch)
            if previous is not None
            else empty
        )
    if want & {"box+", "box-", "points+", "points-", "scribble+", "scribble-"}:
        bmap = np.zeros(patch.shape, np.float32)
        if box is not None:
            box_map(box, patch, bmap)
            bmap[bmap > 0] = 1.0
        maps["box+"], maps["box-"] = bmap, empty
        sp, sn = scribble if scribble is not None else (np.zeros((0, 3)), np.zeros((0, 3)))
        maps["points+"] = click_map(pos, patch, spec.click_radius)
        maps["points-"] = click_map(neg, patch, spec.click_radius)
        maps["scribble+"] = click_map(sp, patch, spec.click_radius)
        maps["scribble-"] = click_map(sn, patch, spec.click_radius)
    return np.stack([maps[c] for c in spec.channels]).astype(np.float32)


def paste(
    logits: Any, patch: Patch, image_shape: tuple[int, ...], chunk: int = 16
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """(region, bool mask there): the patch's logits (torch (D, H, W), CPU) interpolated back
    onto the image voxels it covers (trilinear, as ``sample`` went), > 0."""
    import torch

    region = patch.region(image_shape)
    coords = [
        torch.as_tensor(
            np.clip(
                (np.arange(s.start, s.stop) - patch.lo[a]) / patch.step[a], 0, patch.shape[a] - 1
            )
        )
        for a, s in enumerate(region)
    ]

    def weights(c: Any, n: int) -> Any:  # (len(c), n) linear-interpolation matrix
        i0 = c.floor().long().clamp(0, n - 1)
        i1 = (i0 + 1).clamp(max=n - 1)
        w = (c - i0).float()
        m = torch.zeros(len(c), n)
        m[torch.arange(len(c)), i0] += 1 - w
        m[torch.arange(len(c)), i1] += w
        return m

    p = logits.float()
    wx, wy = weights(coords[2], patch.shape[2]), weights(coords[1], patch.shape[1])
    p = torch.einsum("dhw,xw->dhx", p, wx)
    p = torch.einsum("dhx,yh->dyx", p, wy)
    cz = coords[0]
    z0 = cz.floor().long().clamp(0, patch.shape[0] - 1)
    z1 = (z0 + 1).clamp(max=patch.shape[0] - 1)
    wz = (cz - z0).float()
    out = np.zeros(tuple(s.stop - s.start for s in region), bool)
    for s in range(0, len(cz), chunk):
        e = min(s + chunk, len(cz))
        w = wz[s:e, None, None]
        vals = p[z0[s:e]] * (1 - w) + p[z1[s:e]] * w
        out[s:e] = (vals > 0).numpy()
    return region, out


def normalise(values: np.ndarray, steps: list[dict[str, Any]]) -> np.ndarray:
    """The card's intensity steps (clip_scale or zscore) on the sampled patch."""
    import torch

    from inference.preprocess import intensity

    return np.asarray(intensity(torch.from_numpy(values), steps), np.float32)


def predict_patch(ctx: RunContext, x: np.ndarray) -> Any:
    """The network's logits for one encoded patch (CPU float32 (D, H, W)); walks the device
    ladder (this device, then the CPU) on out of memory."""
    import torch

    def attempt(step: Step) -> Any:
        net = ctx.net_on(step.sw_device)
        if isinstance(net, NnunetModel):  # an imported nnU-Net package: its module
            net = net.network
        net = net.to(step.sw_device)
        with ctx.lock_for(step.sw_device), ctx.autocast(step.sw_device):
            out = forward(net, torch.from_numpy(x)[None].to(step.sw_device))
        if isinstance(out, (list, tuple)):  # deep supervision: the full-resolution head
            out = out[0]
        out = out[0].float().cpu()
        # One sigmoid channel, or two softmax channels (background, structure).
        return out[0] if out.shape[0] == 1 else out[1] - out[0]

    return ctx.run_stage("inference", attempt, ctx.whole_steps())


@dataclass(frozen=True)
class RegionAnswer:
    """The mask inside the image region the patch covers (outside it nothing changed)."""

    region: tuple[slice, slice, slice]
    inside: np.ndarray  # bool, the region's shape


def predict_region(
    image: np.ndarray,
    spacing_zyx: Sequence[float],
    prompts: Prompts,
    previous: np.ndarray | None,
    ctx: RunContext,
) -> RegionAnswer:
    """One prompt round: the structure's mask where the patch lies (``previous``: bool, the
    image's shape, or None)."""
    card = ctx.card
    spec = PatchSpec.from_card(card.inference, card.patch_size)
    shape = tuple(int(s) for s in image.shape)
    if previous is not None and previous.shape != shape:
        raise PromptError(f"the previous mask has shape {previous.shape}; the image has {shape}")
    pos, neg = prompts.points(shape)
    box = prompts.checked_box(shape)
    if not len(pos) and box is None:
        raise PromptError("give at least one positive click, a box or a scribble of the structure")
    t = time.perf_counter()
    ctx.report(0.05, "sampling the patch")
    patch = place_patch(spec, shape, spacing_zyx, pos, neg, box, previous)
    img = normalise(sample(image, patch), card.preprocessing.get("steps", []))
    x = encode(img, patch, spec, pos, neg, box, previous)
    ctx.timings["preprocess"] = time.perf_counter() - t
    ctx.check_cancel()
    t = time.perf_counter()
    ctx.report(0.3, "running the model")
    logits = predict_patch(ctx, x)
    ctx.timings["inference"] = time.perf_counter() - t
    ctx.check_cancel()
    t = time.perf_counter()
    ctx.report(0.8, "mapping the mask back")
    region, inside = paste(logits, patch, shape)
    ctx.timings["postprocess"] = time.perf_counter() - t
    return RegionAnswer(region, inside)


def run_prompts(
    image: np.ndarray,
    spacing_zyx: Sequence[float],
    prompts: Prompts,
    previous: np.ndarray | None,
    ctx: RunContext,
) -> TaskOutput:
    """The interactive task: the refined mask (label 1 of the card's table) on the image grid."""
    prev = None if previous is None else np.asarray(previous) > 0
    answer = predict_region(image, spacing_zyx, prompts, prev, ctx)
    label = ctx.card.labels[0]
    mask = np.zeros(image.shape, np.uint8) if prev is None else prev.view(np.uint8).copy()
    mask[answer.region] = answer.inside
    if label.index != 1:
        mask *= np.uint8(label.index)
    sp = tuple(float(s) for s in spacing_zyx)
    volume = float(np.count_nonzero(mask)) * float(np.prod(sp)) / 1000.0
    return TaskOutput(label_map=LabelMap(mask, (label,), {label.name: volume}))
