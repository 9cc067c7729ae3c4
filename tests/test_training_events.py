"""Machine-readable training progress (``--progress-json``) and training from a template card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.training.dataset import write_case
from inference.training.events import Event, StepThrottle, epoch_event, json_line, parse_line
from inference.training.train import TrainOptions, train
from phantoms.chest import chest_ct

LABELS = {1: "lung", 2: "nodule"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four tiny chest CTs, one patient each, in the export layout."""
    root = tmp_path_factory.mktemp("ds")
    for i in range(4):
        ct = chest_ct(shape=(16, 32, 32), seed=i, n_nodules=1, nodule_radius_mm=(14.0, 18.0))
        write_case(root, f"case{i}", ct.hu, ct.labels, ct.spacing, LABELS)
    return root


def _opts(dataset: Path, out: Path, **kw) -> TrainOptions:
    base = dict(
        dataset=dataset, task="segmentation", out=out, epochs=2, steps_per_epoch=2,
        patch_size=(32, 32, 16), val_fraction=0.3, seed=1, threads=1,
        progress=lambda line: None,
    )  # fmt: skip
    base.update(kw)
    return TrainOptions(**base)


def test_a_run_reports_start_steps_epochs_and_checkpoints_as_json_ready_events(dataset, tmp_path):
    events: list[dict] = []
    result = train(_opts(dataset, tmp_path / "run", events=events.append))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds.count("epoch") == 2 and "step" in kinds
    start = events[0]
    assert (start["task"], start["epochs"], start["steps"], start["metric"]) == (
        "segmentation", 2, 2, "val_dice",
    )  # fmt: skip
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2] and [e["step"] for e in epochs] == [2, 4]
    assert epochs[-1]["eta_s"] == 0.0 and epochs[0]["eta_s"] >= 0.0
    assert epochs[-1]["best_epoch"] == result.best_epoch
    assert [h["loss"] for h in result.history] == pytest.approx([e["loss"] for e in epochs])
    best = [e for e in events if e["event"] == "checkpoint"]
    assert (
        best
        and best[-1]["epoch"] == result.best_epoch
        and best[-1]["package"] == str(tmp_path / "run")
    )
    for e in events:  # every event is one line of strict JSON and reads back the same
        assert parse_line(json_line(e)) == e


def test_events_never_carry_nan_and_other_lines_are_not_events():
    e = epoch_event(1, 3, 10, float("nan"), "val_auc", float("nan"), None, 0, [2.0])
    assert e["loss"] is None and e["value"] is None and e["eta_s"] == 4.0
    json_line(e)  # allow_nan=False would raise
    assert parse_line("epoch 1/3  loss 0.5000  val_dice 0.1000  (best 0.1 @ 1)") is None
    assert parse_line('{"no": "event"}') is None and parse_line("{broken") is None
    assert parse_line(json_line(Event.error("x")))["message"] == "x"


def test_step_events_are_throttled_but_the_last_step_always_reports():
    now = [0.0]
    throttle = StepThrottle(interval=1.0, clock=lambda: now[0])
    assert throttle.due()
    now[0] = 0.5
    assert not throttle.due() and throttle.due(force=True)
    now[0] = 1.6
    assert throttle.due()


def test_the_command_prints_json_events_beside_its_sentences(dataset, tmp_path):
    out = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [
        sys.executable, "-m", "viewer", "train", str(dataset), "--task", "segmentation",
        "--out", str(out), "--epochs", "1", "--steps-per-epoch", "1", "--patch", "32", "32",
        "16", "--threads", "1", "--progress-json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    events = [e for e in map(parse_line, lines) if e is not None]
    assert [e["event"] for e in events if e["event"] != "step"] == [
        "start", "checkpoint", "epoch", "done",
    ]  # fmt: skip
    assert events[-1] == Event.done(out, 1, None)
    # The sentences for people are unchanged.
    assert any(ln.startswith("epoch 1/1  loss ") for ln in lines)
    assert f"model package: {out} (best epoch 1)" in lines
    bad = subprocess.run(
        [*cmd[:7], "--out", str(tmp_path / "x"), "--progress-json", "--card", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert bad.returncode == 2 and "radlens train: error:" in bad.stderr
    (error,) = [e for e in map(parse_line, bad.stdout.splitlines()) if e]
    assert error["event"] == "error" and "model.json" in error["message"]


def test_a_template_card_sets_the_new_models_network_and_a_crop_the_training_patch(
    dataset, tmp_path
):
    from inference.card import ModelCard

    first = train(_opts(dataset, tmp_path / "default", epochs=1))
    template = json.loads((first.package / "model.json").read_text())
    template["network"]["kwargs"].update(channels=[4, 8], strides=[2], num_res_units=0)
    template["target_spacing"] = [12.0, 12.0, 20.0]
    template["thresholds"] = {"components": {"lung": {"keep_largest": 2, "grid": "model"}}}
    template["id"], template["name"] = "from-template", "From a template"
    seen: list[tuple] = []

    def shapes(epoch: int, step: int) -> None:
        seen.append(step)

    result = train(
        _opts(
            dataset, tmp_path / "templated", epochs=1, card=template, crop_size=(16, 16, 8),
            patch_size=None, on_step=shapes,
        )
    )  # fmt: skip
    card = ModelCard.load(result.package)
    assert card.id == "from-template" and card.network["kwargs"]["channels"] == [4, 8]
    assert card.target_spacing == (12.0, 12.0, 20.0) and card.patch_size == (32, 32, 16)
    assert card.thresholds["components"]["lung"]["keep_largest"] == 2
    assert card.training["parent"] is None and card.version == "0.1.0"
    assert json.loads((result.package / "model.json").read_text())["files"] != template["files"]
    assert seen == [0, 1]
    with pytest.raises(ValueError, match="template card is for 'segmentation'"):
        train(_opts(dataset, tmp_path / "wrong", task="detection", card=template))


def test_the_training_crop_is_what_the_network_sees(dataset):
    from inference.training.dataset import load_dataset
    from inference.training.steps import TaskSteps

    card = json.loads(json.dumps(_card_for_crop()))
    steps = TaskSteps(card, "segmentation", "cpu", crop_zyx=(8, 16, 16))
    items = [steps.prepare(c) for c in load_dataset(dataset).cases]
    aug = steps.augmentation(2)
    aug.set_random_state(seed=0)
    batch = steps.batch(items, np.random.default_rng(0), aug, 2)
    assert tuple(batch["image"].shape) == (2, 1, 8, 16, 16)
    assert steps.patch_zyx == (16, 32, 32)  # inference keeps the card's patch


def _card_for_crop() -> dict:
    return {
        "spatial_dims": 3,
        "patch_size": [32, 32, 16],
        "target_spacing": None,
        "preprocessing": {"steps": [{"op": "clip_scale", "a_min": -1000, "a_max": 400}]},
        "labels": [{"index": 1, "name": "lung"}, {"index": 2, "name": "nodule"}],
    }
