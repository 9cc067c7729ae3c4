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


def _random_specks(seed: int, shape=(40, 60, 70), n=25) -> np.ndarray:
    """Sparse blobs of random size, some touching, some one plane apart, some diagonal."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for _ in range(n):
        c = [int(rng.integers(0, s)) for s in shape]
        r = [int(rng.integers(0, 4)) for _ in shape]
        mask[tuple(slice(max(0, a - b), a + b + 1) for a, b in zip(c, r, strict=True))] = True
    mask[0, 0, 0] = mask[1, 1, 1] = True  # diagonal neighbours: two face components
    return mask


def _components(mask: np.ndarray) -> list[tuple[int, tuple[int, ...]]]:
    """(size, extent) of each face-connected component, sorted."""
    from scipy import ndimage

    comp, n = ndimage.label(mask)
    out = []
    for k, sl in enumerate(ndimage.find_objects(comp), start=1):
        size = int((comp[sl] == k).sum())
        out.append((size, tuple(s.stop - s.start for s in sl)))
    return sorted(out)


@pytest.mark.parametrize("seed", range(12))
def test_component_boxes_hold_every_voxel_and_split_no_component(seed):
    from inference.components import component_boxes

    mask = _random_specks(seed, n=5 + 3 * seed)
    boxes = component_boxes(mask)
    covered = np.zeros(mask.shape, np.int32)
    for box in boxes:
        covered[box] += 1
    assert covered.max() == 1  # disjoint
    assert not (mask & (covered == 0)).any()  # every True voxel is in a box
    pieces = sorted(c for box in boxes for c in _components(mask[box]))
    assert pieces == _components(mask)  # the same components, box by box


def test_component_boxes_of_an_empty_mask_and_the_box_limit():
    from inference.components import component_boxes

    assert component_boxes(np.zeros((5, 6, 7), bool)) == []
    mask = np.zeros((9, 9, 9), bool)
    mask[::2, ::2, ::2] = True  # 125 separate voxels
    assert len(component_boxes(mask)) == 125
    few = component_boxes(mask, max_boxes=10)
    assert len(few) <= 10
    assert sorted(c for b in few for c in _components(mask[b])) == _components(mask)


def test_a_size_rule_on_the_input_grid_drops_the_same_voxels_as_labelling_the_whole_map():
    from scipy import ndimage

    original = _random_specks(3, n=40).astype(np.uint8) * 2
    lab = original.copy()
    rules = parse_rules({"nodule": {"min_voxels": 20, "grid": "input"}}, NAMES, 3)
    comp, n = ndimage.label(lab == 2)
    sizes = np.bincount(comp.ravel())
    expected = lab.copy()
    expected[(comp > 0) & (sizes[comp] < 20)] = 0
    dropped = components.apply_on_input_grid(lab, rules, (1.0, 1.0, 1.0))
    assert np.array_equal(lab, expected)
    assert dropped == {2: int((expected != original).sum())} and dropped[2] > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_a_device_map_comes_back_whole_though_only_its_nonzero_box_is_copied(dtype):
    from inference.device_copy import nonzero_to_host

    t = torch.zeros((6, 7, 8), dtype=dtype)
    assert np.array_equal(nonzero_to_host(t, crop_on_cpu=True), np.zeros((6, 7, 8)))
    t[2, 3:5, 1] = 3
    t[4, 6, 6] = 1
    got = nonzero_to_host(t, crop_on_cpu=True)
    assert got.dtype == t.numpy().dtype and np.array_equal(got, t.numpy())
    full = torch.ones((3, 4), dtype=dtype)
    assert np.array_equal(nonzero_to_host(full, crop_on_cpu=True), full.numpy())
    if torch.cuda.is_available():
        assert np.array_equal(nonzero_to_host(t.cuda()), t.numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8, torch.int64])
def test_a_staged_copy_fills_the_whole_array_through_a_buffer_smaller_than_it(dtype):
    from inference.device_copy import staged_copy, to_host

    src = (torch.arange(5 * 7 * 9) % 251).to(dtype).reshape(5, 7, 9).transpose(0, 2)
    for nbytes in (8, 64, 100, 10_000):  # several chunks, a ragged last one, one chunk
        out = np.empty(tuple(src.shape), dtype=src.numpy().dtype)
        staged_copy(src, out, torch.empty(nbytes, dtype=torch.uint8))
        assert np.array_equal(out, src.numpy())
    with pytest.raises(ValueError, match="less than one element"):
        staged_copy(src, np.empty((9, 7, 5), out.dtype), torch.empty(0, dtype=torch.uint8))
    if torch.cuda.is_available():
        big = torch.rand((64, 256, 256), device="cuda").to(dtype)  # past the staging size
        assert np.array_equal(to_host(big), big.cpu().numpy())


def test_component_boxes_stop_cutting_a_staircase_past_their_scan_budget():
    """Planes nested like a staircase: every cut peels off one plane and leaves most of the
    map, to be looked into again. Past ``SCAN_VOLUMES`` map volumes the rest stays whole,
    and the components are still exactly those of the whole map."""
    from inference.components import component_boxes

    shape = (40, 60, 60)
    mask = np.zeros(shape, bool)
    lo = [0, 0, 0]
    for k in range(45):
        sl = [slice(a, n) for a, n in zip(lo, shape, strict=True)]
        sl[k % 3] = slice(lo[k % 3], lo[k % 3] + 1)
        mask[tuple(sl)] = True
        lo[k % 3] += 2
    boxes = component_boxes(mask)
    assert len(boxes) < 45  # the budget stopped the cutting
    assert sorted(c for b in boxes for c in _components(mask[b])) == _components(mask)
