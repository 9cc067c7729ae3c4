"""Classification: class probabilities plus a Grad-CAM heat map in the input's voxel grid."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from inference import postprocess
from inference.ood import input_score
from inference.runtime import RunContext, Step, TaskOutput, forward
from inference.tasks.common import prepare_input
from radlens_core.results import Classification, HeatMap


def probabilities(logits, output: str) -> np.ndarray:
    """(K,) logits -> probabilities: softmax, or independent sigmoids for multi-label models."""
    import torch

    logits = logits.float().reshape(-1)
    if output == "sigmoid":
        return torch.sigmoid(logits).numpy()
    return torch.softmax(logits, dim=0).numpy()


def _unchanged(x):
    return x


def gradcam(net: Any, x, layer: str, class_idx: int, device: str):
    """Grad-CAM of ``class_idx`` on ``layer`` (model grid, values in [0, 1]).

    Runs on a deep copy with autograd enabled, so the cached inference network never carries
    hooks or gradients; the copy (and its hooks) is dropped afterwards."""
    import torch
    from monai.visualize import GradCAM

    names = dict(net.named_modules())
    if layer not in names:
        raise KeyError(layer)
    twin = copy.deepcopy(net).to(device).eval()
    try:
        for p in twin.parameters():
            p.requires_grad_(True)
        with torch.enable_grad():
            # MONAI's default postprocessing maps (min, max) to (1, 0), flipping the map;
            # keep the raw (upsampled) map and normalise it below so high = important.
            cam = GradCAM(nn_module=twin, target_layers=layer, postprocessing=_unchanged)
            heat = cam(x[None].to(device).requires_grad_(True), class_idx=class_idx)
        heat = heat.detach().float().cpu()[0, 0]
    finally:
        del twin
    lo, hi = float(heat.min()), float(heat.max())
    return (heat - lo) / (hi - lo) if hi > lo else torch.zeros_like(heat)


def run(image: np.ndarray, spacing: Any, direction: Any, ctx: RunContext) -> TaskOutput:
    """Classification task for the engine: class probabilities, and the Grad-CAM heat map of
    the class it explains when the card names a layer."""
    card = ctx.card
    x, frame, out_shape = prepare_input(image, spacing, direction, ctx, 0.05)
    input_ood = input_score(card.ood, x)  # the input's look, before the network (no extra pass)

    t = time.perf_counter()
    ctx.report(0.3, "classifying")

    def attempt(step: Step):
        import torch

        net = ctx.net_on(step.device)
        with torch.no_grad(), ctx.autocast(step.device):
            return forward(net, x[None].to(step.device)).float().cpu()

    logits = ctx.run_stage("classification", attempt, ctx.whole_steps())
    output = card.network.get("output", "softmax")
    probs = probabilities(logits[0], output)
    classes = list(card.classes) or [str(i) for i in range(len(probs))]
    if len(classes) != len(probs):
        ctx.warnings.append(
            f"the card names {len(classes)} classes but the model gave {len(probs)} outputs"
        )
        classes = [classes[i] if i < len(classes) else str(i) for i in range(len(probs))]
    classification = Classification({c: float(p) for c, p in zip(classes, probs, strict=True)})
    ctx.timings["inference"] = time.perf_counter() - t
    ctx.check_cancel()

    heat_map = None
    layer = card.gradcam_layer
    if layer:
        t = time.perf_counter()
        ctx.report(0.6, "computing the Grad-CAM heat map")
        # Explain the most likely non-first class for binary models (e.g. "nodule"), else the top.
        target = int(np.argmax(probs)) if len(probs) != 2 else 1
        try:
            # Gradients need full precision: Grad-CAM never runs under autocast.
            cam = ctx.run_stage(
                "Grad-CAM",
                lambda step: gradcam(ctx.net_on(step.device), x, layer, target, step.device),
                ctx.whole_steps(),
                autocast=False,
            )
        except KeyError:
            ctx.warnings.append(f"Grad-CAM layer {layer!r} is not in the network; no heat map")
        else:
            heat = ctx.resampled(
                "mapping the heat map back",
                lambda device: postprocess.heat_to_input(cam, frame, device=device),
            )
            heat_map = HeatMap(heat.reshape(out_shape), f"Grad-CAM: {classes[target]}")
        ctx.timings["gradcam"] = time.perf_counter() - t
    return TaskOutput(
        heat_map=heat_map,
        classification=classification,
        ood_score=input_ood
        if input_ood is not None
        else postprocess.ood_score_classification(dict(classification.probabilities)),
    )
