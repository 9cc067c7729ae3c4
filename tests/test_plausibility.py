"""Plausibility ranges and the out-of-distribution score: results that cannot be true are
flagged with a sentence naming the structure, the value and the range (issue 11)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference.card import CardError, ModelCard  # noqa: E402
from inference.components import plausibility_flags as flags  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.postprocess import ood_score_segmentation  # noqa: E402
from radlens_core.results import Box, LabelClass, LabelMap  # noqa: E402
from tests.inference_factory import (  # noqa: E402
    ct_volume,
    save_det_package,
    save_seg_package,
    seg_card,
)

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")

LABELS = (LabelClass(1, "lung", "#4fc3f7"), LabelClass(2, "nodule", "#ff7043"))


def _card(tmp_path, **over) -> ModelCard:
    data = {**seg_card(**over), "files": {"model.safetensors": "0" * 64}}
    data["network"] = {**data["network"], "format": "safetensors", "weights": "model.safetensors"}
    return ModelCard.from_dict(data, tmp_path)


def test_a_volume_outside_its_range_is_flagged_naming_structure_value_and_range(tmp_path):
    card = _card(tmp_path, plausibility={"volume_ml": {"lung": [2500, 8000]}})
    lm = LabelMap(np.zeros((4, 4, 4), np.uint8), LABELS, {"lung": 365.0, "nodule": 0.0})
    (flag,) = flags(card, lm, (), (1.0, 1.0, 1.0), None)
    assert flag.code == "volume_out_of_range"
    assert flag.message == "lung 365 mL is outside the expected 2,500–8,000 mL for this model"


def test_too_many_and_too_large_findings_are_flagged(tmp_path):
    card = _card(
        tmp_path,
        plausibility={"max_findings": 2, "max_finding_mm": 30, "finding_labels": ["nodule"]},
    )
    arr = np.zeros((10, 40, 40), np.uint8)
    arr[1, 1, 1] = arr[1, 5, 5] = arr[1, 9, 9] = 2  # three one-voxel nodules
    arr[3:8, 10:38, 10:30] = 2  # one 28 voxels across: 56 mm at 2 mm
    arr[:, :, 35:] = 1  # lung is not a finding
    lm = LabelMap(arr, LABELS, {"lung": 1.0, "nodule": 1.0})
    got = {f.code: f.message for f in flags(card, lm, (), (2.0, 2.0, 2.0), None)}
    assert got["too_many_findings"] == "4 nodule findings; this model expects at most 2"
    assert got["finding_too_large"] == (
        "a nodule finding 56 mm across is larger than the 30 mm this model expects"
    )


def test_boxes_are_the_findings_of_a_detector(tmp_path):
    card = _card(tmp_path, plausibility={"max_findings": 1, "max_finding_mm": 20})
    boxes = (Box((0, 0, 0, 4, 4, 4), "nodule", 0.9), Box((0, 0, 0, 1, 40, 1), "nodule", 0.8))
    got = {f.code: f.message for f in flags(card, None, boxes, (1.0, 0.5, 0.5), None)}
    assert got["too_many_findings"] == "2 nodule findings; this model expects at most 1"
    assert got["finding_too_large"] == (
        "a nodule finding 20.5 mm across is larger than the 20 mm this model expects"
    )


def test_an_ood_score_outside_the_measured_range_is_flagged(tmp_path):
    card = _card(tmp_path, ood={"score": "mean_max_softmax_foreground", "range": [0.9, 1.0]})
    assert flags(card, None, (), (1.0,) * 3, 0.95) == []
    (flag,) = flags(card, None, (), (1.0,) * 3, 0.61)
    assert flag.code == "out_of_distribution"
    assert "mean max softmax foreground is 0.610, outside the 0.900–1.000" in flag.message


def test_mean_max_softmax_is_taken_over_the_predicted_foreground_only():
    probs = torch.tensor([[[0.9, 0.2, 0.4]], [[0.1, 0.8, 0.6]]])  # (C=2, 1, 3)
    assert ood_score_segmentation(probs, "softmax") == pytest.approx(0.7)
    assert ood_score_segmentation(torch.tensor([[[1.0]], [[0.0]]]), "softmax") is None


@pytest.mark.parametrize(
    ("field", "value", "sentence"),
    [
        ("plausibility", {"volume_ml": {"liver": [1, 2]}}, "is not one of the card's labels"),
        ("plausibility", {"volume_ml": {"lung": [9, 2]}}, "has min 9.0 above max 2.0"),
        ("plausibility", {"max_findings": -1}, "must be a non-negative integer"),
        ("plausibility", {"biggest": 3}, "has unknown keys ['biggest']"),
        ("ood", {"score": "max_probability", "range": [0, 1]}, "not computed for a segmentation"),
        ("ood", {"score": "entropy_of_the_moon", "range": [0, 1]}, "expected one of"),
        ("ood", {"score": "mean_max_softmax_foreground", "range": [1]}, "must be [min, max]"),
        ("max_input_size", [10, 10], "must be null or 3 positive integers"),
    ],
)
def test_bad_plausibility_and_ood_fields_are_refused(tmp_path, field, value, sentence):
    with pytest.raises(CardError) as err:
        _card(tmp_path, **{field: value})
    assert f"field '{field}" in str(err.value) and sentence in str(err.value)


def test_the_engine_reports_the_ood_score_and_flags_on_the_run(tmp_path):
    card = save_seg_package(
        tmp_path / "pkg",
        plausibility={"volume_ml": {"lung": [1e6, 2e6]}},
        ood={"score": "mean_max_softmax_foreground", "range": [0.999, 1.0]},
    )
    res = Engine("cpu").run(ct_volume(), (1.5, 1.5, 2.5), np.eye(3), "CT", card)
    run = res.run
    assert run.ood_score is not None and 0.0 < run.ood_score <= 1.0
    assert run.ood_range == (0.999, 1.0) and not run.outside_intended_use
    codes = [f.code for f in run.flags]
    assert "volume_out_of_range" in codes and run.flagged
    summary = json.loads(json.dumps(res.summary()))
    assert summary["ood_range"] == [0.999, 1.0] and summary["flags"][0]["message"]


def test_an_override_is_marked_on_the_run(tmp_path):
    card = save_det_package(tmp_path / "det")
    res = Engine("cpu").run(
        ct_volume(), (1.5, 1.5, 2.5), np.eye(3), "CT", card, outside_intended_use=True
    )
    assert res.run.outside_intended_use and res.run.flags[0].code == "outside_intended_use"
    assert "outside intended use" in res.run.flags[0].message
    assert Engine("cpu").run(ct_volume(), (1.5, 1.5, 2.5), np.eye(3), "CT", card).run.flags == ()


def test_a_detectors_ood_score_is_its_mean_or_highest_box_score():
    from inference.postprocess import ood_score_detection

    boxes = (Box((0, 0, 0, 1, 1, 1), "nodule", 0.9), Box((0, 0, 0, 1, 1, 1), "nodule", 0.5))
    assert ood_score_detection(boxes) == pytest.approx(0.7)
    assert ood_score_detection(boxes, "max_box_score") == pytest.approx(0.9)
    assert ood_score_detection((), "max_box_score") is None


def test_findings_count_and_extent_match_a_whole_map_labelling():
    """Findings are counted box by box (inference.components.component_boxes); the count and
    each extent in mm are those of labelling the whole map."""
    from scipy import ndimage

    from inference.components import _findings
    from radlens_core.results import LabelClass, LabelMap

    rng = np.random.default_rng(5)
    arr = np.zeros((30, 50, 60), np.uint8)
    arr[2:28, 5:45, 5:55] = 1  # a big "lung" around everything
    for _ in range(15):
        z, y, x = (int(rng.integers(0, s - 4)) for s in arr.shape)
        d = [int(v) for v in rng.integers(1, 5, 3)]
        arr[z : z + d[0], y : y + d[1], x : x + d[2]] = 2
    lm = LabelMap(arr, (LabelClass(1, "lung"), LabelClass(2, "nodule")), {})
    spacing = (2.5, 0.7, 0.8)
    found = _findings(lm, (), spacing, {"nodule"})
    comp, _ = ndimage.label(arr == 2)
    want = sorted(
        float((np.array([s.stop - s.start for s in sl]) * np.array(spacing)).max())
        for sl in ndimage.find_objects(comp)
    )
    assert sorted(mm for _, mm in found) == pytest.approx(want)
    assert {name for name, _ in found} == {"nodule"}
