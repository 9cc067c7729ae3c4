"""Out-of-distribution scores (the card's ``ood.score``): how far a run looks from the data the
card measured its range on. Higher is more like that data for every score.

Two kinds of score:

- *confidence* scores read the network's own output (``mean_max_softmax_foreground``,
  ``max_probability``, ``mean_box_score``, ``max_box_score``). A network can stay confident on
  an image it never saw, so these miss a changed look.
- ``input_histogram`` reads the *input*: the histogram of the network's input after the card's
  preprocessing (on the model grid, subsampled), compared with the reference histogram the
  card stores by histogram intersection (Swain & Ballard 1991): ``sum_i min(p_i, q_i)`` for
  two histograms normalised to sum 1. It is 1 for the same intensity distribution and 0 for
  disjoint ones, and equals 1 minus the total-variation distance, so "0.62" reads as "62 % of
  the voxels' intensities are where the reference has them". It costs one histogram of at
  most ``HISTOGRAM_SAMPLES`` voxels and no network pass, and works for every task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from radlens_core.results import Box

#: the input score, and the confidence scores by the task that computes them
INPUT_HISTOGRAM = "input_histogram"
#: At most this many voxels of the network input go into its histogram (a strided subsample).
HISTOGRAM_SAMPLES = 1 << 18


def histogram_stride(shape: Sequence[int], samples: int = HISTOGRAM_SAMPLES) -> int:
    """The per-axis stride that keeps a grid of ``shape`` at or under ``samples`` voxels."""
    n = math.prod(int(s) for s in shape)
    if n <= samples:
        return 1
    nd = max(len(shape), 1)
    step = max(1, math.ceil((n / samples) ** (1.0 / nd)))
    while math.prod(math.ceil(int(s) / step) for s in shape) > samples:
        step += 1
    return step


def input_histogram(x: Any, value_range: Sequence[float], bins: int) -> np.ndarray:
    """The normalised histogram (``bins`` fractions summing to 1) of the network input ``x``
    (a (C, *spatial) torch tensor or numpy array, any device) over ``value_range``; values
    outside it count in the end bins (they are still part of what the network sees) and
    non-finite values in the lower one. All channels count together; the spatial axes are
    subsampled with one stride so that at most ``HISTOGRAM_SAMPLES`` voxels are counted."""
    import torch

    t = torch.as_tensor(x)
    if t.ndim == 1:
        t = t[None]
    lo, hi = float(value_range[0]), float(value_range[1])
    step = histogram_stride(tuple(t.shape[1:]))
    if step > 1:
        t = t[(slice(None),) + (slice(None, None, step),) * (t.ndim - 1)]
    t = torch.nan_to_num(t.float(), nan=lo, posinf=hi, neginf=lo).clamp(lo, hi)
    counts = torch.histc(t, bins=int(bins), min=lo, max=hi).double().cpu().numpy()
    total = counts.sum()
    return counts / total if total > 0 else counts


def histogram_intersection(
    p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray
) -> float:
    """``sum_i min(p_i, q_i)`` of two histograms, each normalised to sum 1 first: 1 for the
    same distribution, 0 for disjoint ones (= 1 - total-variation distance)."""
    a, b = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"histograms of {a.size} and {b.size} bins cannot be compared")
    sa, sb = a.sum(), b.sum()
    if sa <= 0 or sb <= 0:
        return 0.0
    return float(np.minimum(a / sa, b / sb).sum())


def input_score(ood: dict[str, Any], x: Any) -> float | None:
    """The ``input_histogram`` score of the network input ``x`` against the card's validated
    ``ood`` block; None when the card names another score (or none)."""
    if ood.get("score") != INPUT_HISTOGRAM:
        return None
    ref = ood["reference"]
    hist = input_histogram(x, ref["range"], len(ref["histogram"]))
    return histogram_intersection(hist, ref["histogram"])


def describe(score: str, value: float) -> str:
    """The flag's words for ``value`` of ``score``: what was measured, in a sentence's middle."""
    if score == INPUT_HISTOGRAM:
        return (
            "histogram of intensities, as the model sees them, overlaps theirs by"
            f" {value:.3f} (histogram intersection)"
        )
    return f"{score.replace('_', ' ')} is {value:.3f}"


# ---- confidence scores, from the run's outputs ----------------------------------------------
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


def ood_score_detection(boxes: tuple[Box, ...], score: str = "mean_box_score") -> float | None:
    """The mean (``mean_box_score``) or the highest (``max_box_score``) box score; None
    without boxes. An image unlike the training data leaves the detector less sure."""
    if not boxes:
        return None
    values = [b.score for b in boxes]
    return float(max(values) if score == "max_box_score" else np.mean(values))
