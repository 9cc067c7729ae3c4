"""Quality of the shipped promptable model (radlens-ct-prompt) on held-out chest phantoms:
NoC@90 and Dice after 1, 3 and 5 clicks per structure, with the same structures, phantoms
(seeds 101 and 102, used by no training) and simulated user as
tests/benchmarks/segment_quality.py (each next click at the centre of the largest error,
positive when missed structure, negative when wrongly included); each click runs the model
with all clicks so far and its previous answer. Also the Dice of one box (the structure's
bounding box) alone and of one scribble alone, how many clicks made the mask worse (Dice down by more than 0.005), and
with ``--compare`` the model-free click-to-segment (clicks refine) on the same phantoms and
clicks, in the same table.

Run: PYTHONPATH=. python -m tests.benchmarks.prompt_quality [--quick] [--clicks N] [--compare]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from inference.engine import Engine
from inference.interactive import Prompts, mask_of, segment_with_prompts
from inference.registry import find_model
from tests.benchmarks import segment_quality
from tests.benchmarks.segment_quality import (
    HELD_OUT_SEEDS,
    REPORT_AT,
    dice,
    next_click,
    noc,
    structures,
)

MODEL = "radlens-ct-prompt"


def run_clicks(engine, card, image, spacing, truth, clicks: int) -> list[float]:
    pos: list[tuple[int, ...]] = []
    neg: list[tuple[int, ...]] = []
    pred = np.zeros(truth.shape, bool)
    scores = []
    for _ in range(clicks):
        click = next_click(pred, truth, spacing)
        if click is None:
            scores.append(1.0)
            continue
        (pos if click.positive else neg).append(click.zyx)
        if pos:
            prompts = Prompts(tuple(pos), tuple(neg), focus=click.zyx)  # type: ignore[arg-type]
            res = segment_with_prompts(engine, image, spacing, "CT", card, prompts, previous=pred)
            pred = mask_of(res)
        scores.append(dice(pred, truth))
    return scores


def run_scribble(engine, card, image, spacing, truth) -> float:
    """One scribble alone: the cross through the structure's centre on the slice where its
    section is largest (segment_quality's stroke: what grow from seeds is given)."""
    empty = np.zeros(truth.shape, bool)
    click = next_click(empty, truth, spacing)
    voxels = np.argwhere(segment_quality.stroke(click, empty, truth))
    prompts = Prompts(scribble_positive=tuple(map(tuple, voxels.astype(float))))
    res = segment_with_prompts(engine, image, spacing, "CT", card, prompts)
    return dice(mask_of(res), truth)


def run_box(engine, card, image, spacing, truth) -> float:
    idx = np.argwhere(truth)
    box = (*idx.min(0).tolist(), *idx.max(0).tolist())
    res = segment_with_prompts(engine, image, spacing, "CT", card, Prompts(box=box))
    return dice(mask_of(res), truth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one phantom, a smaller grid")
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", action="store_true", help="click-to-segment beside it")
    parser.add_argument("--model", default=MODEL, help="another installed model's id")
    parser.add_argument(
        "--seeds", type=int, nargs="+",
        help="other phantoms (e.g. validation seeds 201 202 to choose between candidate weights;"
        " the held-out 101 and 102 are for the reported table only)",
    )  # fmt: skip
    parser.add_argument("--package", help="a model package folder (a candidate, not installed)")
    parser.add_argument(
        "--focus", choices=("card", "on", "off"), default="card",
        help="keep only the changes connected to the newest click (default: as the card says)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    shape = (48, 96, 96) if args.quick else (100, 256, 256)
    seeds = HELD_OUT_SEEDS[:1] if args.quick else HELD_OUT_SEEDS
    if args.seeds:
        seeds = tuple(args.seeds)
    if args.package:
        from inference.card import ModelCard
        from inference.weights import verify_files

        card = ModelCard.load(args.package)
        verify_files(card)
    else:
        card = find_model(args.model)
    if args.focus != "card":
        block = {**card.inference.get("interactive", {}), "focus": args.focus == "on"}
        card = dataclasses.replace(card, inference={**card.inference, "interactive": block})
    engine = Engine(device="cpu", num_threads=args.threads)
    rows: dict[str, list[list[float]]] = {}
    grown: dict[str, list[list[float]]] = {}
    boxes: dict[str, list[float]] = {}
    scribbles: dict[str, list[float]] = {}
    per_click: list[float] = []
    for seed in seeds:
        image, spacing, truths = structures(seed, shape)
        for name, truth in truths.items():
            t0 = time.perf_counter()
            rows.setdefault(name, []).append(
                run_clicks(engine, card, image, spacing, truth, args.clicks)
            )
            per_click.append((time.perf_counter() - t0) / args.clicks)
            boxes.setdefault(name, []).append(run_box(engine, card, image, spacing, truth))
            scribbles.setdefault(name, []).append(run_scribble(engine, card, image, spacing, truth))
            print(f"  phantom {seed} {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            if args.compare:
                segment_quality.MAX_CLICKS = args.clicks
                grown.setdefault(name, []).append(
                    segment_quality.run_click_to_segment(image, spacing, truth)
                )
    print(
        f"{card.id} (focus {args.focus}): phantoms {list(seeds)} at {shape} (z, y, x); up to"
        f" {args.clicks} clicks;"
        f" {np.mean(per_click):.2f} s per click on average (CPU, {args.threads} threads).\n"
    )
    print(
        "| method | structure | NoC@90 (per phantom) | Dice@1 | Dice@3 | Dice@5 |"
        f" Dice@{args.clicks} | clicks making it worse | Dice, one box | Dice, one scribble |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method, table in (("promptable model", rows), ("click-to-segment", grown)):
        for name, runs in table.items():
            nocs = ", ".join(noc(r) for r in runs)
            means = [
                np.mean([r[min(k, len(r)) - 1] for r in runs]) for k in (*REPORT_AT, args.clicks)
            ]
            cells = " | ".join(f"{m:.3f}" for m in means)
            worse = sum(worse_clicks(r) for r in runs)
            alone = (
                f"{np.mean(boxes[name]):.3f} | {np.mean(scribbles[name]):.3f}"
                if table is rows
                else "- | -"
            )
            print(f"| {method} | {name} | {nocs} | {cells} | {worse} | {alone} |")
    return 0


def worse_clicks(scores: list[float], by: float = 0.005) -> int:
    """Clicks after which the Dice fell by more than ``by``."""
    return sum(1 for a, b in zip(scores[:-1], scores[1:], strict=True) if b < a - by)


if __name__ == "__main__":
    raise SystemExit(main())
