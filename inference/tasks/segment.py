"""Segmentation: sliding-window inference with progress and cancel, label maps, volumes, heat map."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from inference import postprocess, preprocess
from inference.engine import RunContext, Step, forward
from inference.results import AnalysisResult, HeatMapResult, LabelMapResult


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


def heatmap_index(card) -> int | None:
    """Label index whose probability becomes the heat map (card: inference.heatmap_label)."""
    want = card.inference.get("heatmap_label")
    if want is None:
        return None
    for e in card.labels:
        if want in (e.index, e.name):
            return e.index
    return None


def run(
    image: np.ndarray, spacing: Any, direction: Any, ctx: RunContext, result: AnalysisResult
) -> None:
    from inference.tasks.common import infer_patches, prepare_input

    card = ctx.card
    x, frame, out_shape = prepare_input(image, spacing, direction, ctx, 0.02)
    logits = infer_patches(ctx, x)
    del x

    t = time.perf_counter()
    ctx.report(0.87, "mapping results back to the image grid")
    output = card.network.get("output", "softmax")
    probs = activate(logits, output)
    del logits
    if output == "sigmoid":
        indices = [e.index for e in card.labels][: probs.shape[0]]
    else:
        indices = list(range(probs.shape[0]))
    threshold = float(card.thresholds.get("score", 0.5))
    labels = postprocess.labels_to_input(probs, frame, output, indices, threshold)
    postprocess.clean_components(labels, card.thresholds, [e.index for e in card.labels])
    sp = preprocess.axis_spacing(spacing, labels.ndim)[::-1]
    names = {e.index: e.name for e in card.labels}
    result.label_map = LabelMapResult(
        labels.reshape(out_shape), list(card.labels), postprocess.label_volumes(labels, sp, names)
    )
    hidx = heatmap_index(card)
    if hidx is not None:
        channel = indices.index(hidx) if hidx in indices else None
        if channel is not None:
            heat = postprocess.heat_to_input(probs[channel], frame)
            result.heat_map = HeatMapResult(
                heat.reshape(out_shape), f"{card.label_name(hidx)} probability"
            )
    ctx.timings["postprocess"] = time.perf_counter() - t
