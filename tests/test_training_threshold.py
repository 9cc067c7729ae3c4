"""A trained classifier's decision threshold is chosen on its validation patients (Youden's J)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.training.dataset import load_dataset, write_case
from inference.training.metrics import youden_threshold


def test_youden_threshold_splits_separable_scores_between_the_classes():
    thr = youden_threshold([0, 0, 0, 1, 1], [0.05, 0.1, 0.2, 0.3, 0.9])
    assert thr == pytest.approx(0.25)


def test_youden_threshold_keeps_the_default_for_one_class_or_no_better_than_chance():
    assert youden_threshold([1, 1, 1], [0.2, 0.3, 0.9]) == 0.5
    assert youden_threshold([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], default=0.4) == 0.4


def test_youden_threshold_prefers_the_most_specific_of_equal_points():
    # J is 0.5 at score 0.8 and again at 0.35: the higher threshold is kept.
    assert youden_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.6)


def _films(root: Path, n: int) -> Path:
    yy, xx = np.mgrid[:32, :32]
    for seed in range(n):
        rng = np.random.default_rng(seed)
        img = rng.normal(0.0, 1.0, (32, 32)).astype(np.float32)
        cls = seed % 2
        if cls:
            cy, cx = rng.integers(6, 26, 2)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 9] += 3.0
        write_case(
            root, f"film{seed:02d}", img, None, (1.0, 1.0, 1.0), {1: "spot"},
            modality="DX", class_index=cls,
        )  # fmt: skip
    return root


def test_trained_classifier_card_holds_the_validation_youden_threshold_and_eval_uses_it(
    tmp_path,
):
    import torch

    from inference.card import ModelCard
    from inference.training.evaluate import evaluate
    from inference.training.steps import TaskSteps
    from inference.training.train import TrainOptions, train
    from inference.weights import load_network

    data = _films(tmp_path / "data", 12)
    result = train(
        TrainOptions(
            dataset=data, task="classification", out=tmp_path / "model", epochs=1,
            steps_per_epoch=2, batch_size=4, patch_size=(32, 32), val_fraction=0.5,
            seed=0, threads=1, progress=lambda line: None,
        )
    )  # fmt: skip
    card = ModelCard.load(result.package)
    thr = float(card.thresholds["score"])
    assert thr == pytest.approx(card.metrics["val_threshold"], abs=1e-6)

    # Recompute the packaged network's validation probabilities independently.
    net = load_network(card)
    steps = TaskSteps(card.to_json(), "classification", "cpu")
    val_ids = set(card.training["validation_cases"])
    cases = [c for c in load_dataset(data).cases if c.case_id in val_ids]
    truth, probs = [], []
    with torch.no_grad():
        for case in cases:
            item = steps.prepare(case)
            logits = net(torch.as_tensor(item["image"][None]).float())[0]
            probs.append(float(torch.softmax(logits, 0)[1]))
            truth.append(int(item["class"]))
    assert len(set(truth)) == 2
    assert thr == pytest.approx(youden_threshold(truth, probs), abs=1e-6)

    def j(t: float) -> float:
        pred = np.asarray(probs) >= t
        y = np.asarray(truth, bool)
        return pred[y].mean() - pred[~y].mean()

    assert j(thr) >= j(0.5)

    res = evaluate(result.package, data, device="cpu", threads=1, progress=lambda s: None)
    assert res.summary["threshold"] == thr
    for row in res.per_case:
        expected = card.classes[1] if row[f"p_{card.classes[1]}"] >= thr else card.classes[0]
        assert row["predicted"] == expected


def test_validation_with_a_single_class_keeps_threshold_one_half(tmp_path):
    from inference.card import ModelCard
    from inference.training.dataset import split_by_patient
    from inference.training.train import TrainOptions, train

    data = _films(tmp_path / "data", 4)
    ds = load_dataset(data)
    # A split seed whose single validation patient is a negative film.
    seed = next(
        s for s in range(50)
        if all(c.class_index == 0 for c in split_by_patient(ds.cases, 0.25, s)[1])
    )  # fmt: skip
    result = train(
        TrainOptions(
            dataset=data, task="classification", out=tmp_path / "model", epochs=1,
            steps_per_epoch=1, batch_size=2, patch_size=(32, 32), val_fraction=0.25,
            seed=seed, threads=1, progress=lambda line: None,
        )
    )  # fmt: skip
    card = ModelCard.load(result.package)
    (val_id,) = card.training["validation_cases"]
    assert next(c for c in ds.cases if c.case_id == val_id).class_index == 0
    assert card.thresholds["score"] == 0.5 and card.metrics["val_threshold"] == 0.5
