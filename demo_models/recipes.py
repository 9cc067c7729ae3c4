"""The recipes of the three shipped demo models: card, data and schedule, nothing else.

A recipe is what ``python -m demo_models train`` hands to the trainer users run
(``inference.training.train.train`` = ``radlens train``): the model card to train from
scratch (network, spacing, preprocessing, labels, thresholds: ``radlens train --card``), the
phantom seeds to write as its dataset, and the schedule (epochs, steps, batch, learning
rate, seed, training crop). ``quick`` recipes shrink everything for tests of the pipeline.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from demo_models.data import NATIVE_SHAPES

TASKS = ("segmentation", "detection", "classification")
IDS = {
    "segmentation": "radlens-ct-chest-seg",
    "detection": "radlens-ct-nodule-det",
    "classification": "radlens-cxr-nodule-cls",
}
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
#: The classifier's finding is a 7-10 px blob 0.08-0.11 brighter than its surroundings: the
#: trainer's default intensity scale (+-10 %) and shift (+-0.05) drown it (val AUC stays at
#: 0.50), and class-balanced batches of unrelated anatomies hide it further. Each seed is one
#: patient imaged without and with a nodule; whole patients in a batch leave the nodule as the
#: only difference (val AUC 0.94 after 400 steps in a probe).
CLS_SAMPLING: dict[str, Any] = {"intensity": False, "group_by_patient": True}
#: Crops centred on background, lung and nodule 1:2:2: with "foreground or not" the crops
#: centre on the lungs and nodule Dice stayed 0.0 (the old demo loop centred half its crops
#: on nodules, and had no intensity augmentation either).
SEG_SAMPLING: dict[str, Any] = {"intensity": False, "crop_class_ratios": [1, 2, 2]}
#: One cycle peaking at 3e-3 over 10 x 280 steps with 6 of the 24 patients held out to pick
#: the best epoch: held out lung 0.9865 / nodule 0.666 (the old demo loop's weights, one cycle
#: over 10 x 140 steps: lung 0.9868 / nodule 0.638; a constant 1e-3 for 12 x 140 steps gave
#: lung 0.985 / nodule 0.641, its best epoch still moving from run to run).
SEG_SCHEDULE = "one_cycle"
#: The detector as the old demo loop trained it (sensitivity 1.0 at 1 FP/volume held out):
#: one cycle peaking at 3e-3 over 10 x 200 steps, no intensity augmentation (a nodule is a
#: density; the scanner looks already vary per seed), two of three crops on a nodule centre.
DET_SAMPLING: dict[str, Any] = {"intensity": False}
DET_SCHEDULE = "one_cycle"
CT_STEPS = [{"op": "clip_scale", "a_min": -1000, "a_max": 400, "b_min": 0.0, "b_max": 1.0}]


@dataclass
class Recipe:
    task: str
    spacing_xyz: tuple[float, float, float] | None
    patch_xyz: tuple[int, ...]
    kwargs: dict[str, Any]
    #: the trainer's schedule: epochs x steps_per_epoch optimiser steps of ``batch`` crops
    #: (3D: of one case) or images (2D)
    epochs: int
    steps_per_epoch: int
    batch: int
    lr: float
    train_seeds: list[int]
    test_seeds: list[int]
    val_seeds: list[int] = field(default_factory=list)
    seed: int = 0
    #: patients the trainer holds out to pick the best epoch (hash split)
    val_fraction: float = 0.1
    #: nodules per training phantom and their radius (mm)
    n_nodules: tuple[int, int] = (2, 6)
    nodule_radius_mm: tuple[float, float] = (3.0, 9.0)
    #: (z, y, x) of the held-out CT phantoms, run through the engine at their own resolution
    eval_shape: tuple[int, int, int] = (96, 256, 256)
    #: training crop (x, y, z) when smaller than the inference patch (``radlens train --crop``)
    crop_xyz: tuple[int, ...] | None = None
    #: a fixed native grid for the training phantoms (quick recipes); None: per seed
    native: tuple[int, int, int] | None = None
    #: how the trainer draws and perturbs samples (``radlens train``: the card's
    #: ``training.sampling``); see ``inference.training.sampling``
    sampling: dict[str, Any] = field(default_factory=dict)
    #: the trainer's learning-rate schedule (the card's ``training.lr_schedule``); None: the
    #: task's default (``inference.training.schedule``)
    lr_schedule: str | None = None

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def recipes(quick: bool) -> dict[str, Recipe]:
    """Geometry, network, data and schedule of each model; ``quick`` shrinks everything."""
    if quick:
        small3d = {"channels": [4, 8], "strides": [2], "num_res_units": 0}
        tiny = (24, 48, 48)
        return {
            "segmentation": Recipe(
                "segmentation", (10.0, 10.0, 20.0), (16, 16, 8), {**_seg_kwargs(), **small3d},
                1, 2, 1, 1e-3, [0], [1000], eval_shape=(16, 32, 32), native=tiny,
                sampling=SEG_SAMPLING, lr_schedule=SEG_SCHEDULE,
            ),
            "detection": Recipe(
                "detection", (10.0, 10.0, 20.0), (16, 16, 8), {**_det_kwargs(), **small3d},
                1, 2, 1, 1e-3, [0], [1000], [5000], eval_shape=(16, 32, 32), native=tiny,
                n_nodules=(3, 8), nodule_radius_mm=(2.5, 9.0), sampling=DET_SAMPLING,
                lr_schedule=DET_SCHEDULE,
            ),
            "classification": Recipe(
                "classification", None, (32, 32), {**_cls_kwargs(), "block_config": [1, 1]},
                1, 2, 4, 1e-3, [0, 1], [10000, 10001], val_fraction=0.5, sampling=CLS_SAMPLING,
            ),
        }  # fmt: skip
    return {
        "segmentation": Recipe(
            "segmentation", (2.5, 2.5, 5.0), (64, 64, 32), _seg_kwargs(), 10, 280, 2, 3e-3,
            list(range(0, 24)), list(range(1000, 1010)), sampling=SEG_SAMPLING,
            lr_schedule=SEG_SCHEDULE, val_fraction=0.25,
        ),
        "detection": Recipe(
            "detection", (2.0, 2.0, 3.0), (96, 96, 32), _det_kwargs(), 10, 200, 2, 3e-3,
            list(range(0, 40)), list(range(1000, 1010)), list(range(5000, 5005)),
            n_nodules=(3, 8), nodule_radius_mm=(2.5, 9.0), crop_xyz=(64, 64, 32),
            sampling=DET_SAMPLING, lr_schedule=DET_SCHEDULE,
        ),
        "classification": Recipe(
            "classification", None, (128, 128), _cls_kwargs(), 10, 60, 32, 3e-3,
            list(range(0, 600)), list(range(10000, 10200)), sampling=CLS_SAMPLING,
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


def card_for(cfg: Recipe, metrics: dict[str, Any], seconds: float) -> dict:
    """The model.json of a demo model: with empty metrics and no time, the template the
    trainer starts from (``files`` is filled in when writing)."""
    task = cfg.task
    common: dict[str, Any] = {
        "schema_version": 1,
        "version": "1.0.0",
        "input_channels": 1,
        "target_spacing": list(cfg.spacing_xyz) if cfg.spacing_xyz else None,
        "patch_size": list(cfg.patch_xyz),
        "inference": {"sw_batch_size": 4, "overlap": 0.25, "mode": "gaussian"},
        "training": {
            "script": f"python -m demo_models train --task {task}",
            "parent": None,
            "date": datetime.date.today().isoformat(),
            "seconds": round(seconds, 1),
            "trainer": "inference.training.train (radlens train --card ... --crop ...)",
            "seed": cfg.seed,
            "epochs": cfg.epochs,
            "steps": cfg.steps,
            "batch_size": cfg.batch,
            "lr": cfg.lr,
            **({"sampling": cfg.sampling} if cfg.sampling else {}),
            **({"lr_schedule": cfg.lr_schedule} if cfg.lr_schedule else {}),
        },
        "metrics": metrics,
        "intended_use": INTENDED_USE,
    }
    spacing = "x".join(f"{s:g}" for s in cfg.spacing_xyz or ())
    natives = ", ".join("x".join(str(n) for n in shape) for shape in NATIVE_SHAPES)
    lo, hi = cfg.n_nodules
    r0, r1 = cfg.nodule_radius_mm
    ct_data = (
        "Synthetic chest CT phantoms from phantoms/chest.py chest_ct(), seeds "
        f"{cfg.train_seeds[0]}-{cfg.train_seeds[-1]} (one patient each; the trainer holds out "
        f"{cfg.val_fraction:.0%} of them to pick the best epoch), written on a native grid "
        f"({natives} voxels z x y x x, about 350 x 350 x 300 mm) and resampled to {spacing} mm "
        "by the trainer with the engine's own linear resampling (labels: nearest); "
        f"{lo}-{hi} nodules of radius {r0:g}-{r1:g} mm each; noise, contrast, lung and nodule "
        "density varied per seed; random crops, " + _crops(cfg) + "."
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
            "training": {**common["training"], "data": ct_data},
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
            f"phantoms/chest.py chest_radiograph({cfg.patch_xyz[0]}), seeds "
            f"{cfg.train_seeds[0]}-{cfg.train_seeds[-1]}, each seed once without and once "
            "with a nodule (radius 9-16 mm) as one patient; batches of whole patients (both "
            "images of a seed together); random left-right flips, no intensity augmentation.",
        },
    }


def _crops(cfg: Recipe) -> str:
    ratios = cfg.sampling.get("crop_class_ratios")
    text = (
        "centred on background, lung and nodule in the ratio " + ":".join(f"{r:g}" for r in ratios)
        if ratios and cfg.task == "segmentation"
        else "two of three centred on foreground"
    )
    return text + ("" if cfg.sampling.get("intensity", True) else "; no intensity augmentation")


def _network(architecture: str, kwargs: dict, output: str) -> dict[str, Any]:
    return {
        "format": "safetensors",
        "architecture": architecture,
        "kwargs": kwargs,
        "weights": "model.safetensors",
        "output": output,
    }
