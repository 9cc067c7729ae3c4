"""Fine-tuning the shipped chest CT segmenter on phantoms with an unseen scanner look (short)."""

from __future__ import annotations

import math

import pytest

from inference.training.finetune_demo import SHIPPED, write_shifted_dataset
from inference.training.train import TrainOptions, train


def test_fine_tuning_the_shipped_segmenter_is_reproducible_and_finite(tmp_path):
    from inference.card import ModelCard
    from inference.paths import shipped_models_dir

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
