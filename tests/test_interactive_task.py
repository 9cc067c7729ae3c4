"""The engine's interactive (promptable) task: prompt handling, patch geometry, the model
boundary (card, hashes, memory estimate, device), and the mask it answers with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from inference.card import CardError, ModelCard
from inference.engine import Engine, EngineError, clear_cache
from inference.interactive import mask_of, segment_with_prompts
from inference.tasks import interactive as task
from inference.tasks.interactive import PromptError, Prompts
from radlens_core.progress import Cancelled
from radlens_core.results import Task

PATCH = (16, 16, 16)


def _card(**over) -> dict:
    card = {
        "id": "test-prompt",
        "name": "test promptable",
        "version": "0.1",
        "task": "interactive",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "input_channels": 4,
        "patch_size": list(PATCH),
        "preprocessing": {"steps": [{"op": "clip_scale", "a_min": -1000, "a_max": 400}]},
        "labels": [{"index": 1, "name": "structure", "color": "#ffd54f"}],
        "inference": {"interactive": {"min_extent_mm": 20, "margin": 1.2, "click_radius": 1.5}},
        "network": {
            "architecture": "monai.UNet",
            "kwargs": {
                "spatial_dims": 3,
                "in_channels": 4,
                "out_channels": 1,
                "channels": [4, 8],
                "strides": [2],
                "num_res_units": 0,
            },
            "output": "sigmoid",
        },
        "intended_use": "tests only",
    }
    card.update(over)
    return card


@pytest.fixture
def package(tmp_path: Path) -> ModelCard:
    import torch

    from inference.networks import build_network
    from inference.weights import save_package

    torch.manual_seed(0)
    data = _card()
    net = build_network(data["network"]["architecture"], data["network"]["kwargs"])
    clear_cache()
    return save_package(tmp_path / "pkg", data, net)


def _volume(shape=(20, 40, 40)) -> np.ndarray:
    img = np.full(shape, -800, np.int16)
    img[5:15, 10:30, 10:30] = 40
    return img


def test_points_are_checked_against_the_image():
    shape = (10, 20, 20)
    pos, neg = Prompts(positive=((1, 2, 3),), negative=((4, 5, 6),)).points(shape)
    assert pos.shape == (1, 3) and neg.shape == (1, 3)
    with pytest.raises(PromptError, match="outside the image"):
        Prompts(positive=((10, 2, 3),)).points(shape)
    with pytest.raises(PromptError, match="outside the image"):
        Prompts(negative=((0, float("nan"), 3),)).points(shape)


def test_scribble_becomes_points_of_its_sign_and_is_thinned():
    shape = (10, 80, 80)
    scribble = np.zeros(shape, np.int8)
    scribble[2:8, :, 10] = 1  # 480 voxels
    scribble[:, :, 70] = -1  # 800 voxels
    pos, neg = Prompts(scribble=scribble).points(shape)
    assert len(pos) == 480 and len(neg) == 800
    assert (pos[:, 2] == 10).all() and (neg[:, 2] == 70).all()
    big = np.ones(shape, np.int8)  # 64000 voxels: thinned to the cap
    pos, _ = Prompts(scribble=big).points(shape)
    assert 0 < len(pos) <= task.MAX_POINTS // 2
    with pytest.raises(PromptError, match="scribble has shape"):
        Prompts(scribble=np.zeros((3, 3, 3), np.int8)).points(shape)


def test_box_is_ordered_and_clipped_and_refused_when_malformed():
    b = Prompts(box=(9, 30, 2, 1, -5, 8)).checked_box((10, 20, 20))
    assert b.tolist() == [1, 0, 2, 9, 19, 8]
    with pytest.raises(PromptError, match="six finite corners"):
        Prompts(box=(1, 2, 3)).checked_box((10, 20, 20))  # type: ignore[arg-type]


def test_patch_covers_the_prompts_and_stays_inside_the_image():
    spec = task.PatchSpec(PATCH, 20.0, 1.2, 1.5)
    shape, sp = (40, 100, 100), (2.0, 1.0, 1.0)
    pos = np.array([[5.0, 10.0, 10.0], [30.0, 60.0, 80.0]])
    patch = task.place_patch(spec, shape, sp, pos, np.zeros((0, 3)), None, None)
    region = patch.region(shape)
    for a, s in enumerate(region):
        assert s.start <= pos[:, a].min() and pos[:, a].max() < s.stop
        assert 0 <= s.start and s.stop <= shape[a]
    # One click: at least min_extent_mm per side, isotropic in mm.
    one = task.place_patch(spec, shape, sp, pos[:1], np.zeros((0, 3)), None, None)
    mm = one.step * (np.asarray(PATCH) - 1) * np.asarray(sp)
    assert np.allclose(mm, mm[0]) and mm[0] >= 20.0 * (15 / 16) - 1e-6


def test_sampling_is_trilinear_on_the_patch_grid():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(12, 30, 25)).astype(np.float32)
    patch = task.Patch(np.array([1.3, 2.7, 0.5]), np.array([0.6, 1.4, 1.1]), (8, 9, 10))
    got = task.sample(vol, patch)
    grid = np.meshgrid(*[patch.axis(a) for a in range(3)], indexing="ij")
    want = ndimage.map_coordinates(vol, grid, order=1, mode="nearest")
    assert got.shape == (8, 9, 10)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_encoding_puts_clicks_box_and_previous_mask_in_their_channels():
    spec = task.PatchSpec(PATCH, 16.0, 1.0, 1.0)
    patch = task.Patch(np.zeros(3), np.ones(3), PATCH)  # model grid == image voxels 0..15
    prev = np.zeros((16, 16, 16), bool)
    prev[2:5, 2:5, 2:5] = True
    img = np.zeros(PATCH, np.float32)
    x = task.encode(
        img, patch, spec, np.array([[8.0, 8, 8]]), np.array([[1.0, 1, 14]]),
        np.array([10.0, 10, 10, 12, 12, 12]), prev,
    )  # fmt: skip
    assert x.shape == (4, *PATCH) and x.dtype == np.float32
    assert x[1, 8, 8, 8] == 1.0 and x[1, 8, 8, 9] == 1.0 and x[1, 8, 8, 10] == 0.0
    assert x[1, 11, 11, 11] == task.BOX_VALUE and x[1, 13, 13, 13] == 0.0
    assert x[2, 1, 1, 14] == 1.0 and x[2].sum() == 7  # a ball of radius 1: 7 voxels
    assert (x[3] > 0.5).sum() == 27


def test_paste_maps_the_patch_back_onto_the_voxels_it_covers():
    import torch

    patch = task.Patch(np.array([2.0, 4.0, 6.0]), np.array([0.5, 2.0, 1.0]), (8, 8, 8))
    logits = torch.full((8, 8, 8), -1.0)
    logits[:, :4] = 1.0  # model rows 0..3 -> image rows 4..10 (row 11 interpolates to 0)
    region, inside = task.paste(logits, patch, (20, 30, 30))
    assert region == (slice(2, 6), slice(4, 19), slice(6, 14))
    assert inside.shape == (4, 15, 8)
    assert inside[:, :7].all() and not inside[:, 7:].any()


def test_prompt_round_answers_a_mask_on_the_image_grid(package: ModelCard):
    img = _volume()
    prev = np.zeros(img.shape, bool)
    prev[0, 0, 0] = True  # far from the click: outside the patch, kept as it was
    steps: list[float] = []
    res = segment_with_prompts(
        Engine(device="cpu"), img, (2.0, 1.0, 1.0), "CT", package,
        Prompts(positive=((10, 20, 20),), negative=((10, 12, 12),)), previous=prev,
        progress=lambda f, s: steps.append(f),
    )  # fmt: skip
    assert res.run.task == Task.INTERACTIVE and res.run.device == "cpu"
    assert res.label_map is not None and res.label_map.array.shape == img.shape
    assert res.label_map.array.dtype == np.uint8
    assert set(np.unique(res.label_map.array)) <= {0, 1}
    assert mask_of(res)[0, 0, 0]
    assert steps == sorted(steps) and steps[-1] == 1.0
    assert {"preprocess", "inference", "postprocess", "total"} <= set(res.run.timings)


def test_a_box_alone_is_a_prompt_and_nothing_is_refused(package: ModelCard):
    res = segment_with_prompts(
        Engine(device="cpu"), _volume(), (2.0, 1.0, 1.0), "CT", package,
        Prompts(box=(5, 10, 10, 14, 29, 29)),
    )  # fmt: skip
    assert res.label_map is not None and res.label_map.array.shape == (20, 40, 40)


def test_no_positive_prompt_is_refused_in_a_sentence(package: ModelCard):
    with pytest.raises(PromptError, match="at least one positive click"):
        segment_with_prompts(
            Engine(device="cpu"), _volume(), (2, 1, 1), "CT", package,
            Prompts(negative=((1, 1, 1),)),
        )  # fmt: skip


def test_previous_mask_of_another_shape_is_refused(package: ModelCard):
    with pytest.raises(PromptError, match="previous mask has shape"):
        segment_with_prompts(
            Engine(device="cpu"), _volume(), (2, 1, 1), "CT", package,
            Prompts(positive=((1, 1, 1),)), previous=np.zeros((3, 3, 3), bool),
        )  # fmt: skip


def test_wrong_modality_and_2d_images_are_refused(package: ModelCard):
    with pytest.raises(EngineError, match="for CT images"):
        segment_with_prompts(
            Engine(device="cpu"),
            _volume(),
            (2, 1, 1),
            "MR",
            package,
            Prompts(positive=((1, 1, 1),)),
        )
    with pytest.raises(EngineError, match="needs a volume"):
        segment_with_prompts(
            Engine(device="cpu"), np.zeros((1, 40, 40), np.int16), (2, 1, 1), "CT", package,
            Prompts(positive=((0, 1, 1),)),
        )  # fmt: skip


def test_weights_that_fail_their_hash_are_refused(package: ModelCard):
    weights = package.path / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    clear_cache()
    with pytest.raises(EngineError, match="cannot be used"):
        segment_with_prompts(
            Engine(device="cpu"),
            _volume(),
            (2, 1, 1),
            "CT",
            package,
            Prompts(positive=((1, 1, 1),)),
        )


def test_a_segmentation_card_is_not_a_promptable_model(package: ModelCard, tmp_path: Path):
    data = json.loads((package.path / "model.json").read_text())
    data["task"] = "segmentation"
    other = ModelCard.from_dict(data, package.path)
    with pytest.raises(EngineError, match="not a promptable one"):
        segment_with_prompts(
            Engine(device="cpu"), _volume(), (2, 1, 1), "CT", other, Prompts(positive=((1, 1, 1),))
        )


def test_bad_interactive_cards_are_refused_naming_the_field(package: ModelCard):
    good = json.loads((package.path / "model.json").read_text())

    def card(**over) -> ModelCard:
        return ModelCard.from_dict({**good, **over}, package.path)

    with pytest.raises(CardError, match="labels"):
        card(labels=[])
    with pytest.raises(CardError, match="architecture"):
        card(network={**good["network"], "architecture": "evil.Net"})
    bad = card(inference={"interactive": {"click_radius": 99}})
    with pytest.raises(CardError, match="click_radius"):
        task.PatchSpec.from_card(bad.inference, bad.patch_size)
    bad = card(patch_size=None)
    with pytest.raises(CardError, match="3D patch_size"):
        task.PatchSpec.from_card(bad.inference, bad.patch_size)
    with pytest.raises(EngineError, match="3D patch_size"):  # refused before anything runs
        segment_with_prompts(
            Engine(device="cpu"), _volume(), (2, 1, 1), "CT", bad, Prompts(positive=((1, 1, 1),))
        )


def test_a_run_that_would_not_fit_in_memory_is_refused_first(package: ModelCard, monkeypatch):
    import inference.memory

    monkeypatch.setattr(inference.memory, "available_memory", lambda: 1000)
    with pytest.raises(EngineError, match="would need about"):
        segment_with_prompts(
            Engine(device="cpu"),
            _volume(),
            (2, 1, 1),
            "CT",
            package,
            Prompts(positive=((1, 1, 1),)),
        )


def test_cancel_stops_the_round(package: ModelCard):
    with pytest.raises(Cancelled):
        segment_with_prompts(
            Engine(device="cpu"), _volume(), (2, 1, 1), "CT", package,
            Prompts(positive=((10, 20, 20),)), cancel=lambda: True,
        )  # fmt: skip


def test_registry_never_offers_a_promptable_model_for_analyze(package: ModelCard):
    from inference.registry import admission
    from radlens_core.admission import SeriesFacts

    adm = admission(package, SeriesFacts("CT", 3, (20, 40, 40), "CHEST"))
    assert not adm.admitted
    assert any("Prompt tool" in r for r in adm.reasons)


def test_shipped_promptable_model_says_how_it_was_trained_and_verifies():
    from inference.registry import find_model
    from inference.weights import verify_files

    card = find_model("radlens-ct-prompt")
    verify_files(card)
    assert card.task == "interactive" and card.input_channels == 4
    assert "not for diagnosis" in card.intended_use
    assert card.training["script"].startswith("python -m demo_models.interactive")
    assert "own loop" in card.training["loop"] and "phantoms" in card.training["data"]
    spec = task.PatchSpec.from_card(card.inference, card.patch_size)
    assert spec.channels == ("image", "positive", "negative", "previous")


def test_training_recipe_writes_a_package_the_engine_accepts(tmp_path: Path):
    from demo_models.interactive import main

    assert main(["--quick", "--out", str(tmp_path), "--threads", "1"]) == 0
    card = ModelCard.load(tmp_path / "radlens-ct-prompt")
    # The card names the phantoms' sizes it drew (the default: the first releases' low ones).
    assert card.training["phantom_sizes"] == "40-71 x 112-175 x 112-175"
    assert card.training["phantom_sizes"] in card.training["data"]
    clear_cache()
    res = segment_with_prompts(
        Engine(device="cpu"), _volume(), (2, 1, 1), "CT", card, Prompts(positive=((10, 20, 20),))
    )
    assert res.label_map is not None and res.label_map.array.shape == (20, 40, 40)


def test_region_answer_is_the_full_answer_where_the_patch_lies(package: ModelCard):
    from inference.interactive import refine_region

    img = _volume()
    prev = np.zeros(img.shape, bool)
    prev[:, :3, :3] = True
    prompts = Prompts(positive=((10, 20, 20),))
    full = segment_with_prompts(
        Engine(device="cpu"), img, (2, 1, 1), "CT", package, prompts, previous=prev
    )
    part = refine_region(Engine(device="cpu"), img, (2, 1, 1), "CT", package, prompts, prev)
    assert part.mask.shape == tuple(s.stop - s.start for s in part.region)
    expected = prev.copy()
    expected[part.region] = part.mask
    assert np.array_equal(mask_of(full), expected)
    assert part.run.task == Task.INTERACTIVE


def test_paste_is_trilinear_interpolation_of_the_logits_thresholded_at_zero():
    from scipy import ndimage

    from inference.tasks.interactive.grid import Patch, paste

    rng = np.random.default_rng(0)
    logits = ndimage.gaussian_filter(rng.normal(size=(12, 14, 10)), 1.5).astype(np.float32)
    patch = Patch(np.array([2.3, -1.0, 4.7]), np.array([1.7, 2.2, 0.9]), (12, 14, 10))
    region, mask = paste(logits, patch, (30, 40, 20))
    assert region == (slice(3, 22), slice(0, 28), slice(5, 13))
    axes = [
        np.clip((np.arange(s.start, s.stop) - patch.lo[a]) / patch.step[a], 0, patch.shape[a] - 1)
        for a, s in enumerate(region)
    ]
    coords = np.meshgrid(*axes, indexing="ij")
    expected = ndimage.map_coordinates(logits.astype(np.float64), coords, order=1) > 0
    assert mask.any() and not mask.all()
    assert np.array_equal(mask, expected)
    # Within a few cells: the same answer there, on a smaller region around them.
    cells = np.zeros(logits.shape, bool)
    cells[4:6, 3:5, 2:4] = True
    sub, part = paste(logits, patch, (30, 40, 20), within=cells)
    assert all(s.start >= r.start and s.stop <= r.stop for s, r in zip(sub, region, strict=True))
    assert part.size < mask.size // 4
    inner = tuple(
        slice(s.start - r.start, s.stop - r.start) for s, r in zip(sub, region, strict=True)
    )
    assert np.array_equal(part, mask[inner])


def test_zscore_is_fitted_on_the_whole_image_once_not_per_patch():
    from inference.tasks.interactive.intensity import FittedCache

    img = np.zeros((20, 30, 30), np.int16)
    img[:, :, 15:] = 1000
    cache = FittedCache()
    fitted = cache.get(img, "m", [{"op": "zscore"}])
    # The whole image's mean 500 and std 500: a patch of only the bright half still maps
    # 1000 to +1 (its own statistics would give 0).
    assert np.allclose(fitted.apply(img[:5, :5, 20:]), 1.0)
    assert np.allclose(fitted.apply(img[:5, :5, :5]), -1.0)
    assert cache.get(img, "m", [{"op": "zscore"}]) is fitted  # kept between clicks
    assert cache.get(img.copy(), "m", [{"op": "zscore"}]) is not fitted  # another image
    clip = cache.get(img, "c", [{"op": "clip_scale", "a_min": 0, "a_max": 2000}])
    assert np.allclose(clip.apply(np.array([1000.0])), 0.5)


def test_an_answer_reaching_the_patch_side_is_asked_again_on_a_wider_patch(tmp_path, monkeypatch):
    import torch

    from inference.interactive import refine_region
    from inference.networks import build_network
    from inference.weights import save_package

    data = _card()
    data["inference"]["interactive"]["zoom_out"] = 2
    net = build_network(data["network"]["architecture"], data["network"]["kwargs"])
    clear_cache()
    card = save_package(tmp_path / "zoom", data, net)
    seen = []

    def everywhere(ctx, x):  # the structure fills every patch: it always reaches the side
        seen.append(x.shape)
        return torch.ones(x.shape[1:])

    monkeypatch.setattr(task, "predict_patch", everywhere)
    img = np.zeros((40, 80, 80), np.int16)
    one = refine_region(Engine(device="cpu"), img, (1, 1, 1), "CT", card, Prompts(((20, 40, 40),)))
    sizes = [s.stop - s.start for s in one.region]
    assert len(seen) == 3  # the first patch and two zooms out
    assert sizes[1] > 40 and one.mask.all()  # wider than the 20 mm patch x 1.2 margin

    seen.clear()
    data["inference"]["interactive"]["zoom_out"] = 0
    clear_cache()
    card = save_package(tmp_path / "nozoom", data, net)
    one = refine_region(Engine(device="cpu"), img, (1, 1, 1), "CT", card, Prompts(((20, 40, 40),)))
    assert len(seen) == 1 and max(s.stop - s.start for s in one.region) <= 21


def test_with_focus_a_click_only_adds_or_removes_what_connects_to_it(tmp_path, monkeypatch):
    import torch

    from inference.interactive import refine_region
    from inference.networks import build_network
    from inference.weights import save_package

    img = np.zeros((20, 40, 40), np.int16)
    previous = np.zeros(img.shape, bool)
    previous[8:12, 5:12, 5:12] = True  # a part the answer drops (far from the click)
    previous[8:12, 20:26, 20:26] = True  # the part the click extends

    def answer(ctx, x):  # the model's answer: the clicked part grown, the far part gone
        prev = torch.from_numpy(x[3].copy())
        out = -torch.ones(prev.shape)
        out[prev > 0.5] = 1.0
        ys = torch.arange(prev.shape[1])
        out[:, (ys < prev.shape[1] // 3)] = -1.0  # the far part (low y) is dropped
        near = prev.nonzero().float().mean(0).round().long()
        z, y, xx = near.tolist()
        out[max(z - 3, 0) : z + 4, y : y + 6, xx : xx + 6] = 1.0  # grown beside the click
        return out

    monkeypatch.setattr(task, "predict_patch", answer)
    net = build_network(_card()["network"]["architecture"], _card()["network"]["kwargs"])
    results = {}
    for focus in (False, True):
        data = _card()
        data["inference"]["interactive"] = {
            "min_extent_mm": 40, "margin": 1.2, "click_radius": 1.5, "focus": focus,
        }  # fmt: skip
        clear_cache()
        card = save_package(tmp_path / str(focus), data, net)
        prompts = Prompts(positive=((10, 23, 23), (10, 26, 26)), focus=(10, 26, 26))
        one = refine_region(Engine(device="cpu"), img, (1, 1, 1), "CT", card, prompts, previous)
        full = previous.copy()
        full[one.region] = one.mask
        results[focus] = full
    # Without focus the far part is gone; with it only the change at the click is taken.
    assert not results[False][8:12, 5:12, 5:12].any()
    assert results[True][8:12, 5:12, 5:12].all()
    grown = results[False] & ~previous
    assert grown.any() and np.array_equal(results[True] & ~previous, grown)
    # A negative click on the far part: only what it removes there, nothing added.
    prompts = Prompts(positive=((10, 23, 23),), negative=((10, 8, 8),), focus=(10, 8, 8))
    one = refine_region(Engine(device="cpu"), img, (1, 1, 1), "CT", card, prompts, previous)
    full = previous.copy()
    full[one.region] = one.mask
    assert not full[8:12, 5:12, 5:12].any()
    assert np.array_equal(full[:, 15:, 15:], previous[:, 15:, 15:])
