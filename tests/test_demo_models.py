"""The shipped demo model packages and the script that trains them (with the users' trainer)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from demo_models import data as phantom_data
from demo_models import evaluate as demo_eval
from demo_models import recipes
from demo_models import train as demo
from inference.card import ModelCard
from inference.networks import ARCHITECTURES
from inference.training import metrics as M
from phantoms.chest import LUNG, NODULE, chest_ct
from radlens_core.paths import shipped_models_dir

SHIPPED = ("radlens-ct-chest-seg", "radlens-ct-nodule-det", "radlens-cxr-nodule-cls")


def load_package(pkg: Path):
    """Check a package the way the engine will (card, hashes, weights), return (card, net)."""
    import torch

    from inference.weights import load_network

    card = ModelCard.load(pkg)  # validates every field
    assert card.id == pkg.name
    assert "synthetic" in card.intended_use and "not for diagnosis" in card.intended_use
    assert card.network["architecture"] in ARCHITECTURES
    for field in ("data", "script", "date"):
        assert card.training[field]
    net = load_network(card)  # checks the SHA-256 and loads with strict=True
    assert all(
        t.dtype in (torch.float32, torch.float16)
        for t in net.state_dict().values()
        if t.is_floating_point()
    )
    metrics = json.loads((pkg / "metrics.json").read_text())
    assert metrics["id"] == card.id and metrics["n_cases"] == card.metrics["n_cases"] > 0
    return card, net.eval()


@pytest.mark.parametrize("model_id", SHIPPED)
def test_shipped_package_loads_into_allow_listed_network(model_id):
    import torch

    card, net = load_package(shipped_models_dir() / model_id)
    with torch.no_grad():
        out = net(torch.zeros(1, card.input_channels, *card.patch_size[::-1]))
    if card.task == "classification":
        assert out.shape == (1, len(card.classes))
        assert card.gradcam_layer in dict(net.named_modules())
    else:
        channels = 1 + len(card.labels) if card.task == "segmentation" else 1 + card.spatial_dims
        assert out.shape == (1, channels, *card.patch_size[::-1])
    assert (shipped_models_dir() / model_id / "model.safetensors").stat().st_size < 5e6


def test_shipped_segmenter_finds_lung_where_the_phantom_has_lung():
    from inference.engine import Engine

    card = ModelCard.load(shipped_models_dir() / "radlens-ct-chest-seg")
    spacing = card.target_spacing
    ct = chest_ct(phantom_data.shape_for_spacing(spacing), spacing=spacing, seed=4242)
    slab = slice(ct.hu.shape[0] // 2 - 12, ct.hu.shape[0] // 2 + 12)  # a central slab is enough
    res = Engine(device="cpu").run(ct.hu[slab], spacing, np.eye(3), "CT", card)
    pred = res.label_map.array
    assert pred.shape == ct.hu[slab].shape
    assert M.dice(pred == LUNG, ct.labels[slab] == LUNG) > 0.8
    assert ndimage.label(pred == LUNG)[1] <= 2  # the card keeps the two largest lung parts


def test_shipped_segmenter_minimum_nodule_size_keeps_a_3mm_nodule():
    from inference import components
    from inference.tasks.segment import component_rules

    card = ModelCard.load(shipped_models_dir() / "radlens-ct-chest-seg")
    rules = component_rules(card)
    assert any(r.index == NODULE and (r.min_size or r.min_voxels) for r in rules)
    ct = chest_ct((96, 256, 256), seed=7, n_nodules=4, nodule_radius_mm=(3.0, 3.0), vessels=False)
    truth = ct.labels.copy()
    n_before = ndimage.label(truth == NODULE)[1]
    dropped = components.apply_on_input_grid(truth, rules, ct.spacing[::-1])
    assert n_before >= 3 and NODULE not in dropped
    assert ndimage.label(truth == NODULE)[1] == n_before


def test_quick_demo_training_writes_valid_packages(tmp_path):
    results = demo.run(list(demo.TASKS), tmp_path, quick=True, log=lambda _msg: None, threads=1)
    assert set(results) == set(demo.TASKS)
    for model_id in SHIPPED:
        card, _net = load_package(tmp_path / model_id)
        assert card.training["script"].startswith("python -m demo_models train --task")
        assert card.training["trainer"].startswith("inference.training.train")
        assert "held-out" in card.metrics["split"]
        assert (tmp_path / model_id / "README.md").read_text().count("not for diagnosis") == 1
    det = ModelCard.load(tmp_path / "radlens-ct-nodule-det")
    assert det.thresholds["score"] == det.metrics["score_threshold"]
    # The trained cards state the recipes' learning-rate schedules and sampling.
    seg = ModelCard.load(tmp_path / "radlens-ct-chest-seg")
    assert seg.training["lr_schedule"] == recipes.SEG_SCHEDULE
    assert det.training["lr_schedule"] == recipes.DET_SCHEDULE
    assert det.training["sampling"]["intensity"] is False


def test_training_phantom_is_resampled_like_the_engine_input(tmp_path):
    """The demo writes phantoms at their native grid; the trainer (``prepare_case``) brings
    them onto the card's grid the way the engine brings a study."""
    from inference.training.dataset import load_dataset
    from inference.training.steps import TaskSteps

    r = dataclasses.replace(recipes.recipes(False)["segmentation"], spacing_xyz=(5.0, 5.0, 10.0))
    phantom_data.write_ct_dataset(tmp_path, [7], n_nodules=(2, 2), nodule_radius_mm=(3.0, 9.0))
    (case,) = load_dataset(tmp_path).cases
    card = recipes.card_for(r, {}, 0.0)
    item = TaskSteps(card, "segmentation", "cpu").prepare(case)
    image, labels = item["image"][0], item["label"][0]
    _, grid = case.load_image()
    fov = np.asarray(grid.shape[::-1]) * np.asarray(grid.spacing)
    assert np.allclose(fov, phantom_data.CT_FOV_MM, atol=1e-6)
    model_spacing = fov / np.asarray(image.shape[::-1])
    assert np.allclose(model_spacing, (5.0, 5.0, 10.0), rtol=0.05)
    # partial volume at the skin: values between air and fat (HU -990..-200 through the
    # card's clip_scale -1000..400) exist only after resampling
    lo, hi = (-990 + 1000) / 1400, (-200 + 1000) / 1400
    assert ((image > lo) & (image < hi) & (labels == 0)).any()
    # nodule boxes mapped into the model grid land on the nodule
    det_card = {**card, "task": "detection", "labels": [{"index": NODULE, "name": "nodule"}]}
    boxes = TaskSteps(det_card, "detection", "cpu").prepare(case)["boxes"]
    assert len(boxes) == len(case.boxes) == 2
    for box in boxes:
        centre = (np.asarray(box[:3]) + np.asarray(box[3:])) / 2
        assert labels[tuple(int(round(v)) for v in centre)] == NODULE


def test_paired_radiographs_differ_only_by_the_nodule(tmp_path):
    from inference.preprocess import intensity
    from inference.training.dataset import load_dataset

    phantom_data.write_radiograph_dataset(tmp_path, [3], size=64)
    cases = load_dataset(tmp_path).cases
    assert [c.class_index for c in cases] == [0, 1]
    assert len({c.patient_id for c in cases}) == 1  # the pair stays on one side of the split
    images = [intensity(c.load_image()[0][0], [{"op": "minmax"}]) for c in cases]
    boxes = [xr.box_yx for xr in phantom_data.radiograph_pair(3, 64)]
    assert boxes[0] is None and boxes[1] is not None
    y0, x0, y1, x1 = (int(round(v)) for v in boxes[1])
    diff = np.abs(images[1] - images[0])
    outside = diff.copy()
    outside[max(y0 - 2, 0) : y1 + 3, max(x0 - 2, 0) : x1 + 3] = 0
    assert diff.max() > 0.02 and outside.max() < 0.02


def test_detection_threshold_is_the_lowest_within_the_false_positive_budget():
    # two volumes, one nodule each: a 0.9 hit and a 0.8 false positive, then a 0.3 hit
    vol1 = M.match_boxes([[0, 0, 0, 2, 2, 2], [5, 5, 5, 7, 7, 7]], [0.9, 0.8], [[0, 0, 0, 2, 2, 2]])
    vol2 = M.match_boxes([[0, 0, 0, 2, 2, 2]], [0.3], [[0, 0, 0, 2, 2, 2]])
    assert demo_eval.pick_threshold([vol1, vol2], 0.5) == pytest.approx(0.3)
    assert demo_eval.pick_threshold([vol1, vol2], 0.0) == pytest.approx(0.9)
    assert demo_eval.pick_threshold([vol1], 1.0) == pytest.approx(0.8)  # lowest within budget
    assert demo_eval.at_threshold([vol1, vol2], 0.85) == (0.5, 0.0)
    assert demo_eval.at_threshold([vol1, vol2], 0.3) == (1.0, 0.5)


def test_demo_training_is_reproducible_bit_for_bit(tmp_path):
    """A recipe at tiny scale, twice through the real trainer: the same weights (SHA-256)."""
    for run in ("a", "b"):
        demo.run(["segmentation"], tmp_path / run, quick=True, log=lambda _msg: None, threads=1)
    a, b = (ModelCard.load(tmp_path / r / "radlens-ct-chest-seg") for r in ("a", "b"))
    assert a.files == b.files  # same SHA-256 of the weights
    assert a.metrics["dice_lung"] == b.metrics["dice_lung"]
    assert a.training["steps"] == 2 and "inference.training.train" in a.training["trainer"]


def test_demo_models_command_names_its_tools(capsys):
    from demo_models.__main__ import main

    assert main([]) == 2
    assert "train" in capsys.readouterr().err
