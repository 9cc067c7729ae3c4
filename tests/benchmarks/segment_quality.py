"""Quality of the model-free interactive tools on held-out chest phantoms: NoC@90 and Dice
after 1, 3 and 5 clicks per structure, with the simulated user of the interactive
segmentation literature (each next click at the centre -- the point farthest from its
border -- of the largest error region; positive when the region is missed structure,
negative when it is wrongly included).

- click-to-segment, clicks refine: ``RegionGrower.refine`` on the segmentation so far (a
  positive click at its border adds the border it missed, elsewhere a new part; a
  negative click trims the border or carves the part it is on);
- click-to-segment, each click grown alone (the first release, kept to compare): a 3D
  region grown from the click (default tolerance) is added, or, for a negative click,
  removed;
- grow from seeds: a click is a stroke (a cross through the click over the error region,
  on the axial, coronal or sagittal slice where that region is largest) of the
  structure's label or of a background label; the result is the full-resolution accept of
  ``SeedGrower`` (one label at first: the region's border is then background).

Run: PYTHONPATH=. python -m tests.benchmarks.segment_quality [--quick]
(the phantoms' seeds 101 and 102 are used by no test and no default).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage

from demo_models.interactive_user import Click, dice, next_click, structures
from viewer.labels.grow import RegionGrower, SeedGrower
from viewer.labels.model import LabelError

HELD_OUT_SEEDS = (101, 102)
MAX_CLICKS = 20
REPORT_AT = (1, 3, 5)


def run_click_to_segment(image, spacing, truth) -> list[float]:
    """Each click refines the segmentation (``RegionGrower.refine``): a positive click at
    its border takes the border it missed, a negative one carves what it is on."""
    grower = RegionGrower(image, spacing)
    pred = np.zeros(truth.shape, np.uint8)
    scores = []
    for _ in range(MAX_CLICKS):
        click = next_click(pred == 1, truth, spacing)
        if click is None:
            scores.append(1.0)
            continue
        grown = grower.refine(click.zyx, pred, 1, click.positive, tolerance=2.5)
        change = pred[grown.region]
        change[grown.mask] = 1 if click.positive else 0
        scores.append(dice(pred == 1, truth))
    return scores


def run_click_to_segment_replacing(image, spacing, truth) -> list[float]:
    """The first release, kept to compare: every click grows from its own neighbourhood's
    band alone, added (or removed) whole."""
    grower = RegionGrower(image, spacing)
    pred = np.zeros(truth.shape, bool)
    scores = []
    for _ in range(MAX_CLICKS):
        click = next_click(pred, truth, spacing)
        if click is None:
            scores.append(1.0)
            continue
        grown = grower.grow(click.zyx, tolerance=2.5).full(truth.shape)
        pred = pred | grown if click.positive else pred & ~grown
        scores.append(dice(pred, truth))
    return scores


def stroke(click: Click, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """A user's stroke for ``click``: on the axial, coronal or sagittal slice through it where
    the error region's cross-section is largest, a cross (its row and its column through the
    click) over the error region, kept a voxel away from the region's edge."""
    err = truth & ~pred if click.positive else pred & ~truth
    comp = _component_at(err, click.zyx)
    best_axis = max(range(3), key=lambda a: int(np.take(comp, click.zyx[a], axis=a).sum()))
    section = np.take(comp, click.zyx[best_axis], axis=best_axis)
    inner = ndimage.binary_erosion(section) if section.sum() > 9 else section
    r, c = (v for a, v in enumerate(click.zyx) if a != best_axis)
    cross = np.zeros(section.shape, bool)
    cross[r, :] = _run_through(inner[r, :], c)
    cross[:, c] |= _run_through(inner[:, c], r)
    cross[r, c] = True
    out = np.zeros(truth.shape, bool)
    cut = [slice(None)] * 3
    cut[best_axis] = slice(click.zyx[best_axis], click.zyx[best_axis] + 1)
    out[tuple(cut)] = np.expand_dims(cross, best_axis)
    return out


def _component_at(mask: np.ndarray, zyx) -> np.ndarray:
    labels, _ = ndimage.label(mask)
    return labels == labels[zyx] if labels[zyx] else mask


def _run_through(line: np.ndarray, i: int) -> np.ndarray:
    """The run of True values of ``line`` containing index ``i``."""
    out = np.zeros(line.shape, bool)
    if not line[i]:
        return out
    lo, hi = i, i
    while lo > 0 and line[lo - 1]:
        lo -= 1
    while hi + 1 < len(line) and line[hi + 1]:
        hi += 1
    out[lo : hi + 1] = True
    return out


def run_grow_from_seeds(image, spacing, truth) -> list[float]:
    grower = SeedGrower(image, spacing)
    seeds = np.zeros(truth.shape, np.uint8)
    pred = np.zeros(truth.shape, bool)
    scores = []
    for _ in range(MAX_CLICKS):
        click = next_click(pred, truth, spacing)
        if click is None:
            scores.append(1.0)
            continue
        seeds[stroke(click, pred, truth)] = 1 if click.positive else 2
        try:
            result = grower.refine(seeds)
        except LabelError:
            scores.append(dice(pred, truth))
            continue
        pred = np.zeros(truth.shape, bool)
        pred[result.region] = result.values == 1
        scores.append(dice(pred, truth))
    return scores


def noc(scores: list[float], target: float = 0.9) -> str:
    for i, s in enumerate(scores, start=1):
        if s >= target:
            return str(i)
    return f">{len(scores)}"


METHODS: dict[str, Callable] = {
    "click-to-segment (3D), each click grown alone (before)": run_click_to_segment_replacing,
    "click-to-segment (3D), clicks refine": run_click_to_segment,
    "grow from seeds": run_grow_from_seeds,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one phantom, a smaller grid")
    parser.add_argument("--methods", help="only the methods whose name holds this text")
    parser.add_argument("--structures", help="comma-separated structures (default: all)")
    args = parser.parse_args(argv)
    methods = {k: v for k, v in METHODS.items() if not args.methods or args.methods in k}
    wanted = args.structures.split(",") if args.structures else None
    shape = (48, 96, 96) if args.quick else (100, 256, 256)
    seeds = HELD_OUT_SEEDS[:1] if args.quick else HELD_OUT_SEEDS
    rows: dict[tuple[str, str], list[list[float]]] = {}
    for seed in seeds:
        image, spacing, truths = structures(seed, shape)
        for method, fn in methods.items():
            for name, truth in truths.items():
                if wanted and name not in wanted:
                    continue
                t0 = time.perf_counter()
                rows.setdefault((method, name), []).append(fn(image, spacing, truth))
                print(
                    f"  phantom {seed} {method} {name}: {time.perf_counter() - t0:.1f} s",
                    file=sys.stderr,
                )
    print(f"Phantoms {list(seeds)} at {shape} (z, y, x); up to {MAX_CLICKS} clicks.\n")
    print("| method | structure | NoC@90 (per phantom) | Dice@1 | Dice@3 | Dice@5 |")
    print("|---|---|---|---|---|---|")
    for (method, name), runs in rows.items():
        nocs = ", ".join(noc(r) for r in runs)
        means = [np.mean([r[k - 1] for r in runs]) for k in REPORT_AT]
        print(f"| {method} | {name} | {nocs} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
