"""Evaluation through the engine, the report, publishing and the train/eval commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from inference.training.dataset import load_dataset, write_case
from inference.training.evaluate import evaluate
from inference.training.publish import PublishError, publish
from inference.training.report import write_card_metrics, write_report
from inference.training.train import TrainOptions, train
from phantoms.chest import chest_ct
from tests.training_factory import write_radiograph_cases

LABELS = {1: "lung", 2: "nodule"}


@pytest.fixture(scope="module")
def ct_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ct")
    for i in range(3):
        ct = chest_ct(shape=(16, 32, 32), seed=10 + i, n_nodules=1, nodule_radius_mm=(14.0, 18.0))
        boxes = [tuple(np.concatenate(n.box_zyx(ct.spacing))) for n in ct.nodules]
        write_case(
            root,
            f"ct{i}",
            ct.hu,
            ct.labels,
            ct.spacing,
            LABELS,
            boxes=boxes,
            box_labels=[2] * len(boxes),
        )
    return root


@pytest.fixture(scope="module")
def seg_model(ct_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny-seg"
    opts = TrainOptions(
        dataset=ct_dataset,
        task="segmentation",
        out=out,
        epochs=1,
        steps_per_epoch=2,
        patch_size=(32, 32, 16),
        threads=1,
        progress=lambda s: None,
    )
    return train(opts).package


def test_segmentation_eval_scores_the_engine_output_per_case(seg_model, ct_dataset, tmp_path):
    from inference.card import ModelCard
    from inference.engine import Engine

    res = evaluate(seg_model, ct_dataset, progress=lambda s: None, threads=1)
    assert [r["case_id"] for r in res.per_case] == ["ct0", "ct1", "ct2"]
    # Recompute one case by hand from the engine's own output.
    case = load_dataset(ct_dataset).cases[1]
    img, geo = case.load_image()
    truth = case.load_label()[0]
    out = Engine(num_threads=1).run(img, geo.spacing, np.eye(3), "CT", ModelCard.load(seg_model))
    pred = out.label_map.array == 1
    want = 2 * np.sum(pred & (truth == 1)) / (pred.sum() + (truth == 1).sum())
    assert res.per_case[1]["dice_lung"] == pytest.approx(want)
    assert res.summary["mean_dice_lung"] == pytest.approx(
        np.mean([r["dice_lung"] for r in res.per_case])
    )
    page = write_report(res, tmp_path / "report")
    assert page.read_text().count("<tr>") >= 4 and (tmp_path / "report/dice.png").stat().st_size
    with open(tmp_path / "report/metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"ct0", "ct1", "ct2"} <= {r["case_id"] for r in rows}
    assert any(r["metric"] == "hd95_mm_lung" for r in rows)


def test_detection_eval_gives_froc_and_ap(ct_dataset, tmp_path):
    det = train(
        TrainOptions(
            dataset=ct_dataset,
            task="detection",
            out=tmp_path / "det",
            epochs=1,
            steps_per_epoch=1,
            patch_size=(32, 32, 16),
            threads=1,
            progress=lambda s: None,
        )
    ).package
    res = evaluate(det, ct_dataset, progress=lambda s: None, threads=1)
    assert res.summary["n_cases"] == 3
    assert 0.0 <= res.summary["froc_mean_sensitivity"] <= 1.0
    assert set(res.curves) >= {"froc"}
    write_report(res, tmp_path / "r")
    assert (tmp_path / "r/froc.png").is_file()


def test_classification_eval_confusion_matrix_matches_predictions(tmp_path):
    xr = write_radiograph_cases(tmp_path / "xr", 6)
    model = train(
        TrainOptions(
            dataset=xr,
            task="classification",
            out=tmp_path / "cls",
            epochs=1,
            steps_per_epoch=1,
            patch_size=(32, 32),
            threads=1,
            val_fraction=0.34,
            progress=lambda s: None,
        )
    ).package
    res = evaluate(model, xr, progress=lambda s: None, threads=1)
    cm = np.asarray(res.confusion)
    assert cm.sum() == 6
    agree = sum(r["true"] == r["predicted"] for r in res.per_case)
    assert res.summary["accuracy"] == pytest.approx(agree / 6)
    assert res.summary["accuracy"] == pytest.approx(np.trace(cm) / 6)
    write_report(res, tmp_path / "r")
    assert (tmp_path / "r/roc.png").is_file() and (tmp_path / "r/confusion.png").is_file()


def test_publish_installs_atomically_and_the_registry_finds_it(seg_model, tmp_path):
    from inference.registry import list_models
    from radlens_core.paths import user_models_dir

    dest = publish(seg_model)
    assert dest == user_models_dir() / "tiny-seg"
    assert "tiny-seg" in [c.id for c in list_models()]
    assert not (dest / "checkpoint").exists()  # training state is not part of the package
    assert (dest / "README.md").is_file()
    assert publish(seg_model) == dest  # same version and weights again: nothing to do
    assert not [p for p in user_models_dir().iterdir() if p.name.startswith(".")]
    other = tmp_path / "v2"
    other.mkdir()
    card = json.loads((seg_model / "model.json").read_text())
    card["version"] = "0.2.0"
    (other / "model.json").write_text(json.dumps(card))
    (other / "model.safetensors").write_bytes((seg_model / "model.safetensors").read_bytes())
    with pytest.raises(PublishError, match="already holds 'tiny-seg' as version 0.1.0"):
        publish(other)
    publish(other, replace=True)
    assert [c.version for c in list_models() if c.id == "tiny-seg"] == ["0.2.0"]


def test_write_card_keeps_the_package_loadable(seg_model, ct_dataset, tmp_path):
    import shutil

    from inference.card import ModelCard
    from inference.weights import verify_files

    copy = tmp_path / "copy"
    shutil.copytree(seg_model, copy)
    res = evaluate(copy, ct_dataset, progress=lambda s: None, threads=1)
    write_card_metrics(copy, res, "3 phantom cases")
    card = ModelCard.load(copy)
    verify_files(card)
    assert card.metrics["mean_dice_lung"] == pytest.approx(res.summary["mean_dice_lung"])


def test_train_and_eval_commands_end_to_end(ct_dataset, tmp_path, capsys):
    from viewer.cli import main

    out = tmp_path / "cli-model"
    rc = main(
        [
            "train",
            str(ct_dataset),
            "--task",
            "segmentation",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--steps-per-epoch",
            "1",
            "--patch",
            "32",
            "32",
            "16",
            "--threads",
            "1",
            "--publish",
            "--id",
            "cli-seg",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "epoch 1/1" in text and "published to" in text
    rc = main(
        ["eval", "cli-seg", str(ct_dataset), "--out", str(tmp_path / "rep"), "--threads", "1"]
    )
    assert rc == 0 and (tmp_path / "rep/report.html").is_file()


def test_train_command_reports_a_bad_dataset_clearly(tmp_path, capsys):
    from viewer.cli import main

    rc = main(
        ["train", str(tmp_path / "nope"), "--task", "segmentation", "--out", str(tmp_path / "o")]
    )
    assert rc == 2
    assert "nope: dataset folder does not exist" in capsys.readouterr().err
