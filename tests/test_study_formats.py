"""NIfTI / NRRD / MetaImage: LPS geometry round trips, atomic writes that never overwrite."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from viewer.study.errors import StudyError, UnreadableFile, UnsupportedFormat
from viewer.study.formats import read_image, write_image
from viewer.study.scan import scan_folder
from viewer.study.series import load_series
from viewer.study.volume import Volume


def _oblique_volume() -> Volume:
    t = np.radians(30)
    d = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 50
    return Volume(arr, spacing=(0.7, 0.8, 2.5), origin=(-12.0, 30.0, 5.0), direction=d)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
def test_write_then_read_keeps_values_and_lps_geometry(tmp_path, suffix):
    vol = _oblique_volume()
    path = tmp_path / f"vol{suffix}"
    write_image(vol, path)
    back = read_image(path)
    assert np.array_equal(back.array, vol.array) and back.array.dtype == np.int16
    assert np.allclose(back.affine_lps, vol.affine_lps, atol=1e-5)
    assert back.series_uid.startswith("sha256:") and len(back.series_uid) == 7 + 64
    assert not list(tmp_path.glob(".radlens-write-*"))  # no temporary left behind


def test_nifti_affine_is_ras_as_nibabel_reads_it(tmp_path):
    vol = _oblique_volume()
    write_image(vol, tmp_path / "v.nii.gz")
    img = nib.load(tmp_path / "v.nii.gz")
    assert np.allclose(img.affine, vol.affine_ras, atol=1e-5)
    # nibabel's (x, y, z) data is our (z, y, x) array transposed.
    assert np.array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), vol.array)


def test_write_refuses_to_overwrite_unless_asked(tmp_path):
    vol = _oblique_volume()
    path = tmp_path / "v.nrrd"
    write_image(vol, path)
    before = path.read_bytes()
    with pytest.raises(StudyError, match="already exists"):
        write_image(Volume(np.zeros((2, 2, 2), np.int16)), path)
    assert path.read_bytes() == before
    write_image(Volume(np.zeros((2, 2, 2), np.int16)), path, overwrite=True)
    assert read_image(path).shape == (2, 2, 2)


def test_sheared_volume_cannot_be_written_and_says_why(tmp_path):
    d = np.eye(3)
    d[:, 2] = np.array([0, np.sin(0.2), np.cos(0.2)])  # tilted z axis, not orthogonal
    with pytest.raises(UnsupportedFormat, match="gantry tilt"):
        write_image(Volume(np.zeros((2, 3, 3), np.int16), direction=d), tmp_path / "t.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_rgb_and_2d_images_round_trip(tmp_path):
    rgb = Volume(np.random.default_rng(0).integers(0, 255, (1, 4, 5, 3), dtype=np.uint8))
    write_image(rgb, tmp_path / "rgb.mha")
    back = read_image(tmp_path / "rgb.mha")
    assert back.is_rgb and np.array_equal(back.array, rgb.array)


def test_bad_image_files_are_typed_errors(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"this is not gzip")
    with pytest.raises(UnreadableFile) as err:
        read_image(tmp_path / "bad.nii.gz")
    assert "bad.nii.gz" in str(err.value)
    with pytest.raises(UnsupportedFormat):
        read_image(tmp_path / "x.png")


def test_scan_lists_image_files_and_they_load(tmp_path):
    vol = _oblique_volume()
    write_image(vol, tmp_path / "a.nii.gz")
    write_image(vol, tmp_path / "b.mhd")
    result = scan_folder(tmp_path)
    assert result.skipped == []  # the .raw beside b.mhd is not junk
    kinds = {s.description: s for s in result.series}
    assert set(kinds) == {"a.nii.gz", "b.mhd"}
    info = kinds["a.nii.gz"]
    assert info.kind == "image" and info.shape == (4, 5, 6)
    assert np.array_equal(load_series(info).array, vol.array)
