"""The card's boundary fields: where a model may run (``max_input_size``) and what its results
may plausibly be (``plausibility``, ``ood``), validated as plain data with a sentence per field.

    "max_input_size": [x, y, z]                     largest image, in voxels per axis
    "plausibility": {"volume_ml": {"lung": [min, max]},   per structure, mL
                     "max_findings": 10,                  boxes, or components of finding_labels
                     "max_finding_mm": 40.0,              largest extent of one finding
                     "finding_labels": ["nodule"]}        segmenters: labels whose parts are findings
    "ood": {"score": "mean_max_softmax_foreground", "range": [lo, hi]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: OOD scores the engine computes, by the task that can compute them.
OOD_SCORES = {
    "mean_max_softmax_foreground": ("segmentation",),
    "max_probability": ("classification",),
    "mean_box_score": ("detection",),
}
PLAUSIBILITY_KEYS = (
    "volume_ml",
    "max_findings",
    "max_finding_mm",
    "finding_labels",
    "measured_on",
)

ErrorFactory = Callable[[str, str], Exception]


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and abs(x) < 1e300


def _range(value: Any, fld: str, error: ErrorFactory) -> tuple[float, float]:
    if not (isinstance(value, list) and len(value) == 2 and all(_number(x) for x in value)):
        raise error(fld, f"must be [min, max] (two numbers), got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise error(fld, f"has min {lo} above max {hi}")
    return lo, hi


def max_input_size(data: dict, dims: int, error: ErrorFactory) -> tuple[int, ...] | None:
    value = data.get("max_input_size")
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == dims
    ok = ok and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in value)
    if not ok:
        raise error(
            "max_input_size", f"must be null or {dims} positive integers (x, y[, z]), got {value!r}"
        )
    return tuple(value)


def plausibility(data: dict, task: str, label_names: set[str], error: ErrorFactory) -> dict:
    """The validated ``plausibility`` object (empty when the card has none)."""
    p = data.get("plausibility") or {}
    if not isinstance(p, dict):
        raise error("plausibility", "must be a JSON object")
    unknown = sorted(set(p) - set(PLAUSIBILITY_KEYS))
    if unknown:
        raise error(
            "plausibility", f"has unknown keys {unknown}; known: {', '.join(PLAUSIBILITY_KEYS)}"
        )
    out: dict[str, Any] = {}
    vols = p.get("volume_ml")
    if vols is not None:
        if not isinstance(vols, dict):
            raise error("plausibility.volume_ml", "must map label names to [min, max] in mL")
        if task != "segmentation":
            raise error("plausibility.volume_ml", "only a segmentation model has volumes")
        for name, rng in vols.items():
            if name not in label_names:
                raise error(f"plausibility.volume_ml.{name}", "is not one of the card's labels")
            _range(rng, f"plausibility.volume_ml.{name}", error)
        out["volume_ml"] = {k: [float(x) for x in v] for k, v in vols.items()}
    if "max_findings" in p:
        n = p["max_findings"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise error("plausibility.max_findings", f"must be a non-negative integer, got {n!r}")
        out["max_findings"] = n
    if "max_finding_mm" in p:
        mm = p["max_finding_mm"]
        if not _number(mm) or mm <= 0:
            raise error("plausibility.max_finding_mm", f"must be a positive number, got {mm!r}")
        out["max_finding_mm"] = float(mm)
    if "finding_labels" in p:
        names = p["finding_labels"]
        if not isinstance(names, list) or not all(n in label_names for n in names):
            raise error("plausibility.finding_labels", "must be a list of the card's label names")
        out["finding_labels"] = list(names)
    if "measured_on" in p:
        out["measured_on"] = _note(p["measured_on"], "plausibility.measured_on", error)
    return out


def _note(value: Any, fld: str, error: ErrorFactory) -> str:
    if not isinstance(value, str) or len(value) > 500 or any(ord(c) < 32 for c in value):
        raise error(fld, "must be one line of plain text (at most 500 characters)")
    return value


def ood(data: dict, task: str, error: ErrorFactory) -> dict:
    """The validated ``ood`` object: which score the engine computes and its expected range."""
    o = data.get("ood") or {}
    if not isinstance(o, dict):
        raise error("ood", "must be a JSON object")
    if not o:
        return {}
    score = o.get("score")
    if score not in OOD_SCORES:
        raise error("ood.score", f"is {score!r}; expected one of {', '.join(OOD_SCORES)}")
    if task not in OOD_SCORES[score]:
        raise error("ood.score", f"{score!r} is not computed for a {task} model")
    unknown = sorted(set(o) - {"score", "range", "measured_on"})
    if unknown:
        raise error("ood", f"has unknown keys {unknown}; known: score, range, measured_on")
    lo, hi = _range(o.get("range"), "ood.range", error)
    out: dict[str, Any] = {"score": score, "range": [lo, hi]}
    if "measured_on" in o:
        out["measured_on"] = _note(o["measured_on"], "ood.measured_on", error)
    return out
