"""Classifier training learns: balanced batches, warm-up + cosine rate, engine-scored AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.training.dataset import write_case
from inference.training.steps import TaskSteps, balanced_picks
from inference.training.train import TrainOptions, train
from tests.training_factory import write_radiograph_cases


def _spot_images(root: Path, seeds: range, positive_every: int) -> Path:
    """32 x 32 noise films; every ``positive_every``-th has a small bright spot (a 'finding')
    somewhere: a finding is rare and small, as nodules are, but easy to see."""
    size = 32
    yy, xx = np.mgrid[:size, :size]
    for seed in seeds:
        rng = np.random.default_rng(seed)
        img = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
        cls = int(seed % positive_every == 0)
        if cls:
            cy, cx = rng.integers(5, size - 5, 2)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 9] += 3.0
        write_case(
            root, f"film{seed:04d}", img, None, (1.0, 1.0, 1.0), {1: "spot"},
            modality="DX", class_index=cls,
        )  # fmt: skip
    return root


def test_balanced_picks_draw_each_class_equally_when_one_is_rare():
    classes = [1] + [0] * 19
    picks = balanced_picks(classes, 16, np.random.default_rng(0))
    drawn = np.asarray(classes)[picks]
    assert len(picks) == 16 and int(drawn.sum()) == 8


def test_classifier_rate_warms_up_then_decays_and_3d_tasks_keep_theirs():
    cls = TaskSteps({"spatial_dims": 2}, "classification", "cpu")
    rates = [cls.lr_factor(s, 100) for s in range(100)]
    assert rates[0] < rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))
    assert 0.04 < rates[-1] < 0.1
    seg = TaskSteps({"spatial_dims": 3}, "segmentation", "cpu")
    assert {seg.lr_factor(s, 100) for s in range(100)} == {1.0}


def test_classification_learns_a_rare_small_finding_from_scratch(tmp_path):
    from inference.training.evaluate import evaluate

    train_dir = _spot_images(tmp_path / "train", range(0, 64), positive_every=4)
    test_dir = _spot_images(tmp_path / "test", range(1000, 1040), positive_every=2)
    result = train(
        TrainOptions(
            dataset=train_dir,
            task="classification",
            out=tmp_path / "model",
            epochs=5,
            steps_per_epoch=10,  # 50 steps of 16 images
            patch_size=(32, 32),
            val_fraction=0.25,
            seed=0,
            threads=1,
            progress=lambda line: None,
        )
    )
    # Scored through the real engine on films it never saw, at the card's threshold.
    held_out = evaluate(result.package, test_dir, device="cpu", threads=1, progress=lambda s: None)
    assert held_out.summary["auc"] > 0.85, held_out.summary
    assert held_out.summary["sensitivity"] > 0.5, held_out.summary


def test_fine_tuning_the_shipped_classifier_starts_from_its_validation_score(tmp_path):
    from inference.card import ModelCard
    from radlens_core.paths import shipped_models_dir

    parent = "radlens-cxr-nodule-cls"
    if not (shipped_models_dir() / parent / "model.json").is_file():
        pytest.skip(f"{parent} is not in resources/models")
    data = write_radiograph_cases(tmp_path / "xr", 8, size=128, label_names={1: "nodule"})
    lines: list[str] = []
    result = train(
        TrainOptions(
            dataset=data,
            task="classification",
            out=tmp_path / "ft",
            from_model=parent,
            epochs=1,
            steps_per_epoch=2,
            batch_size=4,
            val_fraction=0.5,
            seed=0,
            threads=1,
            progress=lines.append,
        )
    )
    parent_line = next(line for line in lines if line.startswith("parent model"))
    parent_auc = float(parent_line.split("val_auc ")[1].split()[0])
    card = ModelCard.load(result.package)
    # The shipped card names a patch size; a classifier still sees the whole resized image.
    assert card.patch_size == ModelCard.load(shipped_models_dir() / parent).patch_size
    assert card.training["parent"].startswith(f"{parent}@")
    assert parent_auc > 0.9  # the shipped model already knows these films
    assert result.best_metric >= parent_auc  # and fine-tuning never hands back a worse one
    assert card.metrics["epoch"] == result.best_epoch
