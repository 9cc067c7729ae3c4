"""Train the shipped demo models with the trainer users run, and write their packages.

    python -m demo_models train [--task segmentation|detection|classification|all]
                                [--out resources/models] [--work DIR] [--quick]

For each model: write its phantoms as a dataset (``demo_models.data``), train it from scratch
with ``inference.training.train.train`` (what ``radlens train --card CARD --crop ...`` runs)
following its recipe (``demo_models.recipes``), measure it on held-out phantoms through the
engine (``demo_models.evaluate``) and write the package with those numbers. Offline and
seeded: the same command on the same CPU gives bit-identical weights. ``--quick`` trains two
steps on tiny phantoms (for tests of the pipeline only).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from demo_models import data as demo_data
from demo_models import evaluate as demo_eval
from demo_models.calibrate import calibrate
from demo_models.recipes import IDS, TASKS, Recipe, card_for, recipes
from radlens_core.files import atomic_write_text

Log = Callable[[str], None]


def write_package(out_dir: Path, card: dict[str, Any], state_dict: dict[str, Any]) -> Path:
    """Write model.safetensors + model.json (hashed and validated by the engine's card
    validator), metrics.json and README.md into ``out_dir/<id>``, each atomically."""
    from inference.training.package import write_package as write_weights_and_card

    card = {k: card[k] for k in sorted(card, key=_key_rank)}  # the order of the format's README
    pkg = write_weights_and_card(Path(out_dir) / card["id"], card, state_dict)
    written = json.loads((pkg / "model.json").read_text(encoding="utf-8"))
    metrics = {"id": card["id"], "version": card["version"], **card["metrics"]}
    atomic_write_text(pkg / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    size = (pkg / written["network"]["weights"]).stat().st_size
    atomic_write_text(pkg / "README.md", readme(written, size))
    return pkg


CARD_KEY_ORDER = (
    "schema_version", "id", "name", "version", "task", "spatial_dims", "modalities", "body_part",
    "input_channels", "target_spacing", "patch_size", "preprocessing", "labels", "thresholds",
    "inference", "network", "files", "classes", "gradcam_layer", "training", "metrics",
    "intended_use", "ood", "plausibility",
)  # fmt: skip


def _key_rank(key: str) -> int:
    return CARD_KEY_ORDER.index(key) if key in CARD_KEY_ORDER else len(CARD_KEY_ORDER)


def readme(card: dict[str, Any], weight_bytes: int) -> str:
    """A human-readable model card."""
    t = card["training"]
    lines = [
        f"# {card['name']}",
        "",
        f"**{card['intended_use']}**",
        "",
        f"- id / version: `{card['id']}` {card['version']}",
        f"- task: {card['task']} ({card['spatial_dims']}D), modalities {', '.join(card['modalities'])}",
        f"- network: `{card['network']['architecture']}` {json.dumps(card['network']['kwargs'])}",
        f"- weights: model.safetensors, {weight_bytes / 1e6:.2f} MB, float32",
        f"- target spacing (x, y, z mm): {card['target_spacing']}; patch: {card['patch_size']}",
        f"- training data: {t['data']}",
        f"- trained with: `{t['script']}` (the trainer `radlens train` runs) on {t['date']} "
        f"({t.get('epochs', '?')} epochs, {t['steps']} steps of {t['batch_size']}, seed "
        f"{t.get('seed', 0)}, {t['seconds']:.0f} s on CPU)",
        "",
        "## Measured on held-out phantoms",
        "",
        *[f"- {k}: {v}" for k, v in card["metrics"].items()],
        "",
        "These numbers describe synthetic phantoms only; they say nothing about real patients.",
        "",
    ]
    ood, plaus = card.get("ood") or {}, card.get("plausibility") or {}
    if ood or plaus:
        lines += ["## Checks on every result", ""]
        if ood:
            lo, hi = ood["range"]
            lines.append(
                f"- out of distribution: `{ood['score']}` outside {lo}-{hi} is flagged"
                + (f" ({ood['measured_on']})" if ood.get("measured_on") else "")
            )
        if plaus.get("measured_on"):
            lines.append(
                f"- plausibility (volumes, finding count and size): {plaus['measured_on']}"
            )
        lines.append("")
    return "\n".join(lines)


def write_dataset(r: Recipe, root: Path) -> Path:
    """The recipe's training phantoms as a dataset in the layout ``radlens train`` reads."""
    if r.task == "classification":
        return demo_data.write_radiograph_dataset(root, r.train_seeds, r.patch_xyz[0])
    return demo_data.write_ct_dataset(
        root,
        r.train_seeds,
        n_nodules=r.n_nodules,
        nodule_radius_mm=r.nodule_radius_mm,
        native=r.native,
        boxes_only=r.task == "detection",
    )


def train_recipe(r: Recipe, work: Path, log: Log, threads: int) -> tuple[dict[str, Any], dict]:
    """Train ``r`` from scratch with the users' trainer; (state dict, trainer's card)."""
    from inference.training.package import load_tensors
    from inference.training.train import TrainOptions, train

    dataset = write_dataset(r, work / "data")
    result = train(
        TrainOptions(
            dataset=dataset,
            task=r.task,
            out=work / "run",
            card=card_for(r, {}, 0.0),
            epochs=r.epochs,
            steps_per_epoch=r.steps_per_epoch,
            batch_size=r.batch,
            lr=r.lr,
            seed=r.seed,
            val_fraction=r.val_fraction,
            crop_size=r.crop_xyz,
            device="cpu",
            threads=threads,
            version="1.0.0",
            progress=lambda line: log(f"{r.task}: {line}"),
        )
    )
    trained = json.loads((result.package / "model.json").read_text(encoding="utf-8"))
    return load_tensors(result.package / "model.safetensors"), trained


def measure(r: Recipe, pkg: Path) -> dict[str, Any]:
    """Held-out metrics of the package in ``pkg``, run through the inference engine."""
    from inference.card import ModelCard

    card = ModelCard.load(pkg)
    if r.task == "segmentation":
        return demo_eval.evaluate_segmenter(card, r.test_seeds, r.eval_shape)
    if r.task == "detection":
        return demo_eval.evaluate_detector(card, r.val_seeds, r.test_seeds, r.eval_shape)
    return demo_eval.evaluate_classifier(card, r.test_seeds, r.patch_xyz[0])


def goal(task: str, metrics: dict[str, Any]) -> tuple[str, bool]:
    """The project's target for each demo model, and whether the measured metrics reach it."""
    if task == "segmentation":
        return "lung Dice >= 0.90", metrics["dice_lung"] >= 0.90
    if task == "detection":
        text = "sensitivity >= 0.90 at <= 1 false positive per volume"
        return text, metrics["sensitivity_at_1fp_per_volume"] >= 0.90
    return "ROC AUC >= 0.95", metrics["auc"] >= 0.95


def run(
    tasks: list[str],
    out: Path,
    quick: bool,
    log: Log = functools.partial(print, flush=True),
    threads: int = 2,
    eval_only: bool = False,
    work: Path | None = None,
) -> dict:
    """Train ``tasks`` (or, with ``eval_only``, take the packages already in ``out``), measure
    them on held-out phantoms through the engine and write the packages with their metrics
    under ``out``; returns {task: metrics}. Datasets and training runs go to ``work`` (a
    temporary folder, removed afterwards, when None)."""
    import torch

    from inference.card import ModelCard
    from inference.weights import load_network

    # Few threads: the machine is shared, and on a busy CPU one thread wastes far less time
    # in OpenMP spin-waits than two.
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    all_recipes = recipes(quick)
    results = {}
    with tempfile.TemporaryDirectory(prefix="radlens-demo-") as tmp:
        for task in tasks:
            r = all_recipes[task]
            if eval_only:
                # The card is rebuilt from the current recipe (only the training time is
                # kept), so this is for packages trained by this version of the script.
                old = ModelCard.load(Path(out) / IDS[task])
                state = dict(load_network(old).state_dict())
                card = card_for(r, {}, float(old.training.get("seconds", 0.0)))
                card["training"]["validation_cases"] = old.training.get("validation_cases")
            else:
                t0 = time.perf_counter()
                state, trained = train_recipe(r, Path(work or tmp) / task, log, threads)
                card = card_for(r, {}, time.perf_counter() - t0)
                card["thresholds"] = trained.get("thresholds", card["thresholds"])
                card["training"]["validation_cases"] = trained["training"]["validation_cases"]
            # Measure what the current recipe ships (its thresholds and clean-up).
            pkg = write_package(out, card, state)
            t1 = time.perf_counter()
            metrics = measure(r, pkg)
            metrics["goal"], metrics["goal_met"] = goal(task, metrics)
            metrics["eval_seconds"] = round(time.perf_counter() - t1, 1)
            card["metrics"] = metrics
            if task == "detection":
                card["thresholds"] = {**card["thresholds"], "score": metrics["score_threshold"]}
            write_package(out, card, state)
            # The OOD range and plausibility are measured on these weights, with the card's
            # final thresholds, on validation phantoms (demo_models.calibrate).
            card.update(calibrate(ModelCard.load(Path(out) / IDS[task]), quick))
            write_package(out, card, state)
            seconds = card["training"]["seconds"]
            log(f"{task}: {pkg} trained in {seconds:.0f} s; held-out {metrics}")
            results[task] = {**metrics, "train_seconds": seconds}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo_models train", description=__doc__)
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=None, help="default: resources/models")
    parser.add_argument("--work", type=Path, default=None, help="keep datasets and runs here")
    parser.add_argument("--quick", action="store_true", help="two steps on tiny data (tests)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--eval-only",
        action="store_true",
        help="re-measure the packages already in --out (trained by this script version, no "
        "training) and rewrite their cards and metrics",
    )
    args = parser.parse_args(argv)
    from radlens_core.paths import shipped_models_dir

    out = args.out or shipped_models_dir()
    tasks = list(TASKS) if args.task == "all" else [args.task]
    run(tasks, out, args.quick, threads=args.threads, eval_only=args.eval_only, work=args.work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
