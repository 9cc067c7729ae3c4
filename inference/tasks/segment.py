"""Segmentation: sliding-window inference with progress and cancel (detection runs its
windows here too), label maps, volumes, heat map."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from inference import components, postprocess, preprocess
from inference.card import ModelCard
from inference.ood import input_score
from inference.runtime import RunContext, Step, TaskOutput, forward
from inference.tasks.common import patch_roi, prepare_input
from radlens_core.results import HeatMap, LabelMap


def count_windows(shape: tuple[int, ...], roi: tuple[int, ...], overlap: float) -> int:
    """How many windows MONAI's sliding_window_inference visits (same rule as its scan)."""
    from monai.data.utils import dense_patch_slices

    size = tuple(max(s, r) for s, r in zip(shape, roi, strict=True))
    interval = tuple(
        r if r == s else max(1, int(r * (1 - overlap))) for s, r in zip(size, roi, strict=True)
    )
    return len(dense_patch_slices(size, roi, interval))


def whole_image_roi(shape: tuple[int, ...], multiple: int = 16) -> tuple[int, ...]:
    """No patch size in the card: one window over the whole image, padded so that
    encoder-decoder strides divide it."""
    return tuple(int(np.ceil(s / multiple) * multiple) for s in shape)


class _WindowPredictor:
    """Wraps the network for MONAI's inferer: checks cancel, counts windows, reports progress."""

    def __init__(self, ctx: RunContext, net: Any, total: int, step: Step, lo: float, hi: float):
        self.ctx, self.net, self.total, self.step = ctx, net, total, step
        self.lo, self.hi, self.done = lo, hi, 0

    def __call__(self, x):
        self.ctx.check_cancel()  # between windows: a cancel lands within one step
        with self.ctx.autocast(self.step.sw_device):
            out = forward(self.net, x)
        self.done += int(x.shape[0])
        self.ctx.windows_run += int(x.shape[0])
        frac = self.lo + (self.hi - self.lo) * self.done / max(self.total, 1)
        self.ctx.report(frac, f"window {min(self.done, self.total)} of {self.total}")
        return out.float()


def sliding_window(
    ctx: RunContext, x, roi: tuple[int, ...] | None, step: Step, lo: float, hi: float
):
    """Network output for ``x`` (C, *spatial) on the CPU, float32, (C_out, *spatial)."""
    inf = ctx.card.inference
    spatial = tuple(x.shape[1:])
    roi = tuple(roi) if roi is not None else whole_image_roi(spatial)
    overlap = float(inf.get("overlap", 0.25))
    total = count_windows(spatial, roi, overlap)
    net = ctx.net_on(step.sw_device)
    predictor = _WindowPredictor(ctx, net, total, step, lo, hi)
    inputs = x[None].to(step.device)
    with ctx.lock_for(step.sw_device):
        out = _sliding(inputs, roi, step, predictor, overlap, inf)
    return out[0].float().cpu()


def infer(ctx: RunContext, x: Any, roi: tuple[int, ...] | None, lo: float, hi: float) -> Any:
    """Network output for one (C, *spatial) input, by sliding window over ``roi`` (the whole
    image when None); walks the OOM ladder; returns a float32 CPU tensor (C_out, *spatial).
    Progress moves from ``lo`` to ``hi`` as windows finish."""
    return ctx.run_stage(
        "inference", lambda step: sliding_window(ctx, x, roi, step, lo, hi), ctx.window_steps()
    )


def infer_patches(ctx: RunContext, x: Any) -> Any:
    """The network's output for ``x`` window by window over the card's patches (OOM ladder
    included); records the "inference" timing and honours a cancel before postprocessing."""
    t = time.perf_counter()
    out = infer(ctx, x, patch_roi(ctx.card), 0.1, 0.85)
    ctx.timings["inference"] = time.perf_counter() - t
    ctx.check_cancel()
    return out


def _sliding(inputs, roi, step: Step, predictor, overlap: float, inf: dict):
    from monai.inferers import sliding_window_inference

    return sliding_window_inference(
        inputs,
        roi_size=roi,
        sw_batch_size=step.sw_batch_size,
        predictor=predictor,
        overlap=overlap,
        mode=inf.get("mode", "gaussian"),
        sw_device=step.sw_device,
        device=step.device,
    )


def activate(logits, output: str):
    """Network output -> probabilities (softmax over channels, or per-channel sigmoid)."""
    import torch

    if output == "sigmoid":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=0)


def heatmap_index(card: ModelCard) -> int | None:
    """Label index whose probability becomes the heat map (card: inference.heatmap_label)."""
    want = card.inference.get("heatmap_label")
    if want is None:
        return None
    for e in card.labels:
        if want in (e.index, e.name):
            return e.index
    return None


def component_rules(card: ModelCard) -> tuple[components.ComponentRule, ...]:
    """The card's per-label component rules (validated when the card was loaded)."""
    names = {e.name: e.index for e in card.labels}
    return components.parse_rules(card.thresholds.get("components"), names, card.spatial_dims)


def run(image: np.ndarray, spacing: Any, direction: Any, ctx: RunContext) -> TaskOutput:
    """Segmentation task for the engine: label map (+ volumes) and heat map on the input grid."""
    card = ctx.card
    x, frame, out_shape = prepare_input(image, spacing, direction, ctx, 0.02)
    input_ood = input_score(card.ood, x)  # the input's look, before the network (no extra pass)
    logits = infer_patches(ctx, x)
    del x

    t = time.perf_counter()
    ctx.report(0.87, "mapping results back to the image grid")
    output = card.network.get("output", "softmax")
    probs = activate(logits, output)
    del logits
    # On the coarse model grid, before components are removed: what the network believed
    # (unless the card's score reads the input instead).
    ood = input_ood if input_ood is not None else postprocess.ood_score_segmentation(probs, output)
    if output == "sigmoid":
        indices = [e.index for e in card.labels][: probs.shape[0]]
    else:
        indices = list(range(probs.shape[0]))
    threshold = float(card.thresholds.get("score", 0.5))
    rules = component_rules(card)
    # Decided on the coarse model grid (cheap), removed from the probabilities before
    # back-mapping, so the label map and the heat map both lose the specks.
    components.apply_on_model_grid(probs, output, indices, threshold, rules, frame.model_spacing)
    labels = ctx.resampled(
        "mapping the labels back",
        lambda device: postprocess.labels_to_input(
            probs, frame, output, indices, threshold, device=device
        ),
    )
    sp = preprocess.axis_spacing(spacing, labels.ndim)[::-1]
    components.apply_on_input_grid(labels, rules, sp[::-1])
    postprocess.clean_components(labels, card.thresholds, [e.index for e in card.labels])
    names = {e.index: e.name for e in card.labels}
    label_map = LabelMap(
        labels.reshape(out_shape), card.labels, postprocess.label_volumes(labels, sp, names)
    )
    heat_map = None
    hidx = heatmap_index(card)
    if hidx is not None:
        channel = indices.index(hidx) if hidx in indices else None
        if channel is not None:
            heat = ctx.resampled(
                "mapping the heat map back",
                lambda device: postprocess.heat_to_input(probs[channel], frame, device=device),
            )
            heat_map = HeatMap(heat.reshape(out_shape), f"{card.label_name(hidx)} probability")
    ctx.timings["postprocess"] = time.perf_counter() - t
    return TaskOutput(label_map=label_map, heat_map=heat_map, ood_score=ood)
