"""Train the shipped demo models on synthetic phantoms and write their model packages.

    python -m demo_models.train [--task segmentation|detection|classification|all]
                                      [--out resources/models] [--quick]

Offline and seeded: anyone can rebuild the packages in ``resources/models`` on a CPU in
minutes. ``--quick`` trains for two steps on tiny phantoms (for tests of the pipeline only).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from demo_models import evaluate as demo_eval
from demo_models.data import NATIVE_SHAPES
from demo_models.tasks import (
    DemoConfig,
    train_classification,
    train_detection,
    train_segmentation,
)

TASKS = ("segmentation", "detection", "classification")
INTENDED_USE = (
    "Trained on synthetic data, for demonstration and pipeline validation, not for diagnosis."
)
#: The segmenter's clean-up (inference/components.py), chosen on validation phantoms (seeds
#: 5000-5004, not the test seeds): the network marks specks of "lung" along the body wall (up
#: to ~40 mL; lung HD95 36 mm there), two lungs are the anatomy. False nodule specks are as
#: small as 0.012 mL while the smallest true hit is 0.029 mL (a 3 mm nodule is 0.113 mL), so
#: 0.02 mL drops specks without losing a nodule; 0.04 mL already lost one of 12. Nodules are
#: decided on the input grid, where their true size is known (one model voxel is 0.031 mL).
SEG_COMPONENTS: dict[str, dict[str, Any]] = {
    "lung": {"keep_largest": 2, "grid": "model"},
    "nodule": {"min_ml": 0.02, "grid": "input"},
}
CT_STEPS = [{"op": "clip_scale", "a_min": -1000, "a_max": 400, "b_min": 0.0, "b_max": 1.0}]


def configs(quick: bool) -> dict[str, DemoConfig]:
    """Geometry, network and schedule of each model; ``quick`` shrinks everything."""
    if quick:
        small3d = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
        return {
            "segmentation": DemoConfig(
                (10.0, 10.0, 20.0), (16, 16, 8), {**_seg_kwargs(), **small3d}, 2, 1, 1e-3, [0], [1000],
                eval_shape=(16, 32, 32),
            ),
            "detection": DemoConfig(
                (10.0, 10.0, 20.0), (16, 16, 8), {**_det_kwargs(), **small3d}, 2, 1, 1e-3, [0], [1000], [5000],
                eval_shape=(16, 32, 32),
            ),
            "classification": DemoConfig(
                None, (32, 32), {**_cls_kwargs(), "block_config": [1, 1]}, 2, 4, 1e-3, [0, 1], [10000, 10001]
            ),
        }  # fmt: skip
    return {
        "segmentation": DemoConfig(
            (2.5, 2.5, 5.0), (64, 64, 32), _seg_kwargs(), 1400, 2, 3e-3,
            list(range(0, 24)), list(range(1000, 1010)),
        ),
        "detection": DemoConfig(
            (2.0, 2.0, 3.0), (96, 96, 32), _det_kwargs(), 2000, 2, 3e-3,
            list(range(0, 40)), list(range(1000, 1010)), list(range(5000, 5005)),
            train_patch_xyz=(64, 64, 32),
        ),
        "classification": DemoConfig(
            None, (128, 128), _cls_kwargs(), 600, 32, 3e-3,
            list(range(0, 600)), list(range(10000, 10200)),
        ),
    }  # fmt: skip


def _seg_kwargs() -> dict[str, Any]:
    return {
        "spatial_dims": 3,
        "in_channels": 1,
        "out_channels": 3,
        "channels": [8, 16, 32, 64],
        "strides": [2, 2, 2],
        "num_res_units": 1,
    }


def _det_kwargs() -> dict[str, Any]:
    return {
        "spatial_dims": 3,
        "in_channels": 1,
        "channels": [16, 32, 64, 64],
        "strides": [2, 2, 2],
        "num_res_units": 1,
    }


def _cls_kwargs() -> dict[str, Any]:
    return {
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 2,
        "init_features": 16,
        "growth_rate": 8,
        "block_config": [4, 4, 4],
    }


def card_for(task: str, cfg: DemoConfig, metrics: dict[str, Any], seconds: float) -> dict:
    """The model.json of a trained demo model (``files`` is filled in when writing)."""
    common: dict[str, Any] = {
        "schema_version": 1,
        "version": "1.0.0",
        "input_channels": 1,
        "target_spacing": list(cfg.spacing_xyz) if cfg.spacing_xyz else None,
        "patch_size": list(cfg.patch_xyz),
        "inference": {"sw_batch_size": 4, "overlap": 0.25, "mode": "gaussian"},
        "training": {
            "script": f"python -m demo_models.train --task {task}",
            "parent": None,
            "date": datetime.date.today().isoformat(),
            "seconds": round(seconds, 1),
            "steps": cfg.steps,
            "batch_size": cfg.batch,
        },
        "metrics": metrics,
        "intended_use": INTENDED_USE,
    }
    spacing = "x".join(f"{s:g}" for s in cfg.spacing_xyz or ())
    natives = ", ".join("x".join(str(n) for n in shape) for shape in NATIVE_SHAPES)
    ct_data = (
        "Synthetic chest CT phantoms from inference/phantoms.py chest_ct(), seeds "
        f"{cfg.train_seeds[0]}-{cfg.train_seeds[-1]}, generated on a native grid ({natives} "
        f"voxels z x y x x, about 350 x 350 x 300 mm) and resampled to {spacing} mm with the "
        "engine's own linear resampling (labels: nearest); 2-6 nodules of radius 3-9 mm each; "
        "noise, contrast, lung and nodule density varied per seed; random patches, a share of "
        "them centred near nodules."
    )
    if task == "segmentation":
        return {
            "id": "radlens-ct-chest-seg",
            "name": "Chest CT lung and nodule segmenter (synthetic demo)",
            "task": "segmentation",
            "spatial_dims": 3,
            "modalities": ["CT"],
            "body_part": "CHEST",
            **common,
            "preprocessing": {"steps": CT_STEPS},
            "labels": [
                {"index": 1, "name": "lung", "color": "#4fc3f7"},
                {"index": 2, "name": "nodule", "color": "#ff7043"},
            ],
            "thresholds": {"components": SEG_COMPONENTS},
            # The nodule probability is the heat map the viewer overlays.
            "inference": {**common["inference"], "heatmap_label": "nodule"},
            "network": _network("monai.UNet", cfg.kwargs, "softmax"),
            "training": {**common["training"], "data": ct_data},
        }
    if task == "detection":
        return {
            "id": "radlens-ct-nodule-det",
            "name": "Chest CT nodule detector (synthetic demo)",
            "task": "detection",
            "spatial_dims": 3,
            "modalities": ["CT"],
            "body_part": "CHEST",
            **common,
            "preprocessing": {"steps": CT_STEPS},
            "labels": [{"index": 1, "name": "nodule", "color": "#ff7043"}],
            "thresholds": {"score": metrics.get("score_threshold", 0.5), "nms_iou": 0.1},
            "network": _network("radlens.CenterNetUNet", cfg.kwargs, "centernet"),
            "training": {
                **common["training"],
                "data": ct_data.replace("2-6 nodules of radius 3-9", "3-8 nodules of radius 2.5-9"),
            },
        }
    return {
        "id": "radlens-cxr-nodule-cls",
        "name": "Chest radiograph nodule classifier (synthetic demo)",
        "task": "classification",
        "spatial_dims": 2,
        "modalities": ["CR", "DX"],
        "body_part": "CHEST",
        **common,
        "preprocessing": {
            "steps": [{"op": "resize", "size": list(cfg.patch_xyz)}, {"op": "minmax"}]
        },
        "labels": [{"index": 1, "name": "nodule", "color": "#ff7043"}],
        "thresholds": {"score": 0.5},
        "network": _network("monai.DenseNet", cfg.kwargs, "softmax"),
        "classes": ["normal", "nodule"],
        # The last transition (8 x 8 for 128 px): its raw Grad-CAM peaks near the nodule in
        # 18 of 20 held-out radiographs, the last dense block's in 10 of 20.
        "gradcam_layer": f"features.transition{len(cfg.kwargs['block_config']) - 1}",
        "training": {
            **common["training"],
            "data": "Synthetic PA chest radiographs (DRRs of chest CT phantoms) from "
            f"inference/phantoms.py chest_radiograph({cfg.patch_xyz[0]}), seeds "
            f"{cfg.train_seeds[0]}-{cfg.train_seeds[-1]}, each seed once without and once "
            "with a nodule (radius 9-16 mm), both in the same batch; random left-right flips.",
        },
    }


def _network(architecture: str, kwargs: dict, output: str) -> dict[str, Any]:
    return {
        "format": "safetensors",
        "architecture": architecture,
        "kwargs": kwargs,
        "weights": "model.safetensors",
        "output": output,
    }


def write_package(out_dir: Path, card: dict[str, Any], net) -> Path:
    """Write model.safetensors + model.json (hashed and validated by the engine's card
    validator), metrics.json and README.md into ``out_dir/<id>``, each atomically."""
    from inference.training.package import atomic_write_text
    from inference.training.package import write_package as write_weights_and_card

    card = {k: card[k] for k in sorted(card, key=_key_rank)}  # the order of the format's README
    pkg = write_weights_and_card(Path(out_dir) / card["id"], card, net.state_dict())
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
    "intended_use",
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
        f"- trained with: `{t['script']}` on {t['date']} ({t['steps']} steps, "
        f"{t['seconds']:.0f} s on CPU)",
        "",
        "## Measured on held-out phantoms",
        "",
        *[f"- {k}: {v}" for k, v in card["metrics"].items()],
        "",
        "These numbers describe synthetic phantoms only; they say nothing about real patients.",
        "",
    ]
    return "\n".join(lines)


IDS = {
    "segmentation": "radlens-ct-chest-seg",
    "detection": "radlens-ct-nodule-det",
    "classification": "radlens-cxr-nodule-cls",
}


def measure(task: str, pkg: Path, cfg: DemoConfig) -> dict[str, Any]:
    """Held-out metrics of the package in ``pkg``, run through the inference engine."""
    from inference.card import ModelCard

    card = ModelCard.load(pkg)
    if task == "segmentation":
        return demo_eval.evaluate_segmenter(card, cfg.test_seeds, cfg.eval_shape)
    if task == "detection":
        return demo_eval.evaluate_detector(card, cfg.val_seeds, cfg.test_seeds, cfg.eval_shape)
    return demo_eval.evaluate_classifier(card, cfg.test_seeds, cfg.patch_xyz[0])


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
    log: Callable[[str], None] = functools.partial(print, flush=True),
    threads: int = 2,
    eval_only: bool = False,
) -> dict:
    """Train ``tasks`` (or, with ``eval_only``, take the packages already in ``out``), measure
    them on held-out phantoms through the engine and write the packages with their metrics
    under ``out``; returns {task: metrics}."""
    import torch

    from inference.card import ModelCard
    from inference.weights import load_network

    # Few threads: the machine is shared, and on a busy CPU one thread wastes far less time
    # in OpenMP spin-waits than two.
    torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
    cfgs = configs(quick)
    trainers = {
        "segmentation": train_segmentation,
        "detection": train_detection,
        "classification": train_classification,
    }
    results = {}
    for task in tasks:
        cfg = cfgs[task]
        if eval_only:
            # The card is rebuilt from the current configuration (only the training time is
            # kept), so this is for packages trained by this version of the script.
            pkg = Path(out) / IDS[task]
            old = ModelCard.load(pkg)
            net = load_network(old)
            card = card_for(task, cfg, {}, float(old.training.get("seconds", 0.0)))
            # Measure what the current configuration ships (its thresholds and clean-up),
            # not the card on disk; the weights and their hash are unchanged.
            pkg = write_package(out, card, net)
        else:
            t0 = time.perf_counter()
            net = trainers[task](cfg, log)
            card = card_for(task, cfg, {}, time.perf_counter() - t0)
            pkg = write_package(out, card, net)
        t1 = time.perf_counter()
        metrics = measure(task, pkg, cfg)
        metrics["goal"], metrics["goal_met"] = goal(task, metrics)
        metrics["eval_seconds"] = round(time.perf_counter() - t1, 1)
        card["metrics"] = metrics
        if task == "detection":
            card["thresholds"] = {**card["thresholds"], "score": metrics["score_threshold"]}
        write_package(out, card, net)
        log(f"{task}: {pkg} trained in {card['training']['seconds']:.0f} s; held-out {metrics}")
        results[task] = {**metrics, "train_seconds": card["training"]["seconds"]}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo_models.train", description=__doc__)
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=None, help="default: resources/models")
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
    run(tasks, out, args.quick, threads=args.threads, eval_only=args.eval_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
