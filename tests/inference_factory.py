"""Tiny model packages for inference tests: random networks saved as real packages."""

from __future__ import annotations

import numpy as np

SEG_KW = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 3,
    "channels": [4, 8],
    "strides": [2],
}


def seg_card(**over):
    card = {
        "id": "tiny-seg",
        "name": "Tiny segmenter",
        "version": "0.1",
        "task": "segmentation",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "body_part": "CHEST",
        "target_spacing": [4.0, 4.0, 4.0],
        "patch_size": [16, 16, 8],
        "preprocessing": {"steps": [{"op": "clip_scale", "a_min": -1000, "a_max": 400}]},
        "labels": [
            {"index": 1, "name": "lung", "color": "#4fc3f7"},
            {"index": 2, "name": "nodule", "color": "#ff7043"},
        ],
        "inference": {
            "sw_batch_size": 1,
            "overlap": 0.25,
            "mode": "gaussian",
            "heatmap_label": "nodule",
        },
        "network": {"architecture": "monai.UNet", "kwargs": SEG_KW, "output": "softmax"},
        "intended_use": "test only",
    }
    card.update(over)
    return card


DET_KW = {"spatial_dims": 3, "in_channels": 1, "channels": [4, 8], "strides": [2]}

CLS_KW = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 2,
    "init_features": 4,
    "growth_rate": 4,
    "block_config": [2, 2],
    "bn_size": 2,
}


def cls_card(**over):
    """The tiny 2D chest radiograph classifier (normal / nodule) over ``CLS_KW``."""
    card = {
        "id": "tiny-cls",
        "name": "Tiny classifier",
        "version": "1",
        "task": "classification",
        "spatial_dims": 2,
        "modalities": ["CR", "DX"],
        "preprocessing": {"steps": [{"op": "minmax"}, {"op": "resize", "size": [32, 32]}]},
        "network": {"architecture": "monai.DenseNet", "kwargs": CLS_KW, "output": "softmax"},
        "classes": ["normal", "nodule"],
    }
    card.update(over)
    return card


def ct_volume(shape=(20, 40, 36)):
    rng = np.random.default_rng(0)
    return rng.integers(-1000, 400, size=shape).astype(np.int16)


def save_tiny_package(folder, card: dict, architecture: str, kwargs: dict):
    """``card`` with a seeded random ``architecture(**kwargs)`` saved as a real package."""
    import torch

    from inference.networks import build_network
    from inference.weights import save_package

    torch.manual_seed(0)
    return save_package(folder, card, build_network(architecture, kwargs))


def save_seg_package(folder, **over):
    """The tiny 3D segmenter (lung, nodule) as a package; same weights every time."""
    return save_tiny_package(folder, seg_card(**over), "monai.UNet", SEG_KW)


def save_det_package(folder, **over):
    """A tiny 3D CenterNet nodule detector as a package; same weights every time."""
    card = seg_card(
        id="tiny-det",
        task="detection",
        labels=[{"index": 1, "name": "nodule", "color": "#ff7043"}],
        network={"architecture": "radlens.CenterNetUNet", "kwargs": DET_KW, "output": "centernet"},
    )
    card.update(over)
    return save_tiny_package(folder, card, "radlens.CenterNetUNet", DET_KW)
