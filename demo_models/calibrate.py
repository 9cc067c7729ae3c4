"""The cards' measured ranges: OOD score range and plausibility, from validation phantoms.

Each demo model is run by the engine on validation phantoms it never trained on (CT seeds
5000-5007 at the demo study's grid, radiographs 20000-20039) and on a shifted look (contrast
0.6, noise 40 HU) to say how far the OOD score separates them. The card's ranges are the
measured ones widened by fixed rules (volumes x0.5/x1.5, finding count x2, finding size x1.2
for segments and x1.5 for boxes, OOD lower bound 0.01-0.05 below the lowest validation score)
and each says what it was measured on, so the numbers are the weights' own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from inference.card import ModelCard
from inference.components import _findings
from phantoms.chest import chest_ct, chest_radiograph

CT_SEEDS = list(range(5000, 5008))
XR_SEEDS = list(range(20000, 20040))
CT_SHAPE = (96, 256, 256)
#: a coarser scanner grid of the training phantoms (demo_models.data.NATIVE_SHAPES): the OOD
#: range must hold on every grid the model is meant for, not just the demo study's
OTHER_SHAPE, OTHER_SEEDS = (64, 192, 192), (5008, 5009)


def _engine() -> Any:
    from inference.engine import Engine

    return Engine(device="cpu")


def _floor(x: float, step: float) -> float:
    return round(math.floor(x / step) * step, 4)


def _ceil(x: float, step: float) -> float:
    return round(math.ceil(x / step) * step, 4)


def calibrate(card: ModelCard, quick: bool = False) -> dict[str, Any]:
    """{"ood": ..., "plausibility": ...} for the card's package (plausibility: CT models);
    ``quick``: two small phantoms (tests of the pipeline)."""
    if card.task == "classification":
        return _classifier(card, XR_SEEDS[:2] if quick else XR_SEEDS)
    engine = _engine()
    seeds, shape = (CT_SEEDS[:2], (16, 32, 32)) if quick else (CT_SEEDS, CT_SHAPE)
    scores: list[float] = []
    shifted: list[float] = []
    counts: list[int] = []
    sizes: list[float] = []
    volumes: dict[str, list[float]] = {}
    names = {"nodule"}
    for seed in seeds:
        ct = chest_ct(shape, seed=seed)
        res = engine.run(ct.hu, ct.spacing, np.eye(3), "CT", card)
        if res.run.ood_score is not None:  # None: nothing found to score
            scores.append(float(res.run.ood_score))
        spacing_zyx = tuple(float(s) for s in ct.spacing[::-1])
        found = _findings(res.label_map, res.boxes, spacing_zyx, names)
        counts.append(len(found))
        sizes.extend(mm for _, mm in found)
        if res.label_map is not None:
            for name, ml in res.label_map.volumes_ml.items():
                volumes.setdefault(name, []).append(float(ml))
    coarse: list[float] = []
    for seed in () if quick else OTHER_SEEDS:
        ct = chest_ct(OTHER_SHAPE, seed=seed)
        res = engine.run(ct.hu, ct.spacing, np.eye(3), "CT", card)
        if res.run.ood_score is not None:
            coarse.append(float(res.run.ood_score))
    for seed in (1001, 1002)[: 1 if quick else 2]:
        ct = chest_ct(shape if quick else (48, 128, 128), seed=seed, contrast=0.6, noise_hu=40.0)
        res = engine.run(ct.hu, ct.spacing, np.eye(3), "CT", card)
        if res.run.ood_score is not None:
            shifted.append(float(res.run.ood_score))
    where = f"validation phantoms chest_ct({shape}) seeds {seeds[0]}-{seeds[-1]}"
    ood_where = where
    if coarse:
        ood_where += (
            f" and chest_ct({OTHER_SHAPE}) seeds {OTHER_SEEDS[0]}-{OTHER_SEEDS[-1]}"
            f" ({min(coarse):.3f}-{max(coarse):.3f})"
        )
    lo, hi = min(scores + coarse, default=0.0), max(scores + coarse, default=1.0)
    shift = f"{min(shifted):.3f}-{max(shifted):.3f}" if shifted else "nothing scored"
    if card.task == "segmentation":
        ood = {
            "score": "mean_max_softmax_foreground",
            "range": [_floor(lo - 0.01, 0.01), 1.0],
            "measured_on": f"{ood_where}: {lo:.3f}-{hi:.3f} (shifted look contrast 0.6 / noise 40"
            f" HU: {shift})",
        }
        vol = {n: [_floor(min(v) * 0.5, 100.0 if n == "lung" else 1.0),
                   _ceil(max(v) * 1.5, 100.0 if n == "lung" else 1.0)] for n, v in volumes.items()}  # fmt: skip
        most, biggest = max(counts), max(sizes, default=0.0)
        plaus = {
            "volume_ml": vol,
            "max_findings": max(2 * most, 2),
            "max_finding_mm": _ceil(max(biggest * 1.2, 10.0), 5.0),
            "finding_labels": ["nodule"],
            "measured_on": f"{where} through the engine: "
            + ", ".join(f"{n} {min(v):.0f}-{max(v):.0f} mL" for n, v in volumes.items())
            + f", at most {most} nodule components, up to {biggest:.1f} mm; volumes widened to"
            " x0.5/x1.5, count x2, size x1.2",
        }
        return {"ood": ood, "plausibility": plaus} if scores else {"plausibility": plaus}
    ood = {
        "score": "max_box_score",
        "range": [_floor(lo - 0.05, 0.05), 1.0],
        "measured_on": f"{ood_where}: {lo:.2f}-{hi:.2f} (shifted look: {shift}, so only"
        " the strongest shifts are caught)",
    }
    most, biggest = max(counts), max(sizes, default=0.0)
    plaus = {
        "max_findings": max(2 * most, 2),
        "max_finding_mm": _ceil(max(biggest * 1.5, 10.0), 5.0),
        "measured_on": f"{where} through the engine: at most {most} boxes, up to {biggest:.1f}"
        " mm across; count x2, size x1.5",
    }
    return {"ood": ood, "plausibility": plaus} if scores else {"plausibility": plaus}


def _classifier(card: ModelCard, seeds: list[int]) -> dict[str, Any]:
    engine = _engine()
    scores: list[float] = []
    for seed in seeds:
        xr = chest_radiograph(128, seed=seed)
        res = engine.run(xr.image, (*xr.spacing, 1.0), np.eye(3), "DX", card)
        if res.run.ood_score is not None:
            scores.append(float(res.run.ood_score))
    lo, hi = min(scores, default=0.0), max(scores, default=1.0)
    if not scores:
        return {}
    return {
        "ood": {
            "score": "max_probability",
            "range": [_floor(lo - 0.05, 0.05), 1.0],
            "measured_on": f"validation radiographs chest_radiograph(128) seeds {seeds[0]}-"
            f"{seeds[-1]}: {lo:.2f}-{hi:.2f}; a weak signal: the body-part and modality"
            " checks guard this model",
        }
    }
