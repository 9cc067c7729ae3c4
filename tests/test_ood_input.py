"""The input OOD score (``input_histogram``): the network input's intensity histogram against
the reference the card measured on its validation data, for every task (issue 10/11)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from demo_models.calibrate import input_ood, network_input  # noqa: E402
from inference.card import CardError, ModelCard  # noqa: E402
from inference.components import plausibility_flags  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.networks import build_network  # noqa: E402
from inference.ood import (  # noqa: E402
    HISTOGRAM_SAMPLES,
    histogram_intersection,
    histogram_stride,
    input_histogram,
    input_score,
)
from inference.weights import save_package  # noqa: E402
from phantoms.chest import chest_ct  # noqa: E402
from tests.inference_factory import (  # noqa: E402
    CLS_KW,
    cls_card,
    ct_volume,
    save_det_package,
    save_seg_package,
    seg_card,
)

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")

BINS = 16


def _uniform(bins: int = BINS) -> list[float]:
    return [1.0 / bins] * bins


def _ood(histogram=None, lo: float = 0.5, **ref) -> dict:
    reference = {"range": [0.0, 1.0], "histogram": histogram or _uniform(), **ref}
    return {"score": "input_histogram", "range": [lo, 1.0], "reference": reference}


def _card(tmp_path, **over) -> ModelCard:
    data = {**seg_card(**over), "files": {"model.safetensors": "0" * 64}}
    data["network"] = {**data["network"], "format": "safetensors", "weights": "model.safetensors"}
    return ModelCard.from_dict(data, tmp_path)


def _phantom_input(card: ModelCard, seed: int, **look):
    ct = chest_ct((24, 48, 48), seed=seed, **look)
    return network_input(card, ct.hu, ct.spacing)


def test_a_shifted_look_scores_lower_than_the_reference_itself(tmp_path):
    card = _card(tmp_path)
    own = _phantom_input(card, 3)
    ref = input_histogram(own, (0.0, 1.0), 64)
    assert ref.sum() == pytest.approx(1.0) and (ref >= 0).all()
    assert histogram_intersection(ref, ref) == pytest.approx(1.0)
    same_look = histogram_intersection(input_histogram(_phantom_input(card, 4), (0, 1), 64), ref)
    shifted = _phantom_input(card, 4, contrast=0.6, noise_hu=40.0)
    shifted_score = histogram_intersection(input_histogram(shifted, (0, 1), 64), ref)
    # another patient in the same look overlaps far more than the same anatomy shifted
    assert 0.0 < shifted_score < same_look - 0.15 < same_look < 1.0
    assert histogram_intersection([1, 0, 0], [0, 0, 3]) == 0.0  # disjoint
    # normalised before comparing: counts and fractions of one shape score the same
    assert histogram_intersection([2, 2, 0], [0.25, 0.25, 0.5]) == pytest.approx(0.5)


def test_out_of_range_and_non_finite_values_count_in_the_end_bins():
    x = torch.tensor([[-5.0, 0.25, 0.75, 9.0, float("nan"), float("inf")]])
    assert input_histogram(x, (0.0, 1.0), 2).tolist() == pytest.approx([3 / 6, 3 / 6])
    assert input_histogram(np.full((1, 4), 0.9), (0.0, 1.0), 4).tolist() == [0, 0, 0, 1]


def test_large_inputs_are_subsampled_to_a_bounded_voxel_count():
    for shape in [(60, 140, 140), (600, 512, 512), (2, 4096, 4096), (7,)]:
        step = histogram_stride(shape)
        kept = int(np.prod([-(-s // step) for s in shape]))
        assert kept <= HISTOGRAM_SAMPLES and (step == 1 or kept > HISTOGRAM_SAMPLES // 8)
    assert histogram_stride((8, 8, 8)) == 1
    # the subsample still sees what the whole input holds: one half dark, one half bright
    x = torch.zeros(1, 96, 256, 256)
    x[:, :, :, 128:] = 1.0
    assert input_histogram(x, (0.0, 1.0), 2).tolist() == pytest.approx([0.5, 0.5])


def test_the_card_keeps_its_reference_as_written_and_round_trips(tmp_path):
    ood = _ood([0.5004, 0.5002, 0, 0], lo=0.8) | {"measured_on": "phantoms"}
    card = _card(tmp_path, ood=ood)  # a sum within 1 % of 1 is accepted (rounded fractions)
    assert card.ood["reference"]["histogram"] == [0.5004, 0.5002, 0.0, 0.0]
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_json())), tmp_path)
    assert again == card and again.ood["score"] == "input_histogram"
    # the score normalises it: the same histogram as an input scores exactly 1
    x = torch.tensor([[0.1] * 5004 + [0.3] * 5002])
    assert input_score(card.ood, x) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ood", "field", "sentence"),
    [
        (_ood(None) | {"reference": None}, "ood.reference", "must be a JSON object"),
        ({"score": "input_histogram", "range": [0.5, 1.0]}, "ood.reference", "JSON object"),
        (_ood([1.0]), "ood.reference.histogram", "must be a list of 2-256 fractions, got 1 bins"),
        (_ood(_uniform(257)), "ood.reference.histogram", "2-256 fractions, got 257 bins"),
        (_ood([0.5, -0.1, 0.6]), "ood.reference.histogram", "finite non-negative numbers"),
        (_ood([0.5, float("nan"), 0.5]), "ood.reference.histogram", "finite non-negative"),
        (_ood([0.5, "0.5"]), "ood.reference.histogram", "finite non-negative numbers"),
        (_ood([1.0, 1.0]), "ood.reference.histogram", "sums to 2; the fractions of a histogram"),
        (_ood(range=[1.0, 0.0]), "ood.reference.range", "has min 1.0 above max 0.0"),
        (_ood(range=[0.5, 0.5]), "ood.reference.range", "min must be below max"),
        (_ood(bins=4), "ood.reference", "has unknown keys ['bins']; known: range, histogram"),
        (_ood() | {"range": [0.5, 1.5]}, "ood.range", "a histogram intersection lies within"),
        (
            {"score": "mean_max_softmax_foreground", "range": [0.9, 1.0], "reference": {}},
            "ood.reference",
            "is only read for 'input_histogram'",
        ),
    ],
)
def test_bad_input_histogram_fields_are_refused_with_a_sentence(tmp_path, ood, field, sentence):
    with pytest.raises(CardError) as err:
        _card(tmp_path, ood=ood)
    assert f"field '{field}'" in str(err.value) and sentence in str(err.value)


def test_an_nnunet_card_cannot_name_the_input_score(tmp_path):
    from inference.card_data import check_ood

    def error(field: str, why: str) -> Exception:
        return CardError(f"model.json: field '{field}' {why}")

    data = {"ood": _ood(), "network": {"architecture": "nnunet.PlainConvUNet"}}
    with pytest.raises(CardError, match="field 'ood.score' 'input_histogram' is not computed"):
        check_ood(data, "segmentation", error)


def test_the_flag_says_what_was_measured_and_keeps_the_sentence(tmp_path):
    card = _card(tmp_path, ood=_ood(lo=0.75))
    assert plausibility_flags(card, None, (), (1.0,) * 3, 0.9) == []
    (flag,) = plausibility_flags(card, None, (), (1.0,) * 3, 0.62)
    assert flag.code == "out_of_distribution"
    assert flag.message == (
        "the image looks unlike this model's validation data: its histogram of intensities,"
        " as the model sees them, overlaps theirs by 0.620 (histogram intersection), outside"
        " the 0.750–1.000 measured on that data"
    )


def _expected_score(card: ModelCard, image: np.ndarray, spacing) -> float:
    return input_score(card.ood, network_input(card, image, spacing))


def test_a_segmenter_reports_the_input_score_instead_of_its_confidence(tmp_path):
    image = ct_volume()
    spacing = (1.5, 1.5, 2.5)
    own = save_seg_package(tmp_path / "own", ood=_ood(lo=0.0))
    reference = input_histogram(network_input(own, image, spacing), (0.0, 1.0), BINS)
    like = save_seg_package(tmp_path / "like", ood=_ood(reference.tolist(), lo=0.9))
    res = Engine("cpu").run(image, spacing, np.eye(3), "CT", like)
    assert res.run.ood_score == pytest.approx(1.0) and res.run.ood_range == (0.9, 1.0)
    assert not res.run.flags
    # the same input against a reference that sits elsewhere: flagged
    far = save_seg_package(tmp_path / "far", ood=_ood([0.0] * (BINS - 1) + [1.0], lo=0.9))
    res = Engine("cpu").run(image, spacing, np.eye(3), "CT", far)
    assert res.run.ood_score == pytest.approx(_expected_score(far, image, spacing))
    assert res.run.ood_score < 0.2
    (flag,) = res.run.flags
    assert flag.code == "out_of_distribution" and "unlike this model's validation" in flag.message


def test_a_detector_may_use_the_input_score(tmp_path):
    image, spacing = ct_volume(), (1.5, 1.5, 2.5)
    card = save_det_package(tmp_path / "det", ood=_ood([0.0] * (BINS - 1) + [1.0], lo=0.9))
    res = Engine("cpu").run(image, spacing, np.eye(3), "CT", card)
    assert res.run.ood_score == pytest.approx(_expected_score(card, image, spacing))
    assert "out_of_distribution" in {f.code for f in res.run.flags}


def test_a_classifier_may_use_the_input_score(tmp_path):
    img = np.random.default_rng(1).random((1, 50, 44)).astype(np.float32)
    spacing = (0.5, 0.5, 1.0)

    def package(name: str, ood: dict) -> ModelCard:
        torch.manual_seed(0)
        card = cls_card(id=f"tiny-cls-{name}", ood=ood)
        return save_package(tmp_path / name, card, build_network("monai.DenseNet", CLS_KW))

    far = package("far", _ood(lo=0.9))  # uniform: resizing left the noise far from uniform
    res = Engine("cpu").run(img, spacing, np.eye(3), "DX", far)
    assert res.run.ood_score == pytest.approx(_expected_score(far, img, spacing))
    assert res.run.ood_score < 0.9
    assert [f.code for f in res.run.flags] == ["out_of_distribution"]
    reference = input_histogram(network_input(far, img, spacing), (0.0, 1.0), BINS).tolist()
    own = package("own", _ood(reference, lo=0.9))
    res = Engine("cpu").run(img, spacing, np.eye(3), "DX", own)
    assert res.run.ood_score == pytest.approx(1.0) and not res.run.flags
    assert max(res.classification.probabilities.values()) < 0.9  # not the confidence score


def test_calibration_puts_validation_inside_and_the_shifted_look_outside(tmp_path):
    card = _card(tmp_path)
    inputs = {"validation": [_phantom_input(card, s) for s in (5000, 5001, 5002)]}
    shifted = [_phantom_input(card, 1001, contrast=0.6, noise_hu=40.0)]
    ood = input_ood(card, inputs, shifted, bins=32)
    checked = _card(tmp_path, ood=ood).ood  # what calibration writes is a valid card field
    lo, hi = checked["range"]
    scores = [input_score(checked, x) for x in inputs["validation"]]
    assert hi == 1.0 and lo <= min(scores) - 0.05 + 1e-9 and max(scores) <= 1.0
    assert input_score(checked, shifted[0]) < lo
    assert checked["reference"]["range"] == [0.0, 1.0] and len(ood["reference"]["histogram"]) == 32
    assert "shifted look contrast 0.6 / noise 40 HU" in ood["measured_on"]
