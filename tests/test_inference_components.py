"""Per-label connected-component rules from a segmenter's card (inference/components.py)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import components  # noqa: E402
from inference.card import CardError, ModelCard  # noqa: E402
from inference.components import ComponentRule, RuleError, parse_rules  # noqa: E402

NAMES = {"lung": 1, "nodule": 2}


def _two_lungs_and_specks() -> np.ndarray:
    lab = np.zeros((4, 20, 30), np.uint8)
    lab[:, 2:18, 2:12] = 1  # left lung, 640 voxels (632 once the nodule is in)
    lab[:, 2:16, 16:26] = 1  # right lung, 560 voxels
    lab[1, 0, 0] = 1  # specks along the edge: 1 + 4 voxels
    lab[0:2, 19, 28:30] = 1
    lab[2, 10, 14] = 2  # one-voxel nodule speck
    lab[1:3, 5:7, 5:7] = 2  # 8-voxel nodule inside the lung box
    return lab


def _softmax_probs(lab: np.ndarray, n: int = 3):
    onehot = np.stack([(lab == k) for k in range(n)]).astype(np.float32)
    return torch.from_numpy(onehot * 4.0).softmax(0)


def test_keep_two_largest_lung_components_drops_edge_specks():
    lab = _two_lungs_and_specks()
    rules = parse_rules({"lung": {"keep_largest": 2, "grid": "input"}}, NAMES, 3)
    dropped = components.apply_on_input_grid(lab, rules, (1.0, 1.0, 1.0))
    assert dropped == {1: 5}
    assert (lab == 1).sum() == 632 + 560 and lab[1, 0, 0] == 0
    assert (lab == 2).sum() == 9  # another label is untouched


def test_min_size_in_ml_uses_the_grid_spacing():
    rule = ComponentRule(index=2, min_size=0.05, grid="input")
    assert rule.min_voxels_at(0.03125) == 2  # 2.5 x 2.5 x 5 mm voxels
    assert rule.min_voxels_at(0.001) == 50  # 1 mm voxels
    lab = _two_lungs_and_specks()
    # 8 voxels of 5 mm^3 = 0.04 mL < 0.05 mL: both nodules go; at 10 mm^3 the big one stays.
    small = components.apply_on_input_grid(lab.copy(), (rule,), (1.0, 1.0, 5.0))
    assert small == {2: 9}
    kept = lab.copy()
    components.apply_on_input_grid(kept, (rule,), (2.0, 1.0, 5.0))
    assert (kept == 2).sum() == 8 and kept[2, 10, 14] == 0


def test_model_grid_rule_moves_dropped_probability_to_background():
    lab = _two_lungs_and_specks()
    probs = _softmax_probs(lab)
    before = probs.clone()
    rules = parse_rules({"lung": {"keep_largest": 2}, "nodule": {"min_voxels": 2}}, NAMES, 3)
    dropped = components.apply_on_model_grid(probs, "softmax", [0, 1, 2], 0.5, rules, (1, 1, 1))
    assert dropped == {1: 5, 2: 1}
    got = probs.argmax(0).numpy()
    expect = lab.copy()
    expect[1, 0, 0] = expect[0:2, 19, 28:30] = expect[2, 10, 14] = 0
    assert np.array_equal(got, expect)
    assert torch.allclose(probs.sum(0), torch.ones(lab.shape))  # still a distribution
    assert torch.equal(probs[:, 3, 8, 8], before[:, 3, 8, 8])  # kept voxels untouched


def test_model_grid_rules_are_not_applied_on_the_input_grid():
    lab = _two_lungs_and_specks()
    rules = parse_rules({"lung": {"keep_largest": 1}}, NAMES, 3)
    assert components.apply_on_input_grid(lab, rules, (1, 1, 1)) == {}


def test_model_grid_rule_zeroes_a_sigmoid_channel():
    lab = _two_lungs_and_specks()
    probs = torch.from_numpy(np.stack([lab == 1, lab == 2]).astype(np.float32) * 0.9)
    rules = parse_rules({"nodule": {"min_voxels": 2}}, NAMES, 3)
    components.apply_on_model_grid(probs, "sigmoid", [1, 2], 0.5, rules, (1, 1, 1))
    assert float(probs[1, 2, 10, 14]) == 0.0 and float(probs[1, 1, 5, 5]) == pytest.approx(0.9)
    assert float(probs[0].sum()) == pytest.approx(0.9 * (lab == 1).sum())


def test_no_rules_leave_probabilities_alone():
    probs = _softmax_probs(_two_lungs_and_specks())
    before = probs.clone()
    assert components.apply_on_model_grid(probs, "softmax", [0, 1, 2], 0.5, (), (1, 1, 1)) == {}
    assert torch.equal(probs, before)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"liver": {"min_ml": 1}}, "thresholds.components.liver"),
        ({"lung": {"min_ml": -1}}, "thresholds.components.lung.min_ml"),
        ({"lung": {"keep_largest": 1.5}}, "thresholds.components.lung.keep_largest"),
        ({"lung": {"grid": "screen"}}, "thresholds.components.lung.grid"),
        ({"lung": {"min_mm": 3}}, "thresholds.components.lung.min_mm"),
        ({"lung": {"min_mm2": 3}}, "thresholds.components.lung.min_mm2"),
        ({"lung": 3}, "thresholds.components.lung"),
        ([1, 2], "thresholds.components"),
    ],
)
def test_bad_rules_name_the_field(raw, field):
    with pytest.raises(RuleError) as err:
        parse_rules(raw, NAMES, 3)
    assert err.value.field == field


def test_rules_accept_label_index_and_2d_area():
    (rule,) = parse_rules({"2": {"min_mm2": 4.0, "keep_largest": 1}}, NAMES, 2)
    assert (rule.index, rule.min_size, rule.keep_largest, rule.grid) == (2, 4.0, 1, "model")


def test_card_with_a_bad_component_rule_is_refused(tmp_path):
    from tests.inference_factory import save_seg_package

    card = save_seg_package(tmp_path / "pkg")
    data = card.to_json()
    data["thresholds"] = {"components": {"nodule": {"min_ml": "big"}}}
    with pytest.raises(CardError, match=r"thresholds\.components\.nodule\.min_ml"):
        ModelCard.from_dict(data, card.path)
