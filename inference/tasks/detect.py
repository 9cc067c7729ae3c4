"""Detection: decode CenterNet output (centre heat map + box sizes) into scored voxel boxes."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import ndimage

from inference import postprocess
from inference.ood import input_score
from inference.runtime import RunContext, TaskOutput
from inference.tasks.common import prepare_input
from inference.tasks.segment import infer_patches
from radlens_core.results import Box, HeatMap

Corners = tuple[float, ...]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes ``a`` (N, 2d) and ``b`` (M, 2d), corners (lo..., hi...) -> (N, M)."""
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    d = a.shape[1] // 2
    lo = np.maximum(a[:, None, :d], b[None, :, :d])
    hi = np.minimum(a[:, None, d:], b[None, :, d:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=-1)
    vol_a = np.prod(np.clip(a[:, d:] - a[:, :d], 0.0, None), axis=-1)
    vol_b = np.prod(np.clip(b[:, d:] - b[:, :d], 0.0, None), axis=-1)
    union = vol_a[:, None] + vol_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy IoU non-maximum suppression; returns kept indices, best score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        ious = box_iou(boxes[i : i + 1], boxes[order])[0]
        order = [j for j, v in zip(order, ious, strict=True) if v <= iou]
    return keep


def decode_centernet(
    output: np.ndarray,
    score_threshold: float = 0.5,
    nms_iou: float = 0.1,
    max_boxes: int = 50,
) -> list[tuple[Corners, float]]:
    """Peaks of a CenterNet output -> boxes, in the output's own voxel grid.

    ``output`` is (1 + d, *spatial) for d = 2 (y, x) or 3 (z, y, x) spatial axes; a leading
    batch axis of 1 is accepted. Channel 0 is the centre heat-map *logit* (a sigmoid gives the
    score); channels 1..d are the box extent in voxels along each axis, where extent = hi - lo
    of the box's corners (as ``Nodule.box_zyx`` gives them). A peak is a voxel equal to the
    maximum of its 3x3(x3) neighbourhood with score >= ``score_threshold``; its box is
    centre +- extent / 2. Overlapping boxes (IoU > ``nms_iou``) keep only the best.

    Returns up to ``max_boxes`` ``((lo..., hi...), score)`` pairs, best score first; corners are
    floats (z0, y0, x0, z1, y1, x1) or (y0, x0, y1, x1), clipped to the grid.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim in (4, 5) and out.shape[0] == 1 and out.shape[1] == out.ndim - 2:
        out = out[0]
    d = out.ndim - 1
    if d not in (2, 3) or out.shape[0] != 1 + d:
        raise ValueError(
            f"CenterNet output must be (1 + d, *spatial) with d = 2 or 3, got shape {out.shape}"
        )
    heat = _sigmoid(out[0])
    # Max-pool NMS: only local maxima survive, so one object gives one peak.
    peaks = (heat == ndimage.maximum_filter(heat, size=3, mode="constant", cval=-1.0)) & (
        heat >= score_threshold
    )
    idx = np.argwhere(peaks)
    if idx.size == 0:
        return []
    scores = heat[tuple(idx.T)]
    # Plateaus (equal neighbours) give several peaks; IoU NMS below merges them.
    order = np.argsort(-scores, kind="stable")[: max(4 * max_boxes, max_boxes)]
    idx, scores = idx[order], scores[order]
    sizes = np.stack([out[1 + k][tuple(idx.T)] for k in range(d)], axis=1)
    sizes = np.clip(sizes, 1.0, None)  # a box is at least one voxel across
    centre = idx.astype(float)
    hi_bound = np.asarray(heat.shape, dtype=float) - 1.0
    lo = np.clip(centre - sizes / 2.0, 0.0, hi_bound)
    hi = np.clip(centre + sizes / 2.0, 0.0, hi_bound)
    boxes = np.concatenate([lo, hi], axis=1)
    keep = nms(boxes, scores, nms_iou)[:max_boxes]
    return [(tuple(float(v) for v in boxes[k]), float(scores[k])) for k in keep]


def run(image: np.ndarray, spacing: Any, direction: Any, ctx: RunContext) -> TaskOutput:
    """Detection task for the engine: boxes (and the centre heat map) in the input's voxel grid."""
    import torch

    card = ctx.card
    x, frame, out_shape = prepare_input(image, spacing, direction, ctx, 0.02)
    input_ood = input_score(card.ood, x)  # the input's look, before the network (no extra pass)
    out = infer_patches(ctx, x)

    t = time.perf_counter()
    ctx.report(0.87, "finding boxes")
    th = card.thresholds
    found = decode_centernet(
        out.numpy(),
        score_threshold=float(th.get("score", 0.5)),
        nms_iou=float(th.get("nms_iou", 0.1)),
        max_boxes=int(th.get("max_boxes", 20)),
    )
    name = card.labels[0].name if card.labels else "finding"
    boxes = tuple(
        Box(postprocess.box_to_input(corners, frame), name, score) for corners, score in found
    )
    likelihood = torch.sigmoid(out[0])
    heat = ctx.resampled(
        "mapping the heat map back",
        lambda device: postprocess.heat_to_input(likelihood, frame, device=device),
    )
    heat_map = HeatMap(heat.reshape(out_shape), f"{name} centre likelihood")
    ctx.timings["postprocess"] = time.perf_counter() - t
    return TaskOutput(
        heat_map=heat_map,
        boxes=boxes,
        ood_score=input_ood
        if input_ood is not None
        else postprocess.ood_score_detection(boxes, card.ood.get("score", "mean_box_score")),
    )
