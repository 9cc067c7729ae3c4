"""Short training runs on tiny phantoms: package, reproducibility, resume, stop, fine-tune."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from inference.training.dataset import write_case
from inference.training.train import STOP_FILE, TrainingError, TrainOptions, train
from phantoms.chest import chest_ct
from tests.training_factory import write_radiograph_cases

LABELS = {1: "lung", 2: "nodule"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Five tiny chest CTs from four patients, in the export layout."""
    root = tmp_path_factory.mktemp("ds")
    for i in range(5):
        ct = chest_ct(shape=(16, 32, 32), seed=i, n_nodules=1, nodule_radius_mm=(14.0, 18.0))
        boxes = [tuple(np.concatenate(n.box_zyx(ct.spacing))) for n in ct.nodules]
        write_case(
            root,
            f"case{i}",
            ct.hu,
            ct.labels,
            ct.spacing,
            LABELS,
            patient_id=f"pat{min(i, 3)}",
            boxes=boxes,
            box_labels=[2] * len(boxes),
        )
    return root


def _opts(dataset: Path, out: Path, **kw) -> TrainOptions:
    base = dict(
        dataset=dataset,
        task="segmentation",
        out=out,
        epochs=2,
        steps_per_epoch=2,
        patch_size=(32, 32, 16),
        val_fraction=0.3,
        seed=1,
        threads=1,
        progress=lambda line: None,
    )
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def straight_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "seg-a"
    return train(_opts(dataset, out))


def test_training_writes_a_complete_model_package(straight_run):
    from inference.card import ModelCard
    from inference.weights import verify_files

    card = ModelCard.load(straight_run.package)
    verify_files(card)
    assert card.task == "segmentation" and card.network["architecture"] == "monai.UNet"
    assert [e.name for e in card.labels] == ["lung", "nodule"]
    assert math.isfinite(card.metrics["val_dice"]) and 0.0 <= card.metrics["val_dice"] <= 1.0
    assert "split by patient" in card.training["data"] and card.training["parent"] is None
    assert card.training["validation_cases"]
    # No pickle anywhere: only JSON and safetensors are written.
    suffixes = {p.suffix for p in straight_run.package.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors", ".md"}
    assert straight_run.epochs_done == 2 and straight_run.stopped is None


def test_same_seed_and_data_give_the_same_split_and_metrics(dataset, tmp_path, straight_run):
    again = train(_opts(dataset, tmp_path / "seg-b"))
    a = json.loads((straight_run.package / "model.json").read_text())
    b = json.loads((again.package / "model.json").read_text())
    assert a["training"]["validation_cases"] == b["training"]["validation_cases"]
    for ha, hb in zip(straight_run.history, again.history, strict=True):
        for key in ha:
            assert hb[key] == pytest.approx(ha[key], abs=1e-4), key


def test_resume_follows_the_uninterrupted_run(dataset, tmp_path, straight_run):
    out = tmp_path / "seg-r"
    first = train(_opts(dataset, out, epochs=1))
    assert first.epochs_done == 1
    with pytest.raises(TrainingError, match="--resume"):
        train(_opts(dataset, out, epochs=2))
    resumed = train(_opts(dataset, out, epochs=2, resume=True))
    assert resumed.epochs_done == 2
    assert resumed.history[-1]["loss"] == pytest.approx(straight_run.history[-1]["loss"], abs=1e-4)
    assert resumed.history[-1]["val_dice"] == pytest.approx(
        straight_run.history[-1]["val_dice"], abs=1e-4
    )


def test_stop_file_ends_the_run_and_keeps_the_best_epoch(dataset, tmp_path):
    out = tmp_path / "seg-stop"

    def request_stop(epoch: int, step: int) -> None:
        if epoch == 2:
            (out / STOP_FILE).write_text("")

    result = train(_opts(dataset, out, epochs=4, on_step=request_stop))
    assert result.stopped == "stop file" and result.epochs_done == 1
    card = json.loads((out / "model.json").read_text())
    assert card["metrics"]["epoch"] == 1
    assert not (out / STOP_FILE).exists()  # acknowledged, so --resume can continue


def test_ctrl_c_stops_cleanly_with_a_usable_package(dataset, tmp_path):
    from inference.card import ModelCard

    def interrupt(epoch: int, step: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    result = train(_opts(dataset, tmp_path / "seg-int", epochs=3, on_step=interrupt))
    assert result.stopped == "interrupted" and result.best_epoch == 1
    assert ModelCard.load(result.package).metrics["epoch"] == 1


def test_fine_tuning_keeps_the_parent_architecture_and_records_it(dataset, tmp_path, straight_run):
    from inference.card import ModelCard

    parent = ModelCard.load(straight_run.package)
    result = train(
        _opts(
            dataset,
            tmp_path / "ft",
            epochs=1,
            steps_per_epoch=1,
            from_model=str(straight_run.package),
            patch_size=None,
        )
    )
    child = ModelCard.load(result.package)
    assert child.training["parent"] == f"{parent.id}@{parent.version}"
    assert child.network["kwargs"] == parent.network["kwargs"]
    assert child.patch_size == parent.patch_size and child.id != parent.id


def test_detection_and_classification_runs_give_finite_metrics(dataset, tmp_path):
    det = train(_opts(dataset, tmp_path / "det", task="detection", epochs=1, steps_per_epoch=1))
    assert all(math.isfinite(v) for v in det.history[0].values())

    xr = write_radiograph_cases(tmp_path / "xr", 6)
    cls = train(
        _opts(
            xr,
            tmp_path / "cls",
            task="classification",
            epochs=1,
            steps_per_epoch=1,
            patch_size=(32, 32),
            val_fraction=0.34,
        )
    )
    assert 0.0 <= cls.history[0]["val_accuracy"] <= 1.0
    assert json.loads((cls.package / "model.json").read_text())["classes"] == ["normal", "finding"]


def test_cancel_callback_stops_before_the_next_step(dataset, tmp_path):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 2  # two steps of epoch 1 run, then the worker asks to stop

    result = train(_opts(dataset, tmp_path / "seg-cancel", epochs=3, cancel=cancel))
    assert result.stopped == "cancelled" and result.epochs_done == 1
    assert (result.package / "model.json").is_file()


def test_detection_needs_boxes_of_a_single_class(tmp_path):
    from inference.training.dataset import DatasetError

    ct = chest_ct(shape=(8, 16, 16), seed=0, n_nodules=0)
    for i, labels in enumerate(([1], [2])):
        write_case(
            tmp_path / "ds",
            f"c{i}",
            ct.hu,
            ct.labels,
            ct.spacing,
            LABELS,
            boxes=[(1, 1, 1, 3, 3, 3)],
            box_labels=labels,
        )
    with pytest.raises(DatasetError, match=r"boxes of several labels \(lung, nodule\)"):
        train(_opts(tmp_path / "ds", tmp_path / "out", task="detection"))
