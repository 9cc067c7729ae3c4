import numpy as np

from viewer.study.volume import Volume, orientation_letters


def _oblique():
    theta = np.deg2rad(20)
    d = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
    return Volume(
        np.zeros((5, 6, 7), np.int16), spacing=(0.7, 0.8, 2.5), origin=(-10, 20, 30), direction=d
    )


def test_voxel_patient_round_trip_oblique():
    v = _oblique()
    pts = np.array([[0, 0, 0], [4, 5, 6], [2.5, 1.25, 3.75]])
    back = v.patient_to_index(v.index_to_patient(pts))
    assert np.allclose(back, pts)
    assert np.allclose(v.index_to_patient([0, 0, 0]), (-10, 20, 30))


def test_affine_matches_index_to_patient_and_ras_flips_xy():
    v = _oblique()
    zyx = np.array([3.0, 2.0, 1.0])
    lps = v.affine_lps @ np.r_[zyx[::-1], 1]
    assert np.allclose(lps[:3], v.index_to_patient(zyx))
    ras = v.affine_ras @ np.r_[zyx[::-1], 1]
    assert np.allclose(ras[:3], lps[:3] * [-1, -1, 1])


def test_two_d_images_are_stored_with_one_slice():
    v = Volume(np.zeros((10, 12), np.uint16))
    assert v.is_2d and v.shape == (1, 10, 12)


def test_orientation_letters():
    assert orientation_letters(np.array([1, 0, 0])) == "L"
    assert orientation_letters(np.array([0, -1, 0])) == "A"
    assert orientation_letters(np.array([0, 0, -1])) == "I"


def test_volume_geometry_is_the_core_grid():
    from radlens_core import grid as core
    from viewer.study import volume

    v = _oblique()
    g = v.grid
    assert isinstance(g, core.Grid) and g.shape == (5, 6, 7) and g.spacing == (0.7, 0.8, 2.5)
    assert g == core.Grid((5, 6, 7), (0.7, 0.8, 2.5), (-10, 20, 30), v.direction)
    assert np.array_equal(v.affine_lps, g.affine_lps) and np.array_equal(v.affine_ras, g.affine_ras)
    pts = np.array([[0, 0, 0], [4, 5, 6]])
    assert np.array_equal(v.index_to_patient(pts), g.index_to_patient(pts))
    assert np.array_equal(v.patient_to_index((1.0, 2.0, 3.0)), g.patient_to_index((1.0, 2.0, 3.0)))
    assert volume.orientation_letters is core.orientation_letters
    assert volume.LPS_TO_RAS is core.LPS_TO_RAS
    rgb = Volume(np.zeros((1, 4, 5, 3), np.uint8))
    assert rgb.grid.shape == (1, 4, 5)  # the colour channel is no grid axis


def test_volume_refuses_non_finite_geometry():
    import pytest

    for spacing in [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (float("nan"), 1.0, 1.0), (1, 1, np.inf)]:
        with pytest.raises(ValueError, match="spacing must be positive"):
            Volume(np.zeros((2, 2, 2)), spacing=spacing)
    with pytest.raises(ValueError, match="must be finite"):
        Volume(np.zeros((2, 2, 2)), origin=(0.0, float("nan"), 0.0))
