"""Evaluation metrics (numpy/scipy only): overlap, surface distance, detection and classification.

Conventions:
- masks are arrays indexed (z, y, x) or (y, x); ``spacing`` is in (x, y, z) / (x, y) order, as
  everywhere in RadLens (``viewer.study.volume``), and is reversed here to match the array axes;
- boxes are continuous voxel corners ``(z0, y0, x0, z1, y1, x1)`` or ``(y0, x0, y1, x1)``;
- an empty prediction of an empty truth scores Dice/IoU 1 and HD95 0; a surface distance to
  nothing is undefined and returned as ``nan`` (means use ``nanmean``, and say how many counted).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# ---- segmentation ---------------------------------------------------------------------------


def _as_bool(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    return a, b


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A∩B| / (|A|+|B|) of two binary masks (1.0 when both are empty)."""
    a, b = _as_bool(a, b)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index |A∩B| / |A∪B| of two binary masks (1.0 when both are empty)."""
    a, b = _as_bool(a, b)
    union = int(np.logical_or(a, b).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(a, b).sum()) / union


def _surface(mask: np.ndarray) -> np.ndarray:
    # Border voxels: in the mask but with a face-neighbour outside it (or at the array edge).
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    return mask & ~eroded


def surface_distances(
    a: np.ndarray, b: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of A to B's surface, and from B's to A's."""
    a, b = _as_bool(a, b)
    sampling = tuple(float(s) for s in spacing)[::-1][: a.ndim] if spacing is not None else None
    if sampling is not None and len(sampling) != a.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not fit a {a.ndim}D mask")  # type: ignore[arg-type]
    sa, sb = _surface(a), _surface(b)
    if not sa.any() or not sb.any():
        return np.zeros(0), np.zeros(0)
    # distance_transform_edt measures to the nearest zero, so invert the surfaces.
    to_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    to_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    return to_b[sa], to_a[sb]


def hausdorff95(a: np.ndarray, b: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm (0 if both empty, nan if one is)."""
    a, b = _as_bool(a, b)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return math.nan
    d_ab, d_ba = surface_distances(a, b, spacing)
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def per_label(
    metric: str,
    pred: np.ndarray,
    truth: np.ndarray,
    labels: Iterable[int],
    spacing: Sequence[float] | None = None,
) -> dict[int, float]:
    """``metric`` ('dice', 'iou' or 'hd95') for each label index of two label maps."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"label maps differ in shape: {pred.shape} vs {truth.shape}")
    out: dict[int, float] = {}
    for label in labels:
        p, t = pred == label, truth == label
        if metric == "dice":
            out[int(label)] = dice(p, t)
        elif metric == "iou":
            out[int(label)] = iou(p, t)
        elif metric == "hd95":
            out[int(label)] = hausdorff95(p, t, spacing)
        else:
            raise ValueError(f"unknown metric {metric!r} (dice, iou, hd95)")
    return out


def dice_per_label(pred: np.ndarray, truth: np.ndarray, labels: Iterable[int]) -> dict[int, float]:
    return per_label("dice", pred, truth, labels)


def iou_per_label(pred: np.ndarray, truth: np.ndarray, labels: Iterable[int]) -> dict[int, float]:
    return per_label("iou", pred, truth, labels)


def hausdorff95_per_label(
    pred: np.ndarray, truth: np.ndarray, labels: Iterable[int], spacing: Sequence[float] | None
) -> dict[int, float]:
    return per_label("hd95", pred, truth, labels, spacing)


# ---- detection ------------------------------------------------------------------------------


def _boxes(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(boxes, dtype=float)
    if arr.size == 0:
        return arr.reshape(0, 0)
    arr = np.atleast_2d(arr)
    if arr.shape[1] % 2:
        raise ValueError(f"boxes need (lo..., hi...) corners, got rows of {arr.shape[1]} values")
    return arr


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of boxes given as (lo..., hi...) continuous corners."""
    a, b = _boxes(a), _boxes(b)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    d = a.shape[1] // 2
    lo = np.maximum(a[:, None, :d], b[None, :, :d])
    hi = np.minimum(a[:, None, d:], b[None, :, d:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    vol_a = np.prod(np.clip(a[:, d:] - a[:, :d], 0, None), axis=-1)
    vol_b = np.prod(np.clip(b[:, d:] - b[:, :d], 0, None), axis=-1)
    union = vol_a[:, None] + vol_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass(frozen=True)
class BoxMatch:
    """Greedy matching of one case's predictions (in descending score order) to its truth."""

    scores: np.ndarray  # (N,) prediction scores, sorted descending
    is_tp: np.ndarray  # (N,) bool: this prediction found a not-yet-found true box
    matched: np.ndarray  # (N,) index of the true box it found, -1 if none
    n_true: int


def match_boxes(
    pred_boxes: np.ndarray | Sequence[Sequence[float]],
    pred_scores: np.ndarray | Sequence[float],
    true_boxes: np.ndarray | Sequence[Sequence[float]],
    rule: str = "iou",
    min_iou: float = 0.1,
) -> BoxMatch:
    """Match predictions to true boxes, highest score first; each true box is found once.

    ``rule='iou'`` counts a hit when IoU >= ``min_iou``; ``rule='centre'`` when the
    prediction's centre lies inside the true box (the usual lesion-detection rule). A second
    prediction on an already-found box is a false positive.
    """
    pb, tb = _boxes(pred_boxes), _boxes(true_boxes)
    scores = np.asarray(pred_scores, dtype=float).reshape(-1)
    if len(scores) != len(pb):
        raise ValueError(f"{len(pb)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    pb, scores = pb[order] if len(pb) else pb, scores[order]
    n_true = len(tb)
    if rule == "iou":
        hit = box_iou(pb, tb) >= min_iou
        quality = box_iou(pb, tb)
    elif rule in ("centre", "center"):
        if len(pb) and n_true:
            d = pb.shape[1] // 2
            c = (pb[:, :d] + pb[:, d:]) / 2.0
            hit = np.all((c[:, None] >= tb[None, :, :d]) & (c[:, None] <= tb[None, :, d:]), -1)
            # Prefer the true box whose centre is closest when a centre falls in several.
            tc = (tb[:, :d] + tb[:, d:]) / 2.0
            quality = -np.linalg.norm(c[:, None] - tc[None], axis=-1)
        else:
            hit, quality = np.zeros((len(pb), n_true), bool), np.zeros((len(pb), n_true))
    else:
        raise ValueError(f"unknown matching rule {rule!r} (iou, centre)")
    found = np.zeros(n_true, dtype=bool)
    is_tp = np.zeros(len(pb), dtype=bool)
    matched = np.full(len(pb), -1, dtype=int)
    for i in range(len(pb)):
        candidates = np.flatnonzero(hit[i] & ~found)
        if len(candidates):
            j = int(candidates[np.argmax(quality[i, candidates])])
            found[j] = True
            is_tp[i] = True
            matched[i] = j
    return BoxMatch(scores=scores, is_tp=is_tp, matched=matched, n_true=n_true)


def pool_matches(matches: Sequence[BoxMatch]) -> tuple[np.ndarray, np.ndarray, int]:
    """All cases' (scores, is_tp) sorted by descending score, and the number of true boxes."""
    scores = np.concatenate([m.scores for m in matches]) if matches else np.zeros(0)
    tps = np.concatenate([m.is_tp for m in matches]) if matches else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    return scores[order], tps[order], sum(m.n_true for m in matches)


DEFAULT_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class FROC:
    fp_per_case: np.ndarray  # the curve, one point per distinct score threshold
    sensitivity: np.ndarray
    thresholds: np.ndarray
    at: dict[float, float]  # sensitivity at each requested FP/case rate

    @property
    def mean_sensitivity(self) -> float:
        """The mean over the requested rates (the LUNA16 'CPM' with the default rates)."""
        return float(np.mean(list(self.at.values()))) if self.at else math.nan


def froc(matches: Sequence[BoxMatch], fp_rates: Sequence[float] = DEFAULT_FP_RATES) -> FROC:
    """Free-response ROC over cases: sensitivity at each average number of FPs per case."""
    n_cases = len(matches)
    scores, tps, n_true = pool_matches(matches)
    if n_cases == 0 or n_true == 0:
        return FROC(np.zeros(0), np.zeros(0), np.zeros(0), {float(r): math.nan for r in fp_rates})
    # One operating point after each distinct score (ties enter together).
    last = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1] if len(scores) else []
    ctp, cfp = np.cumsum(tps), np.cumsum(~tps)
    fp = np.r_[0.0, cfp[last] / n_cases] if len(scores) else np.zeros(1)
    sens = np.r_[0.0, ctp[last] / n_true] if len(scores) else np.zeros(1)
    thr = np.r_[np.inf, scores[last]] if len(scores) else np.array([np.inf])
    at = {}
    for r in fp_rates:
        ok = fp <= r
        at[float(r)] = float(sens[ok].max()) if ok.any() else 0.0
    return FROC(fp_per_case=fp, sensitivity=sens, thresholds=thr, at=at)


def average_precision(matches: Sequence[BoxMatch]) -> float:
    """Area under the precision-recall curve with the precision envelope (VOC all-points)."""
    scores, tps, n_true = pool_matches(matches)
    if n_true == 0:
        return math.nan
    if len(scores) == 0:
        return 0.0
    ctp, cfp = np.cumsum(tps), np.cumsum(~tps)
    recall = np.r_[0.0, ctp / n_true]
    precision = np.r_[1.0, ctp / np.maximum(ctp + cfp, 1)]
    # Envelope: the best precision reachable at this recall or higher.
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * precision[1:]))


def mean_average_precision(per_label_matches: dict[int, Sequence[BoxMatch]]) -> float:
    """Mean AP over labels that have at least one true box."""
    aps = [average_precision(m) for m in per_label_matches.values()]
    aps = [a for a in aps if not math.isnan(a)]
    return float(np.mean(aps)) if aps else math.nan


# ---- classification -------------------------------------------------------------------------


def roc_curve(
    y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for a binary label and a score; starts at (0, 0), ends at (1, 1)."""
    y = np.asarray(y_true).astype(bool).reshape(-1)
    s = np.asarray(scores, dtype=float).reshape(-1)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1] if len(s) else np.zeros(0, int)
    tp, fp = np.cumsum(y)[last], np.cumsum(~y)[last]
    pos, neg = int(y.sum()), int((~y).sum())
    tpr = np.r_[0.0, tp / pos] if pos else np.full(len(last) + 1, math.nan)
    fpr = np.r_[0.0, fp / neg] if neg else np.full(len(last) + 1, math.nan)
    return fpr, tpr, np.r_[np.inf, s[last]]


def youden_threshold(
    y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, default: float = 0.5
) -> float:
    """The score threshold (predict positive when score >= it) maximising Youden's J = TPR - FPR.

    Returns ``default`` when only one class is present or no threshold beats chance (J <= 0).
    The threshold is the midpoint between the chosen ROC point's score and the next lower
    score, so the same split holds for probabilities that differ in the last digits (the
    engine and the training loop preprocess the same image with different code).
    """
    fpr, tpr, thr = roc_curve(y_true, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float(default)
    j = tpr - fpr
    best = int(np.argmax(j))  # first maximum: the highest threshold, i.e. the most specific
    if j[best] <= 0 or not math.isfinite(thr[best]):
        return float(default)
    lower = thr[best + 1] if best + 1 < len(thr) else thr[best]
    return float((thr[best] + lower) / 2.0) if lower < thr[best] else float(thr[best])


def roc_auc(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (ties count half); nan if only one class is present."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, n_classes: int
) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    t = np.asarray(y_true, dtype=int).reshape(-1)
    p = np.asarray(y_pred, dtype=int).reshape(-1)
    if len(t) != len(p):
        raise ValueError(f"{len(t)} labels but {len(p)} predictions")
    if len(t) and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes):
        raise ValueError(f"class indices must lie in 0..{n_classes - 1}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    n_classes: int = 2,
    positive: int = 1,
) -> dict[str, float]:
    """Accuracy and, for the ``positive`` class against the rest, sensitivity (recall),
    specificity, precision (PPV) and F1; plus macro-averaged F1 over all classes."""
    if not 0 <= positive < n_classes:
        raise ValueError(f"positive class {positive} is not in 0..{n_classes - 1}")
    cm = confusion_matrix(y_true, y_pred, n_classes)
    out: dict[str, float] = {}
    total = int(cm.sum())
    f1s = []
    for k in range(n_classes):
        tp = cm[k, k]
        prec, rec = _ratio(tp, cm[:, k].sum()), _ratio(tp, cm[k, :].sum())
        f1s.append(_ratio(2 * tp, cm[:, k].sum() + cm[k, :].sum()))
        if k == positive:
            fp, fn = cm[:, k].sum() - tp, cm[k, :].sum() - tp
            tn = total - tp - fp - fn
            out = {
                "accuracy": _ratio(np.trace(cm), total),
                "sensitivity": rec,
                "specificity": _ratio(tn, tn + fp),
                "precision": prec,
                "f1": f1s[-1],
                "tp": float(tp),
                "fp": float(fp),
                "tn": float(tn),
                "fn": float(fn),
                "n": float(total),
            }
    out["macro_f1"] = float(np.nanmean(f1s)) if not all(math.isnan(f) for f in f1s) else math.nan
    return out
