"""Preprocessing and back-mapping on tiny arrays: the geometry must round-trip exactly."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import postprocess, preprocess  # noqa: E402


def test_reorientation_brings_a_feet_first_rotated_volume_to_lps_axes():
    # array x runs along P, y along L, z along I
    d = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]], float)
    perm, flip = preprocess.orientation_to_model(d, 3)
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    out = preprocess.reorient(arr, perm, flip)
    assert out.shape == (2, 4, 3)  # model (z=S, y=P, x=L)
    frame = preprocess.make_frame(arr.shape, (1, 1, 1), d, None)
    assert np.array_equal(postprocess.from_model_axes(np.ascontiguousarray(out), frame), arr)


def test_frame_resamples_to_target_spacing():
    frame = preprocess.make_frame((100, 256, 256), (0.7, 0.7, 1.25), np.eye(3), (2.0, 2.0, 4.0))
    assert frame.model_shape == (31, 90, 90)
    assert frame.model_spacing[0] == pytest.approx(125 / 31)


def test_chunked_upsampling_equals_one_trilinear_interpolate():
    probs = torch.rand(3, 5, 7, 6)
    whole = torch.nn.functional.interpolate(
        probs[None], size=(13, 20, 17), mode="trilinear", align_corners=False
    )[0]
    parts = torch.zeros_like(whole)
    for z0, z1, slab in preprocess.upsample_chunks(probs, (13, 20, 17), chunk=4):
        parts[:, z0:z1] = slab
    assert torch.allclose(whole, parts, atol=1e-5)


def test_labels_resample_by_nearest_neighbour_without_new_values():
    lab = np.zeros((4, 8, 8), np.uint8)
    lab[1:3, 2:6, 2:6] = 2
    lab[0, 0, 0] = 1
    out = preprocess.resample_labels(lab, (8, 16, 16))
    assert set(np.unique(out)) == {0, 1, 2}
    assert out.dtype == np.uint8


def test_intensity_steps_compose_in_order():
    x = torch.tensor([-2000.0, -1000.0, -300.0, 400.0, 3000.0])
    y = preprocess.intensity(x, [{"op": "clip_scale", "a_min": -1000, "a_max": 400}])
    assert torch.allclose(y, torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    z = preprocess.intensity(x, [{"op": "zscore"}])
    assert abs(float(z.mean())) < 1e-5
    m = preprocess.intensity(x, [{"op": "minmax"}])
    assert float(m.min()) == 0.0 and float(m.max()) == 1.0


def test_box_maps_back_through_scale_and_flip():
    frame = preprocess.make_frame((20, 10, 10), (1, 1, 1), np.diag([1, 1, -1.0]), (1, 1, 2))
    assert frame.model_shape == (10, 10, 10) and frame.flip[0]
    box = postprocess.box_to_input((1.0, 2.0, 3.0, 3.0, 4.0, 5.0), frame)
    # model z 1..3 -> oriented (1.5*2-0.5)..(3.5*2-0.5) = 2.5..6.5 -> flipped 19-6.5..19-2.5
    assert np.allclose(box, (12.5, 2.0, 3.0, 16.5, 4.0, 5.0))


def test_small_components_removed_and_largest_kept():
    lab = np.zeros((1, 20, 20), np.uint8)
    lab[0, 1:8, 1:8] = 1
    lab[0, 12:14, 12:14] = 1
    lab[0, 15, 1] = 2
    lab[0, 16:19, 16:19] = 2
    postprocess.clean_components(lab, {"min_component_voxels": 2, "largest_component": [1]})
    assert (lab == 1).sum() == 49 and (lab == 2).sum() == 9


def test_fast_argmax_matches_torch_argmax_including_ties():
    slab = torch.randint(0, 4, (3, 5, 6, 7)).float()  # many ties
    assert np.array_equal(postprocess.argmax_uint8(slab), slab.argmax(dim=0).numpy())


@pytest.mark.parametrize("shape", [(5, 9, 7), (23, 40, 33)])
def test_slab_resampling_equals_one_trilinear_interpolate(shape):
    vol = np.random.default_rng(2).integers(-1000, 1000, (2, 12, 20, 15)).astype(np.int16)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(vol.astype(np.float32))[None],
        size=shape,
        mode="trilinear",
        align_corners=False,
    )[0]
    assert torch.allclose(preprocess.resample_volume(vol, shape, chunk=3), ref, atol=1e-3)


@pytest.mark.parametrize("smooth", [True, False])
def test_boundary_only_argmax_equals_dense_argmax(smooth):
    rng = np.random.default_rng(3)
    if smooth:  # blobs: most output voxels are far from a boundary (the sparse path)
        z, y, x = np.meshgrid(np.arange(10), np.arange(16), np.arange(14), indexing="ij")
        logits = np.stack(
            [np.zeros((10, 16, 14)), 8 - np.hypot(z - 4, y - 7) - 0.3 * x, (x - 9.0) * 2]
        )
    else:  # noise: every slab takes the dense path
        logits = rng.normal(size=(3, 10, 16, 14))
    probs = torch.from_numpy(logits.astype(np.float32)).softmax(0)
    shape = (27, 50, 41)
    ref = torch.nn.functional.interpolate(
        probs[None], size=shape, mode="trilinear", align_corners=False
    )[0]
    ref = ref.argmax(0).numpy()
    got = postprocess._argmax_upsampled(probs, shape)
    assert got.shape == shape and len(np.unique(ref)) == 3
    assert (got != ref).mean() < 1e-4  # float rounding at exact ties only


def test_heat_map_upsampling_skips_empty_slabs_but_keeps_the_peak():
    heat = torch.zeros(10, 8, 8)
    heat[6, 3:5, 3:5] = 0.9
    frame = preprocess.make_frame((40, 16, 16), (1, 1, 1), np.eye(3), (2, 2, 4))
    got = postprocess.heat_to_input(heat, frame)
    ref = torch.nn.functional.interpolate(
        heat[None, None], size=(40, 16, 16), mode="trilinear", align_corners=False
    )[0, 0]
    assert np.allclose(got, ref.numpy(), atol=1e-4)
    assert got[:16].max() == 0.0 and got.max() > 0.5


def test_many_specks_are_removed_in_one_pass_and_big_parts_kept():
    lab = np.zeros((8, 40, 40), np.uint8)
    lab[2:6, 10:30, 10:30] = 1
    lab[0, ::4, ::4] = 1  # 100 isolated single voxels
    postprocess.clean_components(lab, {"min_component_voxels": 2}, [1])
    assert lab[0].sum() == 0 and (lab == 1).sum() == 4 * 20 * 20


def test_unknown_or_oblique_direction_keeps_the_array_axes():
    assert preprocess.orientation_to_model(None, 3) == ((0, 1, 2), (False, False, False))
    c = np.cos(np.pi / 4)
    oblique = np.array([[c, c, 0], [-c, c, 0], [0, 0, 1.0]])  # x and y both 45 degrees off
    assert preprocess.orientation_to_model(oblique, 3)[0] == (0, 1, 2)
