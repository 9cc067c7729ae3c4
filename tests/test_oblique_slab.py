"""Oblique MPR frames, oblique resampling and thick slabs, checked against known geometry and
numpy (no Qt)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from viewer.study.volume import Volume
from viewer.ui.calibration import Calibration
from viewer.ui.oblique import Frame, ObliqueFrames, ObliqueSlice, rotation_matrix
from viewer.ui.planes import Plane, planes_for
from viewer.ui.slab import Slab, slab_of, slab_range

# An oblique, negated, anisotropic grid: nothing lines up by accident.
_C, _S = math.cos(0.3), math.sin(0.3)
DIRECTION = np.array([[_C, 0.0, _S], [0.0, -1.0, 0.0], [-_S, 0.0, _C]]) @ np.diag([-1, 1, 1])
SPACING = (0.9, 1.1, 2.0)  # x, y, z
ORIGIN = (12.0, -40.0, 7.5)
COEF = np.array([1.5, -2.0, 0.75])  # value = COEF . LPS + 10


def linear_volume(shape=(14, 20, 18)) -> Volume:
    """Every voxel holds a linear function of its LPS position: trilinear interpolation
    reproduces it exactly, so a resampled pixel must equal the function at its position."""
    vol = Volume(np.zeros(shape, np.float32), SPACING, ORIGIN, DIRECTION, modality="CT")
    zyx = np.indices(shape).reshape(3, -1).T
    lps = vol.index_to_patient(zyx)
    vol.array[...] = (lps @ COEF + 10.0).reshape(shape)
    return vol


def test_rotation_matrix_turns_right_towards_down_about_the_line_of_sight():
    r = rotation_matrix(np.array([0, 0, 1.0]), math.pi / 2)
    assert r @ np.array([1.0, 0, 0]) == pytest.approx([0, 1, 0], abs=1e-12)
    assert r.T @ r == pytest.approx(np.eye(3))


def test_turning_in_the_axial_view_tilts_the_other_planes_and_reset_restores_them():
    vol = linear_volume()
    planes = planes_for(vol)
    frames = ObliqueFrames()
    before = {p: frames.frame(planes[p]) for p in planes}
    frames.rotate(planes["axial"], math.radians(30))
    after = {p: frames.frame(planes[p]) for p in planes}
    assert not frames.is_oblique("axial") and frames.is_oblique("coronal")
    assert frames.is_oblique("sagittal")
    sight = before["axial"].sight
    for p in ("coronal", "sagittal"):
        # Turned about the axial line of sight: still perpendicular to it, 30 degrees over.
        assert float(after[p].normal @ sight) == pytest.approx(0, abs=1e-12)
        cos = float(after[p].normal @ before[p].normal)
        assert cos == pytest.approx(math.cos(math.radians(30)))
    assert float(after["coronal"].normal @ after["sagittal"].normal) == pytest.approx(0, abs=1e-12)
    # The axial view's crosshair lines turn by the same 30 degrees (clockwise on screen).
    base = before["axial"].line_angle(before["sagittal"].normal)
    turned = after["axial"].line_angle(after["sagittal"].normal)
    assert (turned - base) % 360 == pytest.approx(30)
    frames.reset()
    assert not frames.any_oblique


def test_an_unturned_oblique_slice_reproduces_the_stored_voxels():
    vol = Volume(
        np.random.default_rng(1).normal(size=(6, 9, 11)).astype(np.float32), (1.0, 1.0, 1.0)
    )
    plane = Plane.of(vol, "axial")
    ob = ObliqueSlice.build(vol.grid, Frame.of(plane))
    # A square as wide as the diagonal (sqrt(6^2 + 9^2 + 11^2) = 15.4 mm), odd-sized so the
    # voxel centres of an odd-sized volume fall on pixel centres.
    assert (ob.rows, ob.cols) == (17, 17)
    depth = ob.depth_of(vol.index_to_patient(np.array([4.0, 0.0, 0.0])))
    image = ob.sample(vol.array, depth, background=-99.0)
    assert image[4:13, 3:14] == pytest.approx(vol.array[4], abs=1e-5)
    image[4:13, 3:14] = -99.0
    assert np.all(image == -99.0)  # outside the volume: the background


@pytest.mark.parametrize("plane_name", ["axial", "coronal", "sagittal"])
def test_oblique_pixels_hold_the_value_of_the_patient_point_they_show(plane_name):
    vol = linear_volume()
    planes = planes_for(vol)
    frames = ObliqueFrames()
    frames.rotate(planes["axial"], math.radians(25))
    frames.rotate(planes["coronal"], math.radians(-40))
    ob = ObliqueSlice.build(vol.grid, frames.frame(planes[plane_name]))
    cursor = vol.index_to_patient(np.array([7.0, 9.5, 8.0]))
    x, y, t = ob.scene_of(cursor)
    assert ob.patient_of(x, y, t) == pytest.approx(cursor)  # the cursor lies on its plane
    image = ob.sample(vol.array, t)
    rows, cols = np.indices(image.shape)
    xs, ys = (cols + 0.5) * ob.pixel_mm, (rows + 0.5) * ob.pixel_mm
    f = ob.frame
    lps = ob.centre + (ob.x0 + xs)[..., None] * f.right + (ob.y0 + ys)[..., None] * f.down
    lps = lps + t * f.normal
    idx = vol.patient_to_index(lps.reshape(-1, 3)).reshape(*image.shape, 3)
    inside = np.all((idx >= 0) & (idx <= np.asarray(vol.shape) - 1), axis=-1)
    assert inside.sum() > 50
    expected = lps @ COEF + 10.0
    assert image[inside] == pytest.approx(expected[inside], abs=1e-3)
    assert np.all(image[~inside] <= expected[inside].max() + 1e-3)


def _stack(shape=(10, 7, 8)) -> np.ndarray:
    return np.random.default_rng(7).integers(-1000, 1000, size=shape).astype(np.int16)


@pytest.mark.parametrize("mode,reduce", [("mip", np.max), ("minip", np.min), ("mean", np.mean)])
def test_axial_slab_is_the_numpy_reduction_of_the_slices_within_the_thickness(mode, reduce):
    arr = _stack()
    vol = Volume(arr, (0.8, 0.8, 2.0))
    plane = Plane.of(vol, "axial")
    slab = Slab(mode, 10.0)  # 5 slices of 2 mm
    assert slab_range(plane, 4, slab) == (2, 7)
    got = slab_of(plane, arr, 4, slab)
    assert got == pytest.approx(reduce(arr[2:7].astype(np.float64), axis=0), abs=1e-4)
    assert slab.label == {"mip": "MIP", "minip": "MinIP", "mean": "Mean"}[mode] + " 10 mm"
    # At the edge the slab is clipped to the volume.
    assert slab_of(plane, arr, 0, slab) == pytest.approx(
        reduce(arr[0:3].astype(np.float64), axis=0), abs=1e-4
    )


def test_coronal_mip_of_a_negated_series_is_flipped_like_its_thin_slices():
    arr = _stack()
    vol = Volume(arr, (0.8, 0.8, 2.0), direction=np.diag([-1.0, -1.0, -1.0]))
    plane = Plane.of(vol, "coronal")
    got = slab_of(plane, arr, 3, Slab("mip", 4.0))  # 5 rows of 0.8 mm
    lo, hi = slab_range(plane, 3, Slab("mip", 4.0))
    assert (lo, hi) == (1, 6)
    thin_mip = np.max([plane.slice_of(arr, i) for i in range(lo, hi)], axis=0)
    assert np.array_equal(got, thin_mip)


def test_oblique_slab_is_the_reduction_of_parallel_oblique_slices():
    vol = linear_volume()
    planes = planes_for(vol)
    frames = ObliqueFrames()
    frames.rotate(planes["axial"], math.radians(20))
    ob = ObliqueSlice.build(vol.grid, frames.frame(planes["coronal"]))
    t = 1.0
    step = ob.slice_step()
    slab = Slab("mean", 5 * step)
    expected = np.mean([ob.sample(vol.array, t + k * step) for k in range(-2, 3)], axis=0)
    assert ob.sample_slab(vol.array, t, slab) == pytest.approx(expected, abs=1e-4)
    mip = np.max([ob.sample(vol.array, t + k * step) for k in range(-2, 3)], axis=0)
    assert np.array_equal(ob.sample_slab(vol.array, t, Slab("mip", 5 * step)), mip)


def test_a_slab_refuses_nonsense():
    with pytest.raises(ValueError):
        Slab("max", 10)
    with pytest.raises(ValueError):
        Slab("mip", 0)
    assert Slab("mip", 1e9).count(0.5) == 256  # bounded
    vol = linear_volume()
    ob = ObliqueSlice.build(vol.grid, Frame.of(planes_for(vol)["coronal"]))
    offsets = ob.slab_offsets(Slab("mip", 200.0))
    assert len(offsets) == 16 and offsets[-1] - offsets[0] == pytest.approx(200 * 15 / 16)


def test_lengths_carry_their_honest_unit():
    assert Calibration("patient", (2.0, 0.5, 0.5)).ruler_text((0, 0, 0), (0, 3, 4)) == "2.5 mm"
    detector = Calibration("detector", (1.0, 0.2, 0.2))
    assert detector.ruler_text((0, 0, 0), (0, 30, 40)) == "10.0 mm at detector"
    none = Calibration("none", (1.0, 0.5, 0.5))
    assert none.ruler_text((0, 0, 0), (0, 30, 40)) == "50.0 px"
    assert none.area_text(12, 0.25) == "12 px²"
    assert none.size_text(10, 20, (0.5, 0.5)) == "20 × 10 px"
    assert Calibration("ultrasound", (1.0, 0.51, 0.51)).ruler_text((0, 0, 0), (0, 0, 100)) == (
        "51.0 mm"
    )
