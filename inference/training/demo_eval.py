"""Held-out evaluation of the demo models: full-volume inference, box decoding and metrics.

The sliding-window settings match the card's ``inference`` block, so the reported numbers
are what the engine will reproduce on the same phantoms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sliding_window(net, volume: np.ndarray, patch_zyx: Sequence[int], overlap: float = 0.25):
    """Network output (C, z, y, x) as float32 numpy for a preprocessed (z, y, x) volume."""
    import torch
    from monai.inferers import sliding_window_inference

    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
        out = sliding_window_inference(
            x, tuple(int(p) for p in patch_zyx), 4, net, overlap=overlap, mode="gaussian"
        )
    return out[0].numpy().astype(np.float32)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2.0 * (p & t).sum() / denom)


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count one half)."""
    s, y = np.asarray(scores, float), np.asarray(labels, int)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes (N, 2d) and (M, 2d) given as (lo..., hi...)."""
    a, b = np.atleast_2d(a).astype(float), np.atleast_2d(b).astype(float)
    d = a.shape[1] // 2
    lo = np.maximum(a[:, None, :d], b[None, :, :d])
    hi = np.minimum(a[:, None, d:], b[None, :, d:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    va = np.prod(a[:, d:] - a[:, :d], axis=1)
    vb = np.prod(b[:, d:] - b[:, :d], axis=1)
    return inter / (va[:, None] + vb[None, :] - inter + 1e-9)


def decode_centernet(
    output: np.ndarray, score_threshold: float, nms_iou: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 6) zyx corners and scores (N,) from a CenterNet output (4, z, y, x):
    sigmoid heat-map peaks (3x3x3 max-pool NMS), sizes read at the peak, then IoU NMS."""
    import torch
    import torch.nn.functional as F

    heat = torch.sigmoid(torch.from_numpy(output[0]))[None, None]
    peaks = (heat == F.max_pool3d(heat, 3, stride=1, padding=1)) & (heat >= score_threshold)
    idx = torch.nonzero(peaks[0, 0]).numpy()
    scores = heat[0, 0].numpy()[tuple(idx.T)] if len(idx) else np.zeros(0, np.float32)
    sizes = np.clip(output[1:, idx[:, 0], idx[:, 1], idx[:, 2]].T, 1.0, None) if len(idx) else None
    if sizes is None:
        return np.zeros((0, 6)), np.zeros(0)
    boxes = np.concatenate([idx - sizes / 2.0, idx + sizes / 2.0], axis=1)
    order = np.argsort(-scores)
    keep: list[int] = []
    for i in order:
        if not keep or box_iou(boxes[i], boxes[keep]).max() <= nms_iou:
            keep.append(int(i))
    return boxes[keep], scores[keep]


def match_detections(
    boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray, min_iou: float = 0.1
) -> tuple[np.ndarray, int]:
    """Per detection: True if it hits a not-yet-matched true box (its centre inside the box,
    or IoU > ``min_iou``), highest score first; also returns the number of true boxes."""
    hits = np.zeros(len(boxes), dtype=bool)
    used = np.zeros(len(truth), dtype=bool)
    d = truth.shape[1] // 2 if len(truth) else 3
    for i in np.argsort(-np.asarray(scores)):
        if not len(truth):
            break
        centre = (boxes[i, :d] + boxes[i, d:]) / 2.0
        inside = np.all((centre >= truth[:, :d]) & (centre <= truth[:, d:]), axis=1)
        ok = (inside | (box_iou(boxes[i], truth)[0] > min_iou)) & ~used
        if ok.any():
            j = int(np.flatnonzero(ok)[0])
            used[j] = hits[i] = True
    return hits, len(truth)


def sensitivity_at_fp(
    per_volume: Sequence[tuple[np.ndarray, np.ndarray, int]], max_fp_per_volume: float
) -> tuple[float, float]:
    """Best sensitivity with at most ``max_fp_per_volume`` false positives per volume, and
    the score threshold that gives it, from per-volume (scores, hits, n_true) results."""
    scores = np.concatenate([s for s, _, _ in per_volume]) if per_volume else np.zeros(0)
    hits = np.concatenate([h for _, h, _ in per_volume]) if per_volume else np.zeros(0, bool)
    n_true = sum(n for _, _, n in per_volume)
    n_vol = max(len(per_volume), 1)
    best, best_t = 0.0, 1.0
    for t in np.unique(scores)[::-1]:
        sel = scores >= t
        if (sel & ~hits).sum() / n_vol > max_fp_per_volume:
            break
        sens = (sel & hits).sum() / max(n_true, 1)
        if sens > best:
            best, best_t = float(sens), float(t)
    return best, best_t
