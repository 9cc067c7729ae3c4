"""RadLens's re-implementation of nnU-Net's preprocessing pieces equals nnU-Net's own functions,
array for array (nnunetv2 imported in-process; skipped without the 'nnunet' test extra)."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("nnunetv2") is None:
    pytest.skip("nnunetv2 (test extra 'nnunet') is not installed", allow_module_level=True)
torch = pytest.importorskip("torch")

from inference.nnunet.config import Resampling  # noqa: E402
from inference.nnunet.plans import read_config  # noqa: E402
from inference.nnunet.preprocess import preprocess  # noqa: E402
from inference.nnunet.resample import resample_channel  # noqa: E402
from inference.nnunet.sliding import compute_steps, gaussian_weights  # noqa: E402
from tests.nnunet_factory import synthetic_case, tiny_dataset, tiny_plans  # noqa: E402


@pytest.mark.parametrize(
    ("shape", "new_shape", "spacing", "new_spacing", "order", "force"),
    [
        ((10, 20, 22), (14, 17, 30), (3.5, 1.0, 1.0), (2.5, 1.2, 0.73), 3, None),  # separate z
        ((10, 20, 22), (10, 17, 30), (3.5, 1.0, 1.0), (3.5, 1.2, 0.73), 1, None),  # same z
        ((20, 9, 22), (25, 12, 18), (1.0, 4.0, 1.1), (0.8, 3.0, 1.35), 1, None),  # axis 1
        ((12, 14, 16), (15, 11, 20), (1.0, 1.2, 0.9), (0.8, 1.5, 0.72), 3, None),  # isotropic
        ((12, 14, 16), (15, 11, 20), (1.0, 1.2, 0.9), (0.8, 1.5, 0.72), 3, True),  # forced
        ((12, 14, 16), (12, 14, 16), (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 3, None),  # no-op
    ],
)
def test_resampling_equals_nnunet(shape, new_shape, spacing, new_spacing, order, force):
    from nnunetv2.preprocessing.resampling.default_resampling import (
        resample_data_or_seg_to_shape,
    )

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float16):
        data = rng.normal(0, 3, (2, *shape)).astype(dtype)
        expected = resample_data_or_seg_to_shape(
            data, new_shape, spacing, new_spacing, False, order, 0, force
        )
        rule = Resampling(order, 0, force)
        for c in range(2):
            got = resample_channel(data[c], new_shape, rule, spacing, new_spacing, dtype)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected[c])


def test_separate_z_with_linear_order_z_equals_nnunet():
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg

    data = np.random.default_rng(1).normal(0, 1, (1, 7, 12, 13)).astype(np.float32)
    expected = resample_data_or_seg(data, (11, 15, 10), False, 0, 3, True, order_z=1)
    got = resample_channel(
        data[0], (11, 15, 10), Resampling(3, 1, True), (4.0, 1, 1), (2.5, 0.8, 1.3)
    )
    np.testing.assert_array_equal(got, expected[0])


def _two_channel_plans(transpose, use_mask):
    plans = tiny_plans()
    plans["transpose_forward"] = list(transpose)
    plans["transpose_backward"] = [list(transpose).index(i) for i in range(3)]
    cfg = plans["configurations"]["3d_fullres"]
    cfg["normalization_schemes"] = ["CTNormalization", "ZScoreNormalization"]
    cfg["use_mask_for_norm"] = [False, use_mask]
    cfg["spacing"] = [2.9, 1.2, 0.95]
    props = plans["foreground_intensity_properties_per_channel"]
    props["1"] = dict(props["0"])  # the fingerprint has every channel; z-score ignores it
    dataset = tiny_dataset()
    dataset["channel_names"] = {"0": "CT", "1": "T2"}
    return plans, dataset


@pytest.mark.parametrize(
    ("transpose", "use_mask"), [((0, 1, 2), True), ((2, 0, 1), False), ((1, 2, 0), True)]
)
def test_preprocessing_equals_nnunet_default_preprocessor(transpose, use_mask):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans, dataset = _two_channel_plans(transpose, use_mask)
    ct, _ = synthetic_case((30, 34, 12), (3.3, 1.0, 0.9), seed=3)
    mr = np.where(ct != 0, np.abs(ct) * 0.7 + 15, 0).astype(np.float32)
    image = np.stack([ct, mr])
    spacing_zyx = (0.9, 1.0, 3.3)
    pm = PlansManager(copy.deepcopy(plans))
    cm = pm.get_configuration("3d_fullres")
    expected, _seg, props = DefaultPreprocessor(verbose=False).run_case_npy(
        image.copy(), None, {"spacing": list(spacing_zyx)}, pm, cm, dataset
    )
    config = read_config(plans, dataset, "3d_fullres", "nnUNetTrainer", [0, 1, 2])
    got, geom = preprocess(image, spacing_zyx, config)
    assert tuple(tuple(b) for b in props["bbox_used_for_cropping"]) == geom.bbox
    assert tuple(props["shape_before_cropping"]) == geom.shape_before_cropping
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_sliding_window_steps_and_gaussian_equal_nnunet():
    from nnunetv2.inference.sliding_window_prediction import (
        compute_gaussian,
        compute_steps_for_sliding_window,
    )

    for image, patch in [
        ((110, 64, 200), (64, 64, 96)),
        ((12, 13, 40), (12, 13, 16)),
        ((50, 70), (32, 48)),
    ]:
        assert compute_steps(image, patch) == compute_steps_for_sliding_window(image, patch, 0.5)
    for patch in [(12, 28, 40), (32, 48)]:
        ref = compute_gaussian(patch, 1 / 8, 10, torch.float16, torch.device("cpu")).numpy()
        np.testing.assert_array_equal(gaussian_weights(patch), ref)
