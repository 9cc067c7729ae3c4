"""Classifier training learns: balanced batches, warm-up + cosine rate, engine-scored AUC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.training.dataset import write_case
from inference.training.steps import TaskSteps, balanced_picks
from inference.training.train import TrainOptions, train


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
