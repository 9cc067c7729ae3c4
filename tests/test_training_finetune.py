"""Fine-tuning the shipped chest CT segmenter on phantoms with an unseen scanner look (short)."""

from __future__ import annotations

import math

import pytest

from demo_models.finetune import SHIPPED, write_shifted_dataset
from inference.training.train import TrainOptions, train


def test_fine_tuning_the_shipped_segmenter_is_reproducible_and_finite(tmp_path):
    from inference.card import ModelCard
    from radlens_core.paths import shipped_models_dir

    if not (shipped_models_dir() / SHIPPED / "model.json").is_file():
        pytest.skip(f"{SHIPPED} is not in resources/models")
    data = write_shifted_dataset(tmp_path / "data", range(3), (12, 40, 40), (5.0, 5.0, 10.0))

    def run(name: str):
        return train(
            TrainOptions(
                dataset=data,
                task="segmentation",
                out=tmp_path / name,
                from_model=SHIPPED,
                epochs=1,
                steps_per_epoch=2,
                seed=4,
                val_fraction=0.34,
                threads=1,
                progress=lambda s: None,
            )
        )

    a, b = run("a"), run("b")
    for key, value in a.history[0].items():
        assert math.isfinite(value), key
        assert b.history[0][key] == pytest.approx(value, abs=1e-4), key
    card = ModelCard.load(a.package)
    shipped = ModelCard.load(shipped_models_dir() / SHIPPED)
    assert card.training["parent"] == f"{SHIPPED}@{shipped.version}"
    assert card.target_spacing == shipped.target_spacing
    assert card.preprocessing == shipped.preprocessing


#: Far outside the shipped model's training range (contrast 0.95-1.05, noise 5-30 HU): the
#: shipped segmenter finds no lung at all here (held-out Dice 0.0), so an improvement cannot be
#: luck of the seeds. The retrained segmenter (session 5) still finds the lungs at contrast
#: 0.4 / noise 60 HU (Dice 0.94), where the demo loop's weights found none.
UNSEEN_LOOK = {"contrast": 0.3, "noise_hu": 70.0}


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~11 s on a quiet 2-core machine; minutes when it is shared
def test_fine_tuning_raises_held_out_dice_on_unseen_appearance(tmp_path):
    import torch

    from inference.training.evaluate import evaluate
    from radlens_core.paths import shipped_models_dir

    if not (shipped_models_dir() / SHIPPED / "model.json").is_file():
        pytest.skip(f"{SHIPPED} is not in resources/models")
    torch.set_num_threads(2)
    # The shipped model's own grid: a coarser one would be resampled (smoothed) by the
    # engine, which hides much of the added noise.
    shape, spacing = (60, 140, 140), (2.5, 2.5, 5.0)
    train_dir = write_shifted_dataset(
        tmp_path / "train", range(5000, 5006), shape, spacing, look=UNSEEN_LOOK
    )
    # Held-out patients: other seeds, never seen in training or validation.
    test_dir = write_shifted_dataset(
        tmp_path / "test", range(6000, 6003), shape, spacing, look=UNSEEN_LOOK
    )
    quiet = lambda line: None  # noqa: E731
    before = evaluate(SHIPPED, test_dir, device="cpu", threads=2, progress=quiet)
    result = train(
        TrainOptions(
            dataset=train_dir,
            task="segmentation",
            out=tmp_path / "model",
            from_model=SHIPPED,
            epochs=3,
            steps_per_epoch=15,
            device="cpu",
            seed=0,
            val_fraction=0.25,
            lr=3e-4,
            threads=2,
            progress=quiet,
        )
    )
    after = evaluate(result.package, test_dir, device="cpu", threads=2, progress=quiet)

    assert after.summary["n_cases"] == before.summary["n_cases"] == 3
    dice_before, dice_after = before.summary["mean_dice_lung"], after.summary["mean_dice_lung"]
    assert dice_after >= dice_before + 0.1, (dice_before, dice_after)
    assert dice_after >= 0.85, (dice_before, dice_after)
    # Every held-out patient improves, not just the mean.
    for b, a in zip(before.per_case, after.per_case, strict=True):
        assert b["case_id"] == a["case_id"]
        assert a["dice_lung"] > b["dice_lung"], (a["case_id"], b["dice_lung"], a["dice_lung"])
