"""The trainer's learning-rate schedule: chosen in the card's training section, drawn as
torch draws it, followed by the loop step by step and stated on the trained card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.training.dataset import DatasetError, write_case
from inference.training.model_spec import card_from_template
from inference.training.schedule import lr_factor, schedule_from_card
from inference.training.steps import TaskSteps
from inference.training.train import TrainOptions, train
from tests.test_training_sampling import tiny_classifier_card


@pytest.mark.parametrize("total", [7, 100, 1400])
def test_one_cycle_is_torchs_one_cycle_policy(total):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=3e-3)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=total, cycle_momentum=False
    )
    for step in range(total):
        assert lr_factor("one_cycle", step, total) * 3e-3 == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15
        ), step
        opt.step()
        ref.step()


def test_warmup_cosine_and_constant_keep_their_shapes():
    rates = [lr_factor("warmup_cosine", s, 600) for s in range(600)]
    assert rates[0] == pytest.approx(1 / 60) and rates[59] == 1.0
    assert rates[-1] == pytest.approx(0.05, abs=1e-3)
    assert all(a >= b for a, b in zip(rates[59:], rates[60:], strict=False))
    assert {lr_factor("constant", s, 50) for s in range(50)} == {1.0}
    assert lr_factor("one_cycle", 0, 1) == 1.0


def test_schedule_is_read_from_the_card_with_task_defaults_and_bad_names_refused():
    assert schedule_from_card({}, "classification") == "warmup_cosine"
    assert schedule_from_card({}, "segmentation") == "constant"
    assert schedule_from_card({"training": {"lr_schedule": "one_cycle"}}, "detection") == (
        "one_cycle"
    )
    with pytest.raises(DatasetError, match="one_cycle"):
        schedule_from_card({"training": {"lr_schedule": "onecycle"}}, "segmentation")
    with pytest.raises(ValueError, match="unknown"):
        lr_factor("linear", 0, 10)


def _template() -> dict:
    return tiny_classifier_card({"lr_schedule": "one_cycle", "seed": 9, "seconds": 12.0})


def test_the_template_cards_schedule_drives_every_step_and_the_trained_card_states_it(
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
    template = _template()
    opts = TrainOptions(dataset=root, task="classification", out=tmp_path / "run", card=template)
    # The schedule is a recipe and is kept; the old run's record (seed, seconds) is not.
    assert card_from_template(opts, template)["training"] == {"lr_schedule": "one_cycle"}
    opts.epochs, opts.steps_per_epoch, opts.batch_size, opts.val_fraction = 2, 3, 4, 0.25
    opts.lr, opts.progress = 2e-3, lambda _line: None
    rates: list[float] = []
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):  # the rate each optimiser step really uses
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    train(opts)
    assert rates == pytest.approx([2e-3 * lr_factor("one_cycle", s, 6) for s in range(6)])
    assert rates[0] == pytest.approx(2e-3 / 25) and rates[1] > 1.9e-3 and rates[-1] < 1e-6
    card = json.loads((Path(opts.out) / "model.json").read_text(encoding="utf-8"))
    assert card["training"]["lr_schedule"] == "one_cycle"


def test_a_card_without_a_schedule_keeps_the_tasks_default_rates():
    card = {"spatial_dims": 3, "patch_size": [8, 8, 8], "labels": []}
    steps = TaskSteps(card, "segmentation", "cpu")
    assert steps.schedule == "constant" and steps.lr_factor(5, 10) == 1.0
    cls = TaskSteps({"spatial_dims": 2, "labels": []}, "classification", "cpu")
    assert cls.schedule == "warmup_cosine" and cls.lr_factor(0, 100) == pytest.approx(0.1)
