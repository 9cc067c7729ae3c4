"""The cards' measured ranges: OOD score range and plausibility, from validation phantoms.

Each demo model is run by the engine on validation phantoms it never trained on (CT seeds
5000-5007 at the demo study's grid, radiographs 20000-20039) and on a shifted look (contrast
0.6, noise 40 HU) to say how far the OOD score separates them. The card's ranges are the
measured ones widened by fixed rules (volumes x0.5/x1.5, finding size x1.2 for segments and
x1.5 for boxes, OOD lower bound 0.01-0.05 below the lowest validation score) and each says
what it was measured on, so the numbers are the weights' own. The finding count is twice the
most nodules a validation phantom holds (its ground truth), not twice what the model found:
a plausible count is a property of the patients, and a bound widened by the model's own false
positives on validation would let the same false positives pass everywhere else.

The CT models' OOD score is ``input_histogram`` (inference.ood): the reference histogram is
the mean of the network inputs' histograms over the validation phantoms, drawn both in the
demo study's look and in the looks the trainer drew them in (demo_models.data.scanner_look:
native grid, noise 5-30 HU, contrast 0.95-1.05, lung and nodule density), because a model
must not call the looks it was trained on "unlike". The confidence scores barely move on a
shifted look (max softmax stays 0.97-0.99 when the contrast drops to 0.6); the input does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from demo_models.data import scanner_look
from inference.card import ModelCard
from inference.components import _findings
from inference.ood import INPUT_HISTOGRAM, histogram_intersection, input_histogram
from phantoms.chest import chest_ct, chest_radiograph

CT_SEEDS = list(range(5000, 5008))
XR_SEEDS = list(range(20000, 20040))
CT_SHAPE = (96, 256, 256)
#: a coarser scanner grid of the training phantoms (demo_models.data.NATIVE_SHAPES): the OOD
#: range must hold on every grid the model is meant for, not just the demo study's
OTHER_SHAPE, OTHER_SEEDS = (64, 192, 192), (5008, 5009)
#: bins of the ``input_histogram`` reference: ~22 HU each over the CT models' 1400 HU window,
#: finer than the shifts it must see (lung -850 -> -510 HU at contrast 0.6), coarse enough
#: that a noise level the model was trained on still falls in the same bins
HISTOGRAM_BINS = 64
#: the input score's lower bound sits this far below the lowest validation score: phantoms
#: outside the reference's own set scored up to 0.01 below its lowest in the measurements
INPUT_MARGIN = 0.05


def _engine() -> Any:
    from inference.engine import Engine

    return Engine(device="cpu")


def _floor(x: float, step: float) -> float:
    return round(math.floor(x / step) * step, 4)


def _ceil(x: float, step: float) -> float:
    return round(math.ceil(x / step) * step, 4)


def network_input(card: ModelCard, image: np.ndarray, spacing: Any) -> Any:
    """What the network sees of ``image``: the engine's own preprocessing (model view,
    resampling, the card's intensity steps), as a (C, *spatial) tensor on the CPU."""
    from inference import preprocess
    from inference.tasks.common import model_view

    arr, channels_last, _ = model_view(image, card)
    x, _frame = preprocess.prepare(arr, spacing, np.eye(3), card, channels_last)
    return x


def input_value_range(card: ModelCard) -> tuple[float, float] | None:
    """The range the card's intensity steps map the input into (a clipping ``clip_scale``
    last), or None when they leave it open (z-score: measured on the inputs instead)."""
    steps = [s for s in card.preprocessing.get("steps", []) if s["op"] != "resize"]
    if steps and steps[-1]["op"] == "clip_scale" and steps[-1].get("clip", True):
        b = (float(steps[-1].get("b_min", 0.0)), float(steps[-1].get("b_max", 1.0)))
        return min(b), max(b)
    if steps and steps[-1]["op"] == "minmax":
        return 0.0, 1.0
    return None


def input_ood(
    card: ModelCard, inputs: dict[str, list[Any]], shifted: list[Any], bins: int = HISTOGRAM_BINS
) -> dict[str, Any]:
    """The card's ``ood`` block for ``input_histogram``: the reference is the mean histogram
    of the network ``inputs`` (name of each set -> its inputs), the range's lower bound
    ``INPUT_MARGIN`` below the lowest of their intersections with it; ``shifted`` inputs are
    scored against it for the card's sentence (they must fall below)."""
    every = [x for xs in inputs.values() for x in xs]
    rng = input_value_range(card)
    if rng is None:  # an open range: the validation inputs' 0.5-99.5 percentiles
        values = np.concatenate([np.asarray(x, dtype=np.float32).ravel()[::97] for x in every])
        lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
        rng = (lo, hi if hi > lo else lo + 1.0)
    hists = {name: [input_histogram(x, rng, bins) for x in xs] for name, xs in inputs.items()}
    ref = np.mean([h for hs in hists.values() for h in hs], axis=0)
    ref = np.round(ref / ref.sum(), 6)
    scores = {name: [histogram_intersection(h, ref) for h in hs] for name, hs in hists.items()}
    low = min(v for vs in scores.values() for v in vs)
    off = [histogram_intersection(input_histogram(x, rng, bins), ref) for x in shifted]
    parts = ", ".join(f"{name} {min(v):.3f}-{max(v):.3f}" for name, v in scores.items() if v)
    shift = f"{min(off):.3f}-{max(off):.3f}" if off else "not measured"
    return {
        "score": INPUT_HISTOGRAM,
        "range": [max(_floor(low - INPUT_MARGIN, 0.01), 0.0), 1.0],
        "reference": {"range": [float(rng[0]), float(rng[1])], "histogram": ref.tolist()},
        "measured_on": f"histogram intersection of the network input ({bins} bins over"
        f" {rng[0]:g}-{rng[1]:g}) with the mean of {len(every)} validation inputs: {parts};"
        f" shifted look contrast 0.6 / noise 40 HU: {shift}; lower bound"
        f" {INPUT_MARGIN} below the lowest",
    }


def ct_inputs(card: ModelCard, quick: bool = False) -> tuple[dict[str, list[Any]], list[Any]]:
    """The network inputs of the CT validation phantoms ({set name: inputs}) and of the
    shifted look, for ``input_ood``: seeds 5000-5007 in the demo study's look and grid, the
    same patients in the looks and grids the trainer drew, and the coarse grid's seeds."""
    seeds, shape = (CT_SEEDS[:2], (16, 32, 32)) if quick else (CT_SEEDS, CT_SHAPE)
    inputs: dict[str, list[Any]] = {"demo look": [], "trainer looks": [], "coarse grid": []}
    for seed in seeds:
        ct = chest_ct(shape, seed=seed)
        inputs["demo look"].append(network_input(card, ct.hu, ct.spacing))
    for seed in seeds:
        native, look = scanner_look(seed)
        ct = chest_ct(shape if quick else native, seed=seed, **look)  # type: ignore[arg-type]
        inputs["trainer looks"].append(network_input(card, ct.hu, ct.spacing))
    for seed in () if quick else OTHER_SEEDS:
        ct = chest_ct(OTHER_SHAPE, seed=seed)
        inputs["coarse grid"].append(network_input(card, ct.hu, ct.spacing))
    shifted = [
        network_input(card, ct.hu, ct.spacing)
        for ct in (
            chest_ct(shape if quick else (48, 128, 128), seed=seed, contrast=0.6, noise_hu=40.0)
            for seed in (1001, 1002)[: 1 if quick else 2]
        )
    ]
    return inputs, shifted


def calibrate(card: ModelCard, quick: bool = False) -> dict[str, Any]:
    """{"ood": ..., "plausibility": ...} for the card's package (plausibility: CT models);
    ``quick``: two small phantoms (tests of the pipeline). CT models get the
    ``input_histogram`` OOD score, the classifier its ``max_probability``."""
    if card.task == "classification":
        return _classifier(card, XR_SEEDS[:2] if quick else XR_SEEDS)
    engine = _engine()
    seeds, shape = (CT_SEEDS[:2], (16, 32, 32)) if quick else (CT_SEEDS, CT_SHAPE)
    counts: list[int] = []
    truths: list[int] = []
    sizes: list[float] = []
    volumes: dict[str, list[float]] = {}
    names = {"nodule"}
    for seed in seeds:
        ct = chest_ct(shape, seed=seed)
        res = engine.run(ct.hu, ct.spacing, np.eye(3), "CT", card)
        spacing_zyx = tuple(float(s) for s in ct.spacing[::-1])
        found = _findings(res.label_map, res.boxes, spacing_zyx, names)
        counts.append(len(found))
        truths.append(len(ct.nodules))
        sizes.extend(mm for _, mm in found)
        if res.label_map is not None:
            for name, ml in res.label_map.volumes_ml.items():
                volumes.setdefault(name, []).append(float(ml))
    ood = input_ood(card, *ct_inputs(card, quick))
    where = f"validation phantoms chest_ct({shape}) seeds {seeds[0]}-{seeds[-1]}"
    if card.task == "segmentation":
        vol = {n: [_floor(min(v) * 0.5, 100.0 if n == "lung" else 1.0),
                   _ceil(max(v) * 1.5, 100.0 if n == "lung" else 1.0)] for n, v in volumes.items()}  # fmt: skip
        most, biggest = max(counts), max(sizes, default=0.0)
        plaus = {
            "volume_ml": vol,
            "max_findings": max(2 * max(truths), 2),
            "max_finding_mm": _ceil(max(biggest * 1.2, 10.0), 5.0),
            "finding_labels": ["nodule"],
            "measured_on": f"{where} through the engine: "
            + ", ".join(f"{n} {min(v):.0f}-{max(v):.0f} mL" for n, v in volumes.items())
            + f", at most {most} nodule components (the phantoms hold at most {max(truths)}"
            f" nodules), up to {biggest:.1f} mm; volumes widened to x0.5/x1.5, count x2 of the"
            " phantoms' nodules, size x1.2",
        }
        return {"ood": ood, "plausibility": plaus}
    most, biggest = max(counts), max(sizes, default=0.0)
    plaus = {
        "max_findings": max(2 * max(truths), 2),
        "max_finding_mm": _ceil(max(biggest * 1.5, 10.0), 5.0),
        "measured_on": f"{where} through the engine: at most {most} boxes (the phantoms hold at"
        f" most {max(truths)} nodules), up to {biggest:.1f} mm across; count x2 of the"
        " phantoms' nodules, size x1.5",
    }
    return {"ood": ood, "plausibility": plaus}


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
