"""The card of a new model trained from scratch: architecture, preprocessing and labels per task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.training.dataset import Dataset, DatasetError, TrainingCase
from inference.training.package import slug

CT_WINDOW = {"op": "clip_scale", "a_min": -1000, "a_max": 400, "b_min": 0.0, "b_max": 1.0}
COLOURS = ["#4fc3f7", "#ff7043", "#81c784", "#ba68c8", "#ffd54f", "#e57373"]


def training_metric(task: str, has_validation: bool) -> tuple[str, bool]:
    """(metric that picks the best epoch, higher is better)."""
    if not has_validation:
        return "train_loss", False
    return {
        "segmentation": ("val_dice", True),
        "detection": ("val_froc", True),
        # AUC ranks every threshold; accuracy ties for epochs that all predict one class.
        "classification": ("val_auc", True),
    }[task]


#: card fields a template keeps: everything that describes the network and its input, not
#: what a training run or a package fills in (files, metrics, training).
TEMPLATE_DROPS = ("files", "metrics", "training")


def card_from_template(opts: Any, template: dict[str, Any]) -> dict[str, Any]:
    """A new model's card from a template card (``--card``): its network, spacing,
    preprocessing, labels and thresholds are kept, the weights are trained from scratch.
    ``--id``, ``--name``, ``--version`` and ``--patch`` override the template's."""
    if template.get("task") != opts.task:
        raise DatasetError(f"the template card is for {template.get('task')!r}, not {opts.task!r}")
    card = {k: v for k, v in template.items() if k not in TEMPLATE_DROPS}
    card["id"] = opts.model_id or str(template.get("id") or slug(opts.out.name))
    card["name"] = opts.name or str(template.get("name") or card["id"])
    card["version"] = opts.version
    # How the template says to draw samples (``inference.training.sampling``) and to schedule
    # the learning rate (``inference.training.schedule``) is a recipe, not a record of an old
    # run: both are kept.
    recipe = {
        k: v
        for k, v in (template.get("training") or {}).items()
        if k in ("sampling", "lr_schedule") and v is not None
    }
    if recipe:
        card["training"] = recipe
    if opts.patch_size:
        if len(opts.patch_size) != int(card["spatial_dims"]):
            raise DatasetError(f"--patch needs {card['spatial_dims']} numbers")
        card["patch_size"] = list(opts.patch_size)
    return card


def _dims(cases: Sequence[TrainingCase]) -> int:
    _, geo = cases[0].load_image()
    return 2 if geo.shape[0] == 1 else 3


def new_card(opts: Any, ds: Dataset, train_cases: Sequence[TrainingCase]) -> dict[str, Any]:
    """A complete model.json (minus weights hashes) for a network trained from scratch."""
    task = opts.task
    dims = _dims(train_cases)
    modalities = sorted({c.modality for c in ds.cases})
    steps = [CT_WINDOW] if modalities == ["CT"] else [{"op": "zscore"}]
    labels: list[dict[str, Any]] = [
        {"index": i, "name": n, "color": COLOURS[(i - 1) % len(COLOURS)]}
        for i, n in sorted(ds.labels.items())
    ]
    patch = (
        list(opts.patch_size) if opts.patch_size else ([64, 64, 32] if dims == 3 else [128, 128])
    )
    if len(patch) != dims:
        raise DatasetError(f"--patch needs {dims} numbers (x, y{', z' if dims == 3 else ''})")
    strides = [2, 2, 2] if dims == 3 else [2, 2, 2, 2]
    card: dict[str, Any] = {
        "schema_version": 1,
        "id": opts.model_id or slug(opts.out.name),
        "name": opts.name or f"{task.capitalize()} model trained on {ds.root.name}",
        "version": opts.version,
        "task": task,
        "spatial_dims": dims,
        "modalities": modalities,
        "body_part": "ANY",
        "input_channels": 1,
        "target_spacing": None,
        "patch_size": patch,
        "preprocessing": {"steps": steps},
        "labels": labels,
        "thresholds": {},
        "inference": {"sw_batch_size": 2, "overlap": 0.25, "mode": "gaussian"},
        "intended_use": (
            "Trained with the RadLens training station on a local dataset; research use only, "
            "not for diagnosis."
        ),
    }
    if task == "segmentation":
        if not labels:
            raise DatasetError(f"{ds.root}: segmentation needs a label table (label_table.json)")
        n_out = max(e["index"] for e in labels) + 1
        card["network"] = {
            "architecture": "monai.UNet",
            "kwargs": {
                "spatial_dims": dims,
                "in_channels": 1,
                "out_channels": n_out,
                "channels": [8, 16, 32, 64][: len(strides) + 1]
                if dims == 3
                else [8, 16, 32, 64, 128],
                "strides": strides,
                "num_res_units": 1,
            },
            "output": "softmax",
        }
        card["thresholds"] = {"min_component_voxels": 10}
    elif task == "detection":
        if dims != 3:
            raise DatasetError(f"{ds.root}: detection training needs 3D volumes")
        card["network"] = {
            "architecture": "radlens.CenterNetUNet",
            "kwargs": {
                "spatial_dims": 3,
                "in_channels": 1,
                "out_channels": 4,
                "channels": [16, 32, 64],
                "strides": [2, 2],
                "num_res_units": 1,
            },
            "output": "centernet",
        }
        card["thresholds"] = {"score": 0.3, "nms_iou": 0.1}
        # One centre heat-map channel: a single class, the one the boxes carry. The engine
        # names every box after labels[0], so that must be it.
        box_labels = sorted({lab for c in ds.cases for lab in c.box_labels})
        if not box_labels:
            raise DatasetError(
                f"{ds.root}: detection training needs boxes (annotations.json); none were found"
            )
        if len(box_labels) > 1:
            names = ", ".join(ds.labels.get(i, str(i)) for i in box_labels)
            raise DatasetError(
                f"{ds.root}: boxes of several labels ({names}); the detector learns one class"
            )
        index = box_labels[0]
        card["labels"] = [
            {"index": index, "name": ds.labels.get(index, "finding"), "color": COLOURS[1]}
        ]
    elif task == "classification":
        if dims != 2:
            raise DatasetError(f"{ds.root}: classification training needs 2D images")
        finding = labels[0]["name"] if len(labels) == 1 else "finding"
        card["classes"] = ["normal", finding]
        card["patch_size"] = None
        card["preprocessing"] = {
            "steps": [{"op": "minmax"}, {"op": "resize", "size": patch}],
        }
        card["network"] = {
            "architecture": "monai.DenseNet",
            "kwargs": {
                "spatial_dims": 2,
                "in_channels": 1,
                "out_channels": 2,
                "init_features": 16,
                "growth_rate": 8,
                "block_config": [2, 2, 2],
            },
            "output": "softmax",
        }
        card["gradcam_layer"] = "features.denseblock3"
        card["thresholds"] = {"score": 0.5}
    else:
        raise DatasetError(f"unknown task {task!r} (segmentation, detection, classification)")
    return card
