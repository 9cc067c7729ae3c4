"""4D NIfTI as a series of volumes, and NIfTI-2 files, read like any NIfTI."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from radlens_core.nifti import NiftiError, nifti_volumes, read_nifti
from viewer.study.formats import read_image
from viewer.study.scan import file_sha256, image_series


def _four_d(path, t=5, step_s=2.0):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, size=(6, 5, 4, t)).astype(np.int16)  # x, y, z, t
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = step_s
    nib.save(img, str(path))
    return data


def test_4d_nifti_is_listed_as_volumes_each_loading_its_own(tmp_path):
    path = tmp_path / "dyn.nii.gz"
    data = _four_d(path)
    listed = image_series(path)
    assert [s.volume_text for s in listed] == [
        f"Volume {k + 1}/5 — t = {2 * k:g} s" for k in range(5)
    ]
    key = file_sha256(path)
    assert [s.series_uid for s in listed] == [f"{key}#vol{k + 1}" for k in range(5)]
    assert all(s.time_series and s.shape == (4, 5, 6) and s.loadable for s in listed)
    for k in (0, 3):
        vol = read_image(path, volume=k)
        assert np.array_equal(vol.array, np.transpose(data[..., k], (2, 1, 0)))
        assert vol.key == listed[k].series_uid
        assert vol.meta["volume_label"] == listed[k].volume_label
        assert vol.spacing == pytest.approx((0.8, 0.9, 2.5))


def test_3d_nifti_keeps_one_entry_and_its_key(tmp_path):
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2), np.int16), np.eye(4)), str(path))
    (info,) = image_series(path)
    assert info.series_uid == file_sha256(path) and info.volume_count == 1
    assert read_image(path).key == info.series_uid


def test_4d_without_a_volume_is_refused_by_the_plain_reader(tmp_path):
    path = tmp_path / "dyn.nii"
    _four_d(path, t=3)
    with pytest.raises(NiftiError, match="2D or 3D"):
        read_nifti(path)
    grid, count = nifti_volumes(path)
    assert count == 3 and grid.shape == (4, 5, 6)
    with pytest.raises(NiftiError, match="no volume 4"):
        read_nifti(path, volume=3)


def test_nifti2_file_is_read_and_listed(tmp_path):
    path = tmp_path / "big-header.nii"
    data = np.arange(2 * 3 * 4, dtype=np.int16).reshape(4, 3, 2)
    nib.save(nib.Nifti2Image(data, np.diag([2.0, 3.0, 4.0, 1.0])), str(path))
    assert nib.load(str(path)).header.sizeof_hdr == 540  # really NIfTI-2
    (info,) = image_series(path)
    assert info.loadable and info.shape == (2, 3, 4) and info.spacing == (2.0, 3.0, 4.0)
    vol = read_image(path)
    assert np.array_equal(vol.array, np.transpose(data, (2, 1, 0)))
    # RAS diag(2, 3, 4) is LPS with x and y negated.
    assert np.allclose(vol.direction, np.diag([-1.0, -1.0, 1.0]))


def test_4d_nifti2_volume(tmp_path):
    path = tmp_path / "dyn2.nii.gz"
    data = np.arange(3 * 2 * 2 * 4, dtype=np.float32).reshape(3, 2, 2, 4)
    nib.save(nib.Nifti2Image(data, np.eye(4)), str(path))
    assert len(image_series(path)) == 4
    vol = read_image(path, volume=2)
    assert np.array_equal(vol.array, np.transpose(data[..., 2], (2, 1, 0)))
    assert vol.meta["volume_label"] == "volume 3"  # no time step in the header


@pytest.mark.parametrize("cached", [False, True])
def test_a_folder_scan_lists_every_volume_of_a_4d_file_and_loads_the_chosen_one(
    tmp_path, monkeypatch, cached
):
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series

    monkeypatch.setenv("RADLENS_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "study"
    folder.mkdir()
    data = _four_d(folder / "dyn.nii.gz", t=3)
    if cached:
        scan_folder(folder)  # the second scan answers from the scan cache
    listed = sorted(scan_folder(folder).series, key=lambda s: s.volume_index)
    assert [(s.volume_index, s.volume_count) for s in listed] == [(1, 3), (2, 3), (3, 3)]
    assert not any("volume 1 is shown" in p for s in listed for p in s.problems)
    for k, info in enumerate(listed):
        vol = load_series(info)
        assert vol.key == info.series_uid
        assert np.array_equal(vol.array, np.transpose(data[..., k], (2, 1, 0)))
