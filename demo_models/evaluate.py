"""Held-out evaluation of the demo model packages through the real inference engine.

Each package is run by ``inference.engine.Engine`` exactly as the viewer runs it: on held-out
phantoms at their own (demo study) resolution, so resampling to the card's spacing,
intensity steps, sliding window and postprocessing are all part of the measured numbers.
Metrics come from ``inference.training.metrics``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from demo_models import data as pdata
from inference.card import ModelCard
from inference.training import metrics as M
from phantoms.chest import LUNG, NODULE, chest_ct, chest_radiograph

Log = Callable[[str], None]
#: Hit rule of the detection figures (inference.training.metrics.match_boxes).
HIT_RULE = "centre"


def _engine():
    from inference.engine import Engine

    return Engine(device="cpu")


def _ct_case(seed: int, shape: Sequence[int]):
    """A held-out phantom with the demo study's look (default scanner settings)."""
    return chest_ct(tuple(shape), seed=seed)  # type: ignore[arg-type]


def evaluate_segmenter(card: ModelCard, seeds: Sequence[int], shape: Sequence[int]) -> dict:
    """Mean and worst Dice of lung and nodule, lung HD95 and pieces, nodule sensitivity and
    false-positive nodule components over held-out phantoms of ``shape`` (z, y, x)."""
    engine = _engine()
    lung, nodule, hd95, lung_parts = [], [], [], []
    found = n_true = false_pos = 0
    for s in seeds:
        ct = _ct_case(s, shape)
        res = engine.run(ct.hu, ct.spacing, np.eye(3), "CT", card)
        pred = res.label_map.array  # type: ignore[union-attr]
        lung.append(M.dice(pred == LUNG, ct.labels == LUNG))
        nodule.append(M.dice(pred == NODULE, ct.labels == NODULE))
        hd95.append(M.hausdorff95(pred == LUNG, ct.labels == LUNG, ct.spacing))
        lung_parts.append(ndimage.label(pred == LUNG)[1])
        hits, fps = nodule_hits(pred == NODULE, ct.labels == NODULE)
        found, n_true, false_pos = found + int(hits.sum()), n_true + hits.size, false_pos + fps
    return {
        "dice_lung": round(float(np.mean(lung)), 4),
        "dice_lung_min": round(float(np.min(lung)), 4),
        "hd95_lung_mm": round(float(np.nanmean(hd95)), 2),
        "lung_components_mean": round(float(np.mean(lung_parts)), 2),
        "dice_nodule": round(float(np.mean(nodule)), 4),
        "dice_nodule_min": round(float(np.min(nodule)), 4),
        "nodule_sensitivity": round(found / max(n_true, 1), 4),
        "nodule_fp_per_volume": round(false_pos / max(len(seeds), 1), 2),
        "n_nodules": n_true,
        "n_cases": len(seeds),
        "eval_shape_zyx": list(shape),
        "split": seed_range("held-out chest CT phantoms, seeds", seeds),
    }


def nodule_hits(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int]:
    """(found flag per true nodule, predicted nodule components touching no true nodule):
    a true nodule is found when any predicted nodule voxel lies inside it."""
    true_comps, n_true = ndimage.label(truth)
    pred_comps, n_pred = ndimage.label(pred)
    hits = np.zeros(n_true, dtype=bool)
    if n_true:
        hits = ndimage.maximum(pred, true_comps, np.arange(1, n_true + 1)).astype(bool)
    touching = ndimage.maximum(truth, pred_comps, np.arange(1, n_pred + 1)) if n_pred else []
    return np.atleast_1d(hits), int(n_pred - np.count_nonzero(touching))


def detection_matches(
    card: ModelCard, seeds: Sequence[int], shape: Sequence[int]
) -> list[M.BoxMatch]:
    """Engine boxes (every score >= 0.05) matched to the true nodule boxes, per phantom."""
    low = dataclasses.replace(card, thresholds={**card.thresholds, "score": 0.05, "max_boxes": 50})
    engine = _engine()
    out = []
    for s in seeds:
        ct = _ct_case(s, shape)
        res = engine.run(ct.hu, ct.spacing, np.eye(3), "CT", low)
        boxes = [b.corners for b in res.boxes]
        truth = pdata.nodule_boxes(ct.nodules, ct.spacing)
        out.append(M.match_boxes(boxes, [b.score for b in res.boxes], truth, rule=HIT_RULE))
    return out


def pick_threshold(matches: Sequence[M.BoxMatch], max_fp_per_case: float) -> float:
    """The lowest score threshold whose false positives per case stay within the budget: the
    most sensitive operating point the budget allows (the FROC curve only rises)."""
    f = M.froc(matches, fp_rates=(max_fp_per_case,))
    i = int(np.flatnonzero(f.fp_per_case <= max_fp_per_case)[-1])
    return float(f.thresholds[i]) if np.isfinite(f.thresholds[i]) else 1.0


def at_threshold(matches: Sequence[M.BoxMatch], threshold: float) -> tuple[float, float]:
    """(sensitivity, false positives per case) keeping boxes scoring >= ``threshold``."""
    scores, tps, n_true = M.pool_matches(matches)
    keep = scores >= threshold
    return float((tps & keep).sum() / max(n_true, 1)), float((~tps & keep).sum() / len(matches))


def evaluate_detector(
    card: ModelCard, val_seeds: Sequence[int], test_seeds: Sequence[int], shape: Sequence[int]
) -> dict:
    """FROC on held-out phantoms; the card's score threshold is chosen on validation phantoms
    (at most 0.5 false positives per volume there), never on the test set."""
    threshold = float(
        np.clip(pick_threshold(detection_matches(card, val_seeds, shape), 0.5), 0.1, 0.9)
    )
    test = detection_matches(card, test_seeds, shape)
    f = M.froc(test, fp_rates=(0.25, 0.5, 1.0, 2.0))
    sens, fp = at_threshold(test, threshold)
    return {
        "sensitivity_at_1fp_per_volume": round(f.at[1.0], 4),
        "froc": {str(k): round(v, 4) for k, v in f.at.items()},
        "score_threshold": round(threshold, 4),
        "sensitivity_at_threshold": round(sens, 4),
        "fp_per_volume_at_threshold": round(fp, 4),
        "n_nodules": int(sum(m.n_true for m in test)),
        "n_cases": len(test_seeds),
        "eval_shape_zyx": list(shape),
        "hit_rule": "predicted box centre inside the true box (one hit per nodule)",
        "split": seed_range("held-out chest CT phantoms, seeds", test_seeds)
        + "; threshold chosen on "
        + seed_range("validation seeds", val_seeds),
    }


def evaluate_classifier(card: ModelCard, seeds: Sequence[int], size: int) -> dict:
    """ROC AUC and accuracy at the card's threshold on held-out radiographs (nodule in every
    odd seed), each run through the engine (with its Grad-CAM)."""
    engine = _engine()
    threshold = float(card.thresholds.get("score", 0.5))
    probs, labels = [], []
    for s in seeds:
        xr = chest_radiograph(size, seed=int(s), nodule=bool(s % 2))
        res = engine.run(xr.image, xr.spacing, np.eye(2), "DX", card)
        probs.append(res.classification.probabilities["nodule"])  # type: ignore[union-attr]
        labels.append(int(xr.has_nodule))
    rep: dict[str, Any] = {}
    y, p = np.asarray(labels), np.asarray(probs)
    pred = p >= threshold
    rep["auc"] = round(M.roc_auc(y, p), 4)
    rep["accuracy_at_threshold"] = round(float((pred == y.astype(bool)).mean()), 4)
    rep["sensitivity_at_threshold"] = round(float(pred[y == 1].mean()), 4) if y.any() else None
    rep["specificity_at_threshold"] = (
        round(float((~pred[y == 0]).mean()), 4) if (y == 0).any() else None
    )
    rep.update(n_cases=len(seeds), n_nodule=int(y.sum()))
    rep["split"] = seed_range("held-out radiograph phantoms, seeds", seeds)
    return rep


def seed_range(what: str, seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    if not seeds:
        return f"{what}: none"
    return f"{what} {min(seeds)}-{max(seeds)}" if len(seeds) > 1 else f"{what} {seeds[0]}"
