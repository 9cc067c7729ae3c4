"""Whether a result can be true: the card's plausibility ranges (volumes per structure, how many
findings and how large) and the out-of-distribution score against the range the card measured
on its validation data. Each violation is a ``Flag`` with a sentence naming the structure, the
value and the range; nothing is hidden, the result is shown flagged."""

from __future__ import annotations

from typing import Any

import numpy as np

from radlens_core.results import Box, Flag, LabelMap


def ood_score_segmentation(probs: Any, output: str) -> float | None:
    """Mean over the predicted foreground of the winning class's probability (model grid).

    ``probs`` is the (C, *spatial) probability tensor; None when nothing is foreground."""
    import torch

    if output == "sigmoid":
        top = probs.max(dim=0).values
        fg = top >= 0.5
    else:
        top, arg = probs.max(dim=0)
        fg = arg != 0
    n = int(fg.sum())
    if n == 0:
        return None
    return float(torch.where(fg, top, torch.zeros_like(top)).sum() / n)


def ood_score_classification(probabilities: dict[str, float]) -> float | None:
    return max(probabilities.values()) if probabilities else None


def ood_score_detection(boxes: tuple[Box, ...]) -> float | None:
    return float(np.mean([b.score for b in boxes])) if boxes else None


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
    from scipy import ndimage

    arr = label_map.array
    for lc in label_map.labels:
        if lc.name not in names:
            continue
        comp, n = ndimage.label(arr == lc.index)
        for sl in ndimage.find_objects(comp)[:10_000]:
            if sl is None:
                continue
            ext = np.array([s.stop - s.start for s in sl], dtype=float) * sp[-arr.ndim :]
            out.append((lc.name, float(ext.max())))
    return out


def _size(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def flags(
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
                f" {card.ood['score'].replace('_', ' ')} is {ood_score:.3f}, outside the"
                f" {rng[0]:.3f}–{rng[1]:.3f} measured on that data",
            )
        )
    return out
