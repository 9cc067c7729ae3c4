"""Evaluate a model package on a dataset through the real engine, case by case.

Every case goes through ``inference.engine.Engine.run`` exactly as in the viewer, and the
result (in the input's own voxel grid) is compared with the case's ground truth there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.training import metrics as M
from inference.training.dataset import TrainingCase, load_dataset
from inference.training.package import resolve_model
from inference.training.task_data import boxes_from_mask, class_of

FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: detections are collected down to this score so the FROC/PR curves have their low end
CURVE_SCORE = 0.05


@dataclass
class EvalResult:
    model_id: str
    model_version: str
    task: str
    dataset: str
    per_case: list[dict[str, Any]]
    summary: dict[str, float]
    #: name -> (x, y) arrays for the plots (froc, pr, roc)
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    confusion: list[list[int]] | None = None
    classes: list[str] = field(default_factory=list)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate(
    model: str | Path,
    dataset: str | Path,
    device: str = "auto",
    progress: Callable[[str], None] = print,
    threads: int | None = None,
) -> EvalResult:
    """Run ``model`` (id or folder) over every case of ``dataset`` and score it."""
    from inference.card import ModelCard
    from inference.engine import Engine

    card = ModelCard.load(resolve_model(model))
    ds = load_dataset(dataset)
    threshold = float(card.thresholds.get("score", 0.5))
    if card.task == "detection":
        # Collect low-score boxes too: FROC and AP sweep the threshold themselves.
        card = dataclasses.replace(
            card, thresholds={**card.thresholds, "score": CURVE_SCORE, "max_boxes": 100}
        )
    engine = Engine(device=device, num_threads=threads)
    rows: list[dict[str, Any]] = []
    raw: list[Any] = []
    for n, case in enumerate(ds.cases, 1):
        image, geo = case.load_image()
        direction = np.asarray(geo.direction).reshape(3, 3)
        spacing: tuple[float, ...] = geo.spacing
        if card.spatial_dims == 2:
            image, spacing = image[0], spacing[:2]
        result = engine.run(image, spacing, direction, case.modality, card)
        label = case.load_label()[0] if case.label_path is not None else None
        row, extra = _score_case(card, case, result, label, geo.spacing, threshold)
        rows.append({"case_id": case.case_id, "patient_id": case.patient_id, **row})
        raw.append(extra)
        progress(f"[{n}/{len(ds.cases)}] {case.case_id}: " + _short(row))
    res = EvalResult(
        model_id=card.id,
        model_version=card.version,
        task=card.task,
        dataset=ds.describe(),
        per_case=rows,
        summary={},
        classes=list(card.classes),
    )
    if card.task == "segmentation":
        keys = [k for k in rows[0] if k not in ("case_id", "patient_id")]
        res.summary = {f"mean_{k}": _nanmean([r[k] for r in rows]) for k in keys}
        # HD95 is undefined when one mask is empty: say over how many cases the mean runs.
        for k in keys:
            if k.startswith("hd95"):
                res.summary[f"n_defined_{k}"] = sum(not math.isnan(r[k]) for r in rows)
        res.summary["n_cases"] = len(rows)
    elif card.task == "detection":
        _summarise_detection(res, raw, threshold)
    else:
        _summarise_classification(res, raw, threshold)
    return res


def _short(row: dict[str, Any]) -> str:
    parts = []
    for k, v in row.items():
        if isinstance(v, float):
            parts.append(f"{k} {v:.3f}")
        elif isinstance(v, (int, str)):
            parts.append(f"{k} {v}")
    return "  ".join(parts[:6])


def _true_boxes(case: TrainingCase, label: np.ndarray | None, names: dict[str, int]) -> dict:
    """Ground-truth boxes per label name: the case's boxes, else mask components."""
    out: dict[str, list[np.ndarray]] = {}
    if case.boxes:
        for box, lab in zip(case.boxes, case.box_labels, strict=True):
            name = next((n for n, i in names.items() if i == lab), None)
            if name is not None:  # boxes of classes the model does not detect are not scored
                out.setdefault(name, []).append(np.asarray(box, float))
    elif label is not None:
        for name, index in names.items():
            out[name] = boxes_from_mask(label == index)
    return out


def _score_case(
    card: Any, case: TrainingCase, result: Any, label, spacing, threshold: float
) -> tuple[dict, Any]:
    if card.task == "segmentation":
        if label is None or result.label_map is None:
            raise ValueError(f"case {case.case_id}: needs a mask and a label-map result")
        pred = result.label_map.array.reshape(label.shape)
        row: dict[str, Any] = {}
        for e in card.labels:
            p, t = pred == e.index, label == e.index
            row[f"dice_{e.name}"] = M.dice(p, t)
            row[f"iou_{e.name}"] = M.iou(p, t)
            row[f"hd95_mm_{e.name}"] = M.hausdorff95(p, t, spacing)
        return row, None
    if card.task == "detection":
        names = {e.name: e.index for e in card.labels}
        truth = _true_boxes(case, label, names)
        found: dict[str, tuple[list, list]] = {}
        for b in result.boxes:
            found.setdefault(b.label, ([], []))
            found[b.label][0].append(b.corners)
            found[b.label][1].append(b.score)
        matches = {}
        for name in sorted(set(truth) | set(found)):
            boxes, scores = found.get(name, ([], []))
            matches[name] = M.match_boxes(boxes, scores, truth.get(name, []), rule="centre")
        thr = threshold
        row = {
            "n_true": sum(m.n_true for m in matches.values()),
            "n_pred": sum(int((m.scores >= thr).sum()) for m in matches.values()),
            "tp": sum(int((m.is_tp & (m.scores >= thr)).sum()) for m in matches.values()),
        }
        return row, matches
    probs = result.classification.probabilities if result.classification else {}
    classes = list(card.classes)
    p = np.asarray([float(probs.get(n, 0.0)) for n in classes])
    truth_cls = class_of(case, label)
    row = {"true": classes[truth_cls] if truth_cls < len(classes) else str(truth_cls)}
    row.update({f"p_{n}": float(v) for n, v in zip(classes, p, strict=True)})
    return row, (truth_cls, p)


def _summarise_detection(res: EvalResult, raw: list[dict], threshold: float) -> None:
    all_matches = [m for case in raw for m in case.values()]
    by_label: dict[str, list] = {}
    for case in raw:
        for name, m in case.items():
            by_label.setdefault(name, []).append(m)
    # FROC pools labels per case: one list entry per case keeps FP/case honest.
    per_case = [_merge(list(case.values())) for case in raw]
    f = M.froc(per_case, FROC_RATES)
    s = {f"sensitivity_at_{r:g}_fp": v for r, v in f.at.items()}
    s["froc_mean_sensitivity"] = f.mean_sensitivity
    for name, ms in by_label.items():
        s[f"ap_{name}"] = M.average_precision(ms)
    s["mAP"] = M.mean_average_precision({i: ms for i, ms in enumerate(by_label.values())})
    tp = sum(int((m.is_tp & (m.scores >= threshold)).sum()) for m in all_matches)
    n_pred = sum(int((m.scores >= threshold).sum()) for m in all_matches)
    n_true = sum(m.n_true for m in all_matches)
    s["sensitivity_at_threshold"] = tp / n_true if n_true else math.nan
    s["precision_at_threshold"] = tp / n_pred if n_pred else math.nan
    s["threshold"] = threshold
    s["n_cases"] = len(raw)
    res.summary = s
    res.curves["froc"] = (f.fp_per_case.tolist(), f.sensitivity.tolist())
    scores, tps, n = M.pool_matches(all_matches)
    if n and len(scores):
        ctp = np.cumsum(tps)
        res.curves["pr"] = ((ctp / n).tolist(), (ctp / np.arange(1, len(tps) + 1)).tolist())


def _merge(matches: list[M.BoxMatch]) -> M.BoxMatch:
    if not matches:
        return M.BoxMatch(np.zeros(0), np.zeros(0, bool), np.zeros(0, int), 0)
    return M.BoxMatch(
        scores=np.concatenate([m.scores for m in matches]),
        is_tp=np.concatenate([m.is_tp for m in matches]),
        matched=np.concatenate([m.matched for m in matches]),
        n_true=sum(m.n_true for m in matches),
    )


def _summarise_classification(res: EvalResult, raw: list, threshold: float) -> None:
    truth = [t for t, _ in raw]
    probs = np.stack([p for _, p in raw])
    n_classes = max(len(res.classes), probs.shape[1])
    if n_classes == 2:
        pred = (probs[:, 1] >= threshold).astype(int).tolist()
    else:
        pred = probs.argmax(1).tolist()
    for row, p in zip(res.per_case, pred, strict=True):
        row["predicted"] = res.classes[p] if p < len(res.classes) else str(p)
    rep = M.classification_report(truth, pred, n_classes=n_classes)
    s = {k: rep[k] for k in ("accuracy", "sensitivity", "specificity", "precision", "f1")}
    positive = [int(t == 1) for t in truth]
    s["auc"] = M.roc_auc(positive, probs[:, 1])
    s["threshold"] = threshold
    s["n_cases"] = len(raw)
    res.summary = s
    fpr, tpr, _ = M.roc_curve(positive, probs[:, 1])
    res.curves["roc"] = (fpr.tolist(), tpr.tolist())
    res.confusion = M.confusion_matrix(truth, pred, n_classes).tolist()
