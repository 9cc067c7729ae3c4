"""The interactive (promptable) task: clicks, a box or a scribble and the previous mask in, one
3D mask out. A patch around the prompts is sampled onto the model's fixed grid (see
``.grid``), the network sees (image, positive map, negative map, previous mask),
and its answer replaces the previous mask inside the patch only (outside it the previous mask
stays as it was); an answer reaching the patch's side is asked again on a wider patch.

The prompt encoding is plain numpy, shared with the training recipe
(``demo_models.interactive``) so that the network is trained on exactly what it sees here."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.nnunet import NnunetModel
from inference.runtime import RunContext, Step, TaskOutput, forward
from inference.tasks.interactive.grid import (
    CHANNELS,
    Patch,
    PatchSpec,
    box_cells,
    focus_cells,
    mask_bbox,
    paste,
    place_patch,
    sample,
    touches_side,
)
from inference.tasks.interactive.intensity import FITTED
from radlens_core.errors import UserError
from radlens_core.results import LabelMap

#: Most prompt points one run takes (a scribble is thinned to this many voxels).
MAX_POINTS = 4096
#: What a box paints in the positive channel (a click paints 1.0).
BOX_VALUE = 0.5
__all__ = [
    "CHANNELS",
    "Patch",
    "PatchSpec",
    "PromptError",
    "Prompts",
    "box_map",
    "click_map",
    "encode",
    "mask_bbox",
    "normalise",
    "paste",
    "place_patch",
    "predict_region",
    "run_prompts",
    "sample",
]


class PromptError(UserError, ValueError):
    """Prompts that cannot be used, in a sentence (no prompt, a point outside the image...)."""


@dataclass(frozen=True)
class Prompts:
    """What the user said, in the image's (z, y, x) voxel indices.

    ``box``: (z0, y0, x0, z1, y1, x1) inclusive corners; a scribble either as voxel lists
    (``scribble_positive``: drawn on the structure, ``scribble_negative``: on background; what
    the Prompt tool sends) or as an int8 array of the image's shape (1 structure, -1
    background)."""

    positive: tuple[tuple[float, float, float], ...] = ()
    negative: tuple[tuple[float, float, float], ...] = ()
    box: tuple[float, float, float, float, float, float] | None = None
    scribble: np.ndarray | None = None
    scribble_positive: tuple[tuple[float, float, float], ...] = ()
    scribble_negative: tuple[tuple[float, float, float], ...] = ()
    #: the newest click (image indices; negative when it is among ``negative``): a card with
    #: ``focus`` keeps only what it asked for (added voxels, or removed ones) connected to
    #: it; None (a box, a scribble) changes the whole patch
    focus: tuple[float, float, float] | None = None
    #: the newest prompt when it is a box or a stroke (``focus`` is None then): "box" keeps
    #: the answer inside the box only; "scribble+" / "scribble-" what the stroke adds or
    #: removes connected to ``stroke`` (its voxels) -- with a card's ``focus``
    latest: str = ""
    stroke: tuple[tuple[float, float, float], ...] = ()

    def clicks(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(positive (N, 3), negative (M, 3)) clicks, checked against ``shape``."""
        out = (
            np.asarray(self.positive, float).reshape(-1, 3),
            np.asarray(self.negative, float).reshape(-1, 3),
        )
        _inside(out, shape)
        return out

    def scribbles(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(positive, negative) scribble voxels, each thinned to ``MAX_POINTS // 2``."""
        pos = [np.asarray(self.scribble_positive, float).reshape(-1, 3)]
        neg = [np.asarray(self.scribble_negative, float).reshape(-1, 3)]
        if self.scribble is not None:
            s = np.asarray(self.scribble)
            if s.shape != tuple(shape):
                raise PromptError(f"the scribble has shape {s.shape}; the image has {tuple(shape)}")
            pos.append(np.argwhere(s == 1).astype(float))
            neg.append(np.argwhere(s == -1).astype(float))
        out = []
        for parts in (pos, neg):
            idx = np.concatenate(parts)
            if len(idx) > MAX_POINTS // 2:
                idx = idx[:: math.ceil(len(idx) / (MAX_POINTS // 2))]
            out.append(idx)
        _inside(out, shape)
        return out[0], out[1]

    def points(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(positive (N, 3), negative (M, 3)) float points: the clicks and the scribble's
        thinned voxels; checked against ``shape``."""
        (p, n), (sp, sn) = self.clicks(shape), self.scribbles(shape)
        p, n = np.concatenate([p, sp]), np.concatenate([n, sn])
        if len(p) + len(n) > MAX_POINTS:
            raise PromptError(f"{len(p) + len(n)} prompt points; at most {MAX_POINTS} are taken")
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


def _inside(points: Sequence[np.ndarray], shape: tuple[int, ...]) -> None:
    for pts in points:
        if len(pts) and (
            not np.isfinite(pts).all()
            or (pts < -0.5).any()
            or (pts > np.asarray(shape) - 0.5).any()
        ):
            raise PromptError(f"a prompt point lies outside the image of shape {shape}")


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
    ``pos``/``neg`` are the clicks, ``scribble`` the (positive, negative) scribble voxels.
    RadLens's layout: normalised image, positive map (clicks and scribble 1, box 0.5),
    negative map (clicks and scribble), previous mask; nnInteractive's: the image, then
    previous mask, box +/-, points +/- (the clicks), scribble +/- (the scribble's voxels)."""
    maps: dict[str, np.ndarray] = {"image": image_norm}
    empty = np.zeros(patch.shape, np.float32)
    want = set(spec.channels)
    sp, sn = scribble if scribble is not None else (np.zeros((0, 3)), np.zeros((0, 3)))
    if "positive" in want:
        pmap = click_map(np.concatenate([pos, sp]), patch, spec.click_radius)
        box_map(box, patch, pmap)
        maps["positive"] = pmap
    if "negative" in want:
        maps["negative"] = click_map(np.concatenate([neg, sn]), patch, spec.click_radius)
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
        maps["points+"] = click_map(pos, patch, spec.click_radius)
        maps["points-"] = click_map(neg, patch, spec.click_radius)
        maps["scribble+"] = click_map(sp, patch, spec.click_radius)
        maps["scribble-"] = click_map(sn, patch, spec.click_radius)
    return np.stack([maps[c] for c in spec.channels]).astype(np.float32)


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
    pos, neg = prompts.clicks(shape)
    scribble = prompts.scribbles(shape)
    if len(pos) + len(neg) + len(scribble[0]) + len(scribble[1]) > MAX_POINTS:
        raise PromptError(f"more than {MAX_POINTS} prompt points; at most that many are taken")
    box = prompts.checked_box(shape)
    if not len(pos) and not len(scribble[0]) and box is None:
        raise PromptError("give at least one positive click, a box or a scribble of the structure")
    bbox = mask_bbox(previous) if previous is not None else None
    t = time.perf_counter()
    model_key = f"{card.id}@{card.version}:{card.path}"
    fitted = FITTED.get(image, model_key, card.preprocessing.get("steps", []))
    ctx.timings["fit_intensity"] = time.perf_counter() - t
    for stage in ("preprocess", "inference", "postprocess"):
        ctx.timings[stage] = 0.0
    zoom, used = 1.0, None
    for attempt in range(spec.zoom_out + 1):
        t = time.perf_counter()
        ctx.report(0.05 + 0.7 * attempt / (spec.zoom_out + 1), "sampling the patch")
        patch = place_patch(
            spec, shape, spacing_zyx, np.concatenate([pos, scribble[0]]),
            np.concatenate([neg, scribble[1]]), box, previous, zoom, bbox,
        )  # fmt: skip
        if used is not None and patch.region(shape) == used[0].region(shape):
            break  # the patch is the whole image already
        img = fitted.apply(sample(image, patch))
        x = encode(img, patch, spec, pos, neg, box, previous, scribble)
        ctx.timings["preprocess"] += time.perf_counter() - t
        ctx.check_cancel()
        t = time.perf_counter()
        ctx.report(0.1 + 0.7 * attempt / (spec.zoom_out + 1), "running the model")
        used = (patch, predict_patch(ctx, x).numpy())
        ctx.timings["inference"] += time.perf_counter() - t
        ctx.check_cancel()
        # The answer reaches a side of the patch inside the image: the structure goes on
        # beyond it; a patch twice as wide sees it whole (nnInteractive's auto-zoom). With a
        # previous mask the patch spans it already: no zoom (a spill would grow the patch).
        if bbox is not None or not touches_side(used[1], patch, shape):
            break
        zoom *= 2.0
    assert used is not None
    t = time.perf_counter()
    ctx.report(0.85, "mapping the mask back")
    patch, logits = used
    focus = _focus(prompts, spec, box, shape) if bbox is not None else None
    if focus is not None and previous is not None:
        # Only what the newest prompt asked for: the rest keeps its earlier answer, and only
        # the cells that may change are mapped back.
        before = sample(previous.view(np.uint8), patch) >= 0.5
        points, sign = focus
        if points is None:  # a box: its inside, added or removed
            cells = box_cells(np.asarray(box), patch)
        else:
            cells = focus_cells(logits, before, patch, points, sign > 0) > 0
        region, may_change = paste(np.where(cells, 1.0, -1.0), patch, shape, within=cells)
        _, took = paste(logits, patch, shape, within=cells)
        kept = previous[region]
        # A positive click only adds, a negative one only removes, where its change reaches.
        if sign:
            took = took | kept if sign > 0 else took & kept
        answer = RegionAnswer(region, np.where(may_change, took, kept))
    else:
        answer = RegionAnswer(*paste(logits, patch, shape))
    ctx.timings["postprocess"] += time.perf_counter() - t
    return answer


def _focus(
    prompts: Prompts, spec: PatchSpec, box: np.ndarray | None, shape: tuple[int, ...]
) -> tuple[np.ndarray | None, int] | None:
    """(focus points or None for the box, sign: 1 adds, -1 removes, 0 both) of the newest
    prompt when the card keeps only what it asked for; None: the whole patch may change."""
    if not spec.focus:
        return None
    if prompts.focus is not None:
        negative = tuple(prompts.focus) in {tuple(v) for v in prompts.negative}
        return np.asarray(prompts.focus, float)[None], -1 if negative else 1
    if prompts.latest in ("scribble+", "scribble-") and prompts.stroke:
        stroke = np.asarray(prompts.stroke, float).reshape(-1, 3)
        _inside([stroke], shape)
        return stroke, 1 if prompts.latest == "scribble+" else -1
    if prompts.latest == "box" and box is not None:
        return None, 0
    return None


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
