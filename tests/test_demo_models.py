"""The shipped demo model packages and the script that trains them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from inference.networks import ARCHITECTURES, build_network
from inference.paths import shipped_models_dir
from inference.phantoms import LUNG, Nodule, chest_ct
from inference.training import demo, demo_eval, phantom_data

SHIPPED = ("radlens-ct-chest-seg",)
PRODUCED = ("radlens-ct-chest-seg", "radlens-ct-nodule-det", "radlens-cxr-nodule-cls")
REQUIRED = (
    "schema_version", "id", "name", "version", "task", "spatial_dims", "modalities",
    "body_part", "input_channels", "target_spacing", "patch_size", "preprocessing",
    "labels", "network", "files", "training", "metrics", "intended_use",
)  # fmt: skip


def load_package(pkg: Path):
    """Check a package the way the engine will, and return (card, network in eval mode)."""
    import torch
    from safetensors.torch import load as load_safetensors

    card = json.loads((pkg / "model.json").read_text())
    missing = [k for k in REQUIRED if k not in card]
    assert not missing, f"{pkg}: card lacks {missing}"
    assert card["id"] == pkg.name
    assert "synthetic" in card["intended_use"] and "not for diagnosis" in card["intended_use"]
    assert card["network"]["architecture"] in ARCHITECTURES
    blob = (pkg / card["network"]["weights"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == card["files"][card["network"]["weights"]]
    net = build_network(card["network"]["architecture"], card["network"]["kwargs"])
    net.load_state_dict(load_safetensors(blob), strict=True)
    assert all(t.dtype in (torch.float32, torch.float16) for t in net.state_dict().values()
               if t.is_floating_point())  # fmt: skip
    metrics = json.loads((pkg / "metrics.json").read_text())
    assert metrics["id"] == card["id"] and metrics["n_cases"] == card["metrics"]["n_cases"]
    return card, net.eval()


def _input_shape(card: dict) -> tuple[int, ...]:
    return (1, card["input_channels"], *card["patch_size"][::-1])


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_package_loads_into_allow_listed_network(model_id):
    import torch

    card, net = load_package(shipped_models_dir() / model_id)
    with torch.no_grad():
        out = net(torch.zeros(_input_shape(card)))
    if card["task"] == "classification":
        assert out.shape == (1, len(card["classes"]))
        assert dict(net.named_modules())[card["gradcam_layer"]] is not None
    else:
        channels = 3 if card["task"] == "segmentation" else 1 + card["spatial_dims"]
        assert out.shape == (1, channels, *card["patch_size"][::-1])
    size_mb = (shipped_models_dir() / model_id / "model.safetensors").stat().st_size / 1e6
    assert size_mb < 5.0


def test_shipped_segmenter_finds_lung_where_the_phantom_has_lung():
    card, net = load_package(shipped_models_dir() / "radlens-ct-chest-seg")
    spacing = tuple(card["target_spacing"])
    ct = chest_ct(phantom_data.shape_for_spacing(spacing), spacing=spacing, seed=4242)
    step = card["preprocessing"]["steps"][0]
    x = phantom_data.clip_scale(ct.hu, step["a_min"], step["a_max"])
    mid = ct.hu.shape[0] // 2  # one patch-high slab through the middle: enough for a coarse check
    half = card["patch_size"][2] // 2
    slab = slice(mid - half, mid + half)
    pred = demo_eval.sliding_window(net, x[slab], card["patch_size"][::-1]).argmax(0)
    assert demo_eval.dice(pred == LUNG, ct.labels[slab] == LUNG) > 0.8


def test_quick_demo_training_writes_valid_packages(tmp_path):
    results = demo.run(list(demo.TASKS), tmp_path, quick=True, log=lambda _msg: None)
    assert set(results) == set(demo.TASKS)
    for model_id in PRODUCED:
        card, _net = load_package(tmp_path / model_id)
        assert card["training"]["script"].startswith("python -m inference.training.demo")
        assert (tmp_path / model_id / "README.md").read_text().count("not for diagnosis") == 1


def test_centernet_targets_peak_at_the_nodule_centre_with_its_size():
    nodule = Nodule(center_zyx=(5.0, 10.0, 12.0), radius_mm=4.0)
    t = phantom_data.centernet_targets((12, 24, 24), [nodule], (2.0, 2.0, 4.0))
    assert np.unravel_index(t.heat.argmax(), t.heat.shape) == (5, 10, 12)
    assert t.heat[5, 10, 12] == 1.0 and (t.heat == 1.0).sum() == 1
    assert np.allclose(t.size[:, 5, 10, 12], [2.0, 4.0, 4.0])
    assert t.size_mask[5, 10, 12] == 1.0 and t.size_mask[0, 0, 0] == 0.0


def test_decoded_centernet_box_is_a_hit_and_a_far_box_is_not():
    out = np.full((4, 12, 24, 24), -6.0, dtype=np.float32)
    out[0, 5, 10, 12] = 4.0
    out[1:, 5, 10, 12] = [2.0, 4.0, 4.0]
    boxes, scores = demo_eval.decode_centernet(out, score_threshold=0.5)
    assert boxes.shape == (1, 6) and scores[0] > 0.9
    assert np.allclose(boxes[0], [4, 8, 10, 6, 12, 14])
    truth = np.array([[4.0, 8.0, 10.0, 6.0, 12.0, 14.0], [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]])
    hits, n_true = demo_eval.match_detections(boxes, scores, truth)
    assert hits.tolist() == [True] and n_true == 2


def test_sensitivity_at_fp_stops_before_too_many_false_positives():
    # two volumes, one nodule each; a 0.9 hit, a 0.8 false positive, a 0.3 hit
    per_volume = [
        (np.array([0.9, 0.8]), np.array([True, False]), 1),
        (np.array([0.3]), np.array([True]), 1),
    ]
    assert demo_eval.sensitivity_at_fp(per_volume, 0.5) == (1.0, 0.3)
    assert demo_eval.sensitivity_at_fp(per_volume, 0.0) == (0.5, 0.9)


def test_roc_auc_counts_ties_as_half():
    assert demo_eval.roc_auc([0.1, 0.9, 0.5, 0.5], [0, 1, 0, 1]) == pytest.approx(0.875)
