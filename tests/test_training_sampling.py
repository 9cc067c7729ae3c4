"""How the trainer draws and perturbs samples: intensity augmentation off, whole-patient
batches, class-balanced crops; read from the card and stated on the trained card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.training.dataset import DatasetError, write_case
from inference.training.model_spec import card_from_template
from inference.training.sampling import Sampling, grouped_picks
from inference.training.steps import TaskSteps
from inference.training.train import TrainOptions, train


def test_sampling_is_read_from_the_card_with_defaults_and_bad_values_are_refused():
    assert Sampling.from_card({}) == Sampling(True, False, None)
    card = {"training": {"sampling": {"intensity": False, "crop_class_ratios": [1, 1, 2]}}}
    assert Sampling.from_card(card) == Sampling(False, False, (1.0, 1.0, 2.0))
    assert Sampling.from_card({"training": {"sampling": Sampling(False, True).to_card()}}) == (
        Sampling(False, True, None)
    )
    with pytest.raises(DatasetError, match="unknown keys"):
        Sampling.from_card({"training": {"sampling": {"intensity_aug": False}}})
    with pytest.raises(DatasetError, match="background first"):
        Sampling(crop_class_ratios=(1.0,))
    with pytest.raises(DatasetError, match="above 0"):
        Sampling(crop_class_ratios=(0.0, 0.0))
    with pytest.raises(DatasetError, match="background first"):
        Sampling(crop_class_ratios=(1.0, -1.0))


def test_grouped_picks_take_whole_patients_and_fill_the_batch():
    patients = [f"P{i // 2}" for i in range(20)]  # ten patients of two cases each
    rng = np.random.default_rng(0)
    for _ in range(20):
        picks = grouped_picks(patients, 8, rng)
        assert len(picks) == 8 and len(set(picks.tolist())) == 8
        drawn = [patients[i] for i in picks]
        assert all(drawn.count(p) == 2 for p in drawn), drawn
    # more than all the patients hold: every one appears, reshuffled for the rest
    picks = grouped_picks(patients, 30, rng)
    assert len(picks) == 30 and set(picks.tolist()) == set(range(20))


def _cls_items(n_patients: int) -> list[dict]:
    rng = np.random.default_rng(1)
    return [
        {
            "image": rng.random((1, 8, 8)).astype(np.float32),
            "class": k,
            "patient_id": f"P{p}",
            "case_id": f"P{p}-{k}",
        }
        for p in range(n_patients)
        for k in (0, 1)
    ]


def test_classifier_batches_pair_a_patients_images_and_without_intensity_keep_pixels():
    items = _cls_items(12)
    steps = TaskSteps({"spatial_dims": 2}, "classification", "cpu", sampling=Sampling(False, True))
    aug = steps.augmentation(8)
    aug.set_random_state(seed=0)
    rng = np.random.default_rng(0)
    originals = {it["image"].tobytes() for it in items} | {
        np.ascontiguousarray(it["image"][..., ::-1]).tobytes() for it in items
    }
    for _ in range(10):
        batch = steps.batch(items, rng, aug, 8)
        classes = batch["class"].tolist()
        assert classes == [0, 1] * 4  # each patient's two images, side by side
        # flipped or not, never rescaled or shifted
        for img in batch["image"].numpy():
            assert img.astype(np.float32).tobytes() in originals
    # the default draws class-balanced images and changes their intensities
    default = TaskSteps({"spatial_dims": 2}, "classification", "cpu")
    assert default.sampling == Sampling()
    aug = default.augmentation(8)
    aug.set_random_state(seed=0)
    batch = default.batch(items, np.random.default_rng(0), aug, 8)
    assert sorted(batch["class"].tolist()) == [0] * 4 + [1] * 4
    changed = [img.astype(np.float32).tobytes() not in originals for img in batch["image"].numpy()]
    assert any(changed)


def _nodule_fraction(sampling: Sampling) -> float:
    """Share of 8^3 crops of a 48^3 volume (a big 'lung' block, one small 'nodule') that
    hold the nodule."""
    label = np.zeros((1, 48, 48, 48), np.float32)
    label[0, 4:44, 4:24, 4:44] = 1
    label[0, 30:33, 34:37, 30:33] = 2
    item = {"image": np.random.default_rng(0).random((1, 48, 48, 48)).astype(np.float32)}
    item["label"] = label
    steps = TaskSteps(
        {"spatial_dims": 3, "patch_size": [8, 8, 8]}, "segmentation", "cpu", sampling=sampling
    )
    aug = steps.augmentation(4)
    aug.set_random_state(seed=3)
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(25):
        batch = steps.batch([item], rng, aug, 4)
        assert tuple(batch["image"].shape) == (4, 1, 8, 8, 8)
        hits += [bool((lab == 2).any()) for lab in batch["label"].numpy()]
    return float(np.mean(hits))


def test_class_ratio_crops_centre_a_small_structure_that_foreground_crops_miss():
    balanced = _nodule_fraction(Sampling(crop_class_ratios=(1, 1, 2)))
    default = _nodule_fraction(Sampling())
    assert balanced >= 0.4  # half the crops are centred on it
    assert default < 0.15  # foreground crops centre on the big structure
    assert balanced > 3 * default


def tiny_classifier_card(training: dict) -> dict:
    """A 2D DenseNet classifier template card (16x16, two classes) with ``training``."""
    return {
        "id": "tiny-cls",
        "name": "tiny classifier",
        "task": "classification",
        "spatial_dims": 2,
        "modalities": ["DX"],
        "input_channels": 1,
        "patch_size": [16, 16],
        "preprocessing": {"steps": [{"op": "minmax"}]},
        "labels": [{"index": 1, "name": "spot", "color": "#ff0000"}],
        "classes": ["normal", "spot"],
        "thresholds": {"score": 0.5},
        "network": {
            "format": "safetensors",
            "architecture": "monai.DenseNet",
            "kwargs": {
                "spatial_dims": 2,
                "in_channels": 1,
                "out_channels": 2,
                "init_features": 4,
                "growth_rate": 2,
                "block_config": [1],
            },  # fmt: skip
            "weights": "model.safetensors",
            "output": "softmax",
        },
        "training": training,
    }


def test_the_template_cards_sampling_drives_the_run_and_the_trained_card_states_it(
    tmp_path, monkeypatch
):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for p in range(4):
        for k in (0, 1):
            write_case(
                root, f"p{p}-{k}", rng.random((16, 16)).astype(np.float32), None,
                (1.0, 1.0, 1.0), {1: "spot"}, patient_id=f"P{p}", modality="DX", class_index=k,
            )  # fmt: skip
    template = tiny_classifier_card(
        {"sampling": {"intensity": False, "group_by_patient": True}, "seed": 9}
    )
    opts = TrainOptions(dataset=root, task="classification", out=tmp_path / "run", card=template)
    assert card_from_template(opts, template)["training"] == {
        "sampling": template["training"]["sampling"]
    }
    seen: list[list[str]] = []
    opts.epochs, opts.steps_per_epoch, opts.batch_size, opts.val_fraction = 1, 2, 4, 0.25
    opts.progress = lambda _line: None
    real = TaskSteps.batch

    def spy(self, items, rng, aug, batch_size):  # the batches the loop really draws
        out = real(self, items, rng, aug, batch_size)
        seen.append(out["class"].tolist())
        return out

    monkeypatch.setattr(TaskSteps, "batch", spy)
    train(opts)
    assert seen == [[0, 1, 0, 1]] * 2
    card = json.loads((Path(opts.out) / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["sampling"] == {
        "intensity": False,
        "group_by_patient": True,
        "crop_class_ratios": None,
    }
