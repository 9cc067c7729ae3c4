"""Per-label connected-component rules of a segmenter's card (minimum size, keep the K largest),
and the plausibility checks that count and measure findings (components or boxes).

A card says, under ``thresholds.components``, for each label (by name or index)::

    {"lung": {"keep_largest": 2, "min_ml": 5.0}, "nodule": {"min_ml": 0.05, "grid": "model"}}

``min_ml`` (3D) / ``min_mm2`` (2D) / ``min_voxels`` drop smaller components; ``keep_largest``
keeps only the K largest; ``grid`` is where the rule is decided: ``"model"`` (default: on the
coarse model grid, before back-mapping, so a 512^3 input costs no full-resolution labelling)
or ``"input"`` (on the final label map, exact at full resolution). ``min_voxels`` counts
voxels of that grid. Face connectivity throughout, like ``postprocess.clean_components``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from inference.ood import describe
from radlens_core.results import Box, Flag, LabelMap

GRIDS = ("model", "input")
_KEYS = ("min_voxels", "min_ml", "min_mm2", "keep_largest", "grid")


class RuleError(ValueError):
    """A bad ``thresholds.components`` entry; ``field`` names it inside the card."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class ComponentRule:
    """What to keep of one label's connected components."""

    index: int
    min_voxels: int = 0
    min_size: float = 0.0  # mL (3D) or mm^2 (2D)
    keep_largest: int = 0  # 0 = no limit
    grid: str = "model"

    def min_voxels_at(self, voxel_size: float) -> int:
        """Smallest kept component in voxels of a grid whose voxel is ``voxel_size`` mL (mm^2)."""
        by_size = int(np.ceil(self.min_size / voxel_size - 1e-9)) if self.min_size > 0 else 0
        return max(self.min_voxels, by_size)


def parse_rules(raw: Any, labels: dict[str, int], dims: int) -> tuple[ComponentRule, ...]:
    """``thresholds.components`` -> rules; ``labels`` maps label names to indices.
    Raises RuleError naming the bad field."""
    if raw is None:
        return ()
    base = "thresholds.components"
    if not isinstance(raw, dict):
        raise RuleError(base, "must be an object: label name or index -> rule")
    rules = []
    for key, spec in raw.items():
        fld = f"{base}.{key}"
        index = labels.get(key)
        if index is None and str(key).isdigit() and int(key) in labels.values():
            index = int(key)
        if index is None or index == 0:
            raise RuleError(fld, f"is not a label of this model ({', '.join(labels) or 'none'})")
        if not isinstance(spec, dict):
            raise RuleError(fld, "must be an object with min_ml/min_voxels/keep_largest/grid")
        unknown = sorted(set(spec) - set(_KEYS))
        if unknown:
            raise RuleError(
                f"{fld}.{unknown[0]}", f"is unknown; expected one of {', '.join(_KEYS)}"
            )
        size_key = "min_ml" if dims == 3 else "min_mm2"
        wrong = "min_mm2" if dims == 3 else "min_ml"
        if wrong in spec:
            raise RuleError(f"{fld}.{wrong}", f"does not apply to a {dims}D model; use {size_key}")
        rules.append(
            ComponentRule(
                index=index,
                min_voxels=_count(spec, "min_voxels", fld),
                min_size=_number(spec, size_key, fld),
                keep_largest=_count(spec, "keep_largest", fld),
                grid=_grid(spec, fld),
            )
        )
    return tuple(rules)


def _count(spec: dict, key: str, fld: str) -> int:
    v = spec.get(key, 0)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise RuleError(f"{fld}.{key}", f"must be a non-negative integer, got {v!r}")
    return v


def _number(spec: dict, key: str, fld: str) -> float:
    v = spec.get(key, 0.0)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < float("inf"):
        raise RuleError(f"{fld}.{key}", f"must be a non-negative number, got {v!r}")
    return float(v)


def _grid(spec: dict, fld: str) -> str:
    v = spec.get("grid", "model")
    if v not in GRIDS:
        raise RuleError(f"{fld}.grid", f"is {v!r}; expected one of {', '.join(GRIDS)}")
    return v


def voxel_size(spacing_zyx: Any) -> float:
    """One voxel in mL (3D) or mm^2 (2D) from per-axis spacing in mm."""
    sp = [float(s) for s in spacing_zyx]
    return float(np.prod(sp)) / (1000.0 if len(sp) == 3 else 1.0)


#: ``component_boxes`` looks into boxes adding up to at most this many times the mask.
SCAN_VOLUMES = 4


def component_boxes(mask: np.ndarray, max_boxes: int = 256) -> list[tuple[slice, ...]]:
    """Boxes that together hold every True voxel of ``mask`` and split no connected component:
    the mask's bounding box, cut again and again at planes with no True voxel. Two voxels
    across an empty plane are never neighbours (under any connectivity), so labelling each box
    apart finds the same components as labelling the whole mask, at the cost of the boxes,
    not of the volume: a few nodules in a 300x512x512 map are a few small boxes. At most
    ``max_boxes`` boxes: a box whose cut would pass that stays whole (still exact). The boxes
    looked into add up to at most ``SCAN_VOLUMES`` times the mask (a hostile staircase of
    planes would otherwise rescan most of a 300x512x512 map at each of 250 cuts: 2.5 s);
    past that the boxes left are kept as they are (still exact)."""
    todo: list[tuple[slice, ...]] = [tuple(slice(0, n) for n in mask.shape)]
    done: list[tuple[slice, ...]] = []
    budget = SCAN_VOLUMES * mask.size
    while todo:
        box = todo.pop()
        sub = mask[box]
        budget -= sub.size
        if budget < 0:
            done += [box, *todo]
            break
        best: tuple[int, list[tuple[int, int]]] | None = None
        tight = []
        for axis in range(sub.ndim):
            other = tuple(a for a in range(sub.ndim) if a != axis)
            hit = np.flatnonzero(sub.any(axis=other))
            if hit.size == 0:  # only the first box can be empty: the mask has no True voxel
                return []
            start = box[axis].start
            cuts = np.flatnonzero(np.diff(hit) > 1)
            firsts = np.concatenate([[hit[0]], hit[cuts + 1]])
            lasts = np.concatenate([hit[cuts], [hit[-1]]])
            runs = [
                (start + int(a), start + int(b) + 1) for a, b in zip(firsts, lasts, strict=True)
            ]
            tight.append(slice(runs[0][0], runs[-1][1]))
            if len(runs) > 1 and (best is None or len(runs) > len(best[1])):
                best = (axis, runs)
        if best is None or len(todo) + len(done) + len(best[1]) > max_boxes:
            done.append(tuple(tight))
            continue
        axis, runs = best
        for a, b in runs:
            piece = list(tight)
            piece[axis] = slice(a, b)
            todo.append(tuple(piece))
    return sorted(done, key=lambda b: tuple(s.start for s in b))


def dropped_mask(mask: np.ndarray, rule: ComponentRule, voxel: float) -> np.ndarray | None:
    """The voxels of ``mask`` that ``rule`` removes (None when it removes nothing)."""
    comps, n = ndimage.label(mask)
    if n == 0:
        return None
    from inference.postprocess import _component_sizes

    # torch's bincount: numpy's widens the labels to int64 and holds the interpreter lock
    # for ~235 ms on 300x512x512, a stall of the UI thread while the result is finished
    sizes = _component_sizes(comps, n)[1:]
    drop = sizes < rule.min_voxels_at(voxel)
    if rule.keep_largest and n > rule.keep_largest:
        # Stable order: equal sizes keep the first-labelled (lowest index) components.
        order = np.argsort(-sizes, kind="stable")
        drop[order[rule.keep_largest :]] = True
    if not drop.any():
        return None
    return np.concatenate([[False], drop])[comps]


def coarse_labels(probs, output: str, indices: list[int], threshold: float) -> np.ndarray:
    """The label decision on the model grid: softmax argmax (channel k = index k), or each
    sigmoid channel above ``threshold`` with later channels winning overlaps."""
    from inference.postprocess import argmax_uint8

    if output != "sigmoid":
        return argmax_uint8(probs)
    out = np.zeros(tuple(probs.shape[1:]), dtype=np.uint8)
    for k in range(probs.shape[0]):
        out[(probs[k] >= threshold).numpy()] = indices[k]
    return out


def apply_on_model_grid(
    probs,
    output: str,
    indices: list[int],
    threshold: float,
    rules: tuple[ComponentRule, ...],
    spacing_zyx: Any,
) -> dict[int, int]:
    """Remove the components that the model-grid rules drop from ``probs`` (C, *model), in place,
    before back-mapping: softmax moves the label's probability to background (so the argmax
    there becomes background, never another label), sigmoid zeroes it. The heat map, taken
    from the same probabilities, loses those specks too. Returns {label index: voxels dropped}.
    """
    import torch

    rules = tuple(r for r in rules if r.grid == "model" and r.index in indices)
    if not rules:
        return {}
    labels = coarse_labels(probs, output, indices, threshold)
    voxel = voxel_size(spacing_zyx)
    dropped = {}
    for rule in rules:
        drop = dropped_mask(labels == rule.index, rule, voxel)
        if drop is None:
            continue
        k = indices.index(rule.index)
        m = torch.from_numpy(drop)
        if output != "sigmoid" and k != 0:
            probs[0][m] += probs[k][m]
        probs[k][m] = 0.0
        dropped[rule.index] = int(drop.sum())
    return dropped


def apply_on_input_grid(
    label_map: np.ndarray, rules: tuple[ComponentRule, ...], spacing_zyx: Any
) -> dict[int, int]:
    """Apply the input-grid rules to the final label map, in place (dropped voxels -> 0).
    Returns {label index: voxels dropped}."""
    from inference.postprocess import bounding_box

    voxel = voxel_size(spacing_zyx)
    dropped = {}
    for rule in (r for r in rules if r.grid == "input"):
        mask = label_map == rule.index
        # Only boxes around the label are labelled: a few nodules in a 512^3 volume cost little.
        # A size rule alone is decided box by box (no component spans two boxes); keeping
        # the K largest ranks components across the whole label, so it labels its bounding box.
        if rule.keep_largest:
            box = bounding_box(mask)
            boxes = [] if box is None else [box]
        else:
            boxes = component_boxes(mask)
        n = 0
        for box in boxes:
            drop = dropped_mask(mask[box], rule, voxel)
            if drop is not None:
                label_map[box][drop] = 0
                n += int(drop.sum())
        if n:
            dropped[rule.index] = n
    return dropped


# ---- plausibility: whether a result can be true (the card's ``plausibility`` and ``ood``) ----
def _findings(
    label_map: LabelMap | None, boxes: tuple[Box, ...], spacing_zyx: tuple[float, ...], names
) -> list[tuple[str, float]]:
    """(label, largest extent in mm) of each finding: boxes, or the connected components of
    the ``names`` labels of a label map."""
    sp = np.asarray(spacing_zyx, dtype=float)
    out: list[tuple[str, float]] = []
    for b in boxes:
        ext = np.asarray(b.hi) - np.asarray(b.lo) + 1.0  # inclusive corners
        out.append((b.label, float((ext * sp[-b.ndim :]).max())))
    if label_map is None or not names:
        return out
    arr = label_map.array
    for lc in label_map.labels:
        if lc.name not in names:
            continue
        mask = arr == lc.index
        extents: list[float] = []
        # Labelled box by box: the same components as the whole map, at the cost of
        # the boxes around them (a full 300x512x512 labelling took 0.6 s of a 1 s GPU run).
        for box in component_boxes(mask):
            comp, _ = ndimage.label(mask[box])
            for sl in ndimage.find_objects(comp):
                if sl is not None:
                    ext = np.array([s.stop - s.start for s in sl], dtype=float)
                    extents.append(float((ext * sp[-arr.ndim :]).max()))
            if len(extents) >= 10_000:
                break
        out += [(lc.name, mm) for mm in extents[:10_000]]
    return out


def _size(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def plausibility_flags(
    card: Any,
    label_map: LabelMap | None,
    boxes: tuple[Box, ...],
    spacing_zyx: tuple[float, ...],
    ood_score: float | None,
) -> list[Flag]:
    """The card's plausibility and OOD checks on one result (``card``: a ModelCard)."""
    p = card.plausibility or {}
    out: list[Flag] = []
    if label_map is not None:
        for name, (lo, hi) in (p.get("volume_ml") or {}).items():
            if name not in label_map.volumes_ml:
                continue
            ml = float(label_map.volumes_ml[name])
            if not lo <= ml <= hi:
                out.append(
                    Flag(
                        "volume_out_of_range",
                        f"{name} {_size(ml)} mL is outside the expected {_size(lo)}–{_size(hi)}"
                        f" mL for this model",
                    )
                )
    if "max_findings" in p or "max_finding_mm" in p:
        names = p.get("finding_labels")
        if names is None:
            names = [e.name for e in card.labels]
        found = _findings(label_map, boxes, spacing_zyx, set(names))
        most = p.get("max_findings")
        if most is not None and len(found) > most:
            what = "/".join(sorted({n for n, _ in found}))
            out.append(
                Flag(
                    "too_many_findings",
                    f"{len(found)} {what} findings; this model expects at most {most}",
                )
            )
        largest = p.get("max_finding_mm")
        if largest is not None and found:
            name, mm = max(found, key=lambda f: f[1])
            if mm > largest:
                out.append(
                    Flag(
                        "finding_too_large",
                        f"a {name} finding {_size(mm)} mm across is larger than the"
                        f" {largest:g} mm this model expects",
                    )
                )
    rng = (card.ood or {}).get("range")
    if rng is not None and ood_score is not None and not rng[0] <= ood_score <= rng[1]:
        out.append(
            Flag(
                "out_of_distribution",
                f"the image looks unlike this model's validation data: its"
                f" {describe(card.ood['score'], ood_score)}, outside the"
                f" {rng[0]:.3f}–{rng[1]:.3f} measured on that data",
            )
        )
    return out
