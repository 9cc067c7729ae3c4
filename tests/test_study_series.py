"""Series -> Volume: order, geometry, rescale, problems, progressive reading."""

from __future__ import annotations

import numpy as np
import pytest

from tests import dicom_factory as f
from viewer.study.errors import LoadCancelled, SeriesAssemblyError
from viewer.study.scan import scan_folder
from viewer.study.series import SeriesReader, load_series


def _only_series(folder):
    result = scan_folder(folder)
    images = [s for s in result.series if s.kind == "dicom"]
    assert len(images) == 1, result.to_json()
    return images[0]


def test_slices_sorted_by_position_not_filename_or_instance_number(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(9, 8, 6), shuffle_seed=3)
    vol = load_series(_only_series(tmp_path))
    assert np.array_equal(vol.array, truth.values)
    assert vol.meta["source_files"] == truth.paths
    # The shuffled InstanceNumbers must not have been used.
    numbers = [int(f.read_back(p).InstanceNumber) for p in vol.meta["source_files"]]
    assert numbers != sorted(numbers)


def test_voxel_to_patient_matches_each_files_image_position(tmp_path):
    theta = np.radians(25)
    oblique = (np.cos(theta), np.sin(theta), 0.0, 0.0, 0.0, -1.0)  # a coronal-ish oblique plane
    truth = f.write_ct_series(
        tmp_path, shape=(5, 7, 6), orientation=oblique, spacing=(0.6, 0.9, 1.7)
    )
    vol = load_series(_only_series(tmp_path))
    for z, path in enumerate(vol.meta["source_files"]):
        ipp = np.array(f.read_back(path).ImagePositionPatient, float)
        assert np.allclose(vol.index_to_patient([z, 0, 0]), ipp, atol=1e-4)
        assert np.allclose(vol.patient_to_index(ipp), [z, 0, 0], atol=1e-4)
    # Columns step along the row cosine by the column spacing.
    assert np.allclose(
        vol.index_to_patient([0, 0, 1]) - truth.positions[0], 0.6 * np.array(oblique[:3])
    )
    assert vol.spacing == pytest.approx((0.6, 0.9, 1.7))


def test_spacing_comes_from_positions_not_slice_thickness(tmp_path):
    f.write_ct_series(tmp_path, spacing=(0.5, 0.5, 1.25))  # SliceThickness is written as 99
    info = _only_series(tmp_path)
    assert info.spacing == pytest.approx((0.5, 0.5, 1.25))
    assert load_series(info).spacing[2] == pytest.approx(1.25)


def test_integer_rescale_gives_int16_hounsfield_units(tmp_path):
    truth = f.write_ct_series(tmp_path, intercept=-1024)
    vol = load_series(_only_series(tmp_path))
    assert vol.array.dtype == np.int16
    assert np.array_equal(vol.array, truth.values)
    assert vol.windows == [(40.0, 400.0, "SOFT")]


def test_signed_16_bit_ct_stays_int16_and_padding_saturates(tmp_path):
    values = f.ct_values((3, 6, 6)).astype(np.int32)
    values[:, -1, -1] = -32768 - 1024  # stored -32768: the scanner's padding value
    truth = f.write_ct_series(
        tmp_path, shape=(3, 6, 6), values=values, signed=True, bits_stored=16, intercept=-1024
    )
    vol = load_series(_only_series(tmp_path))
    assert vol.array.dtype == np.int16
    assert np.array_equal(vol.array[:, :-1], truth.values[:, :-1])
    assert (vol.array[:, -1, -1] == -32768).all()


def test_fractional_rescale_gives_float32(tmp_path):
    values = (np.arange(4 * 6 * 5).reshape(4, 6, 5) * 0.5 - 3.0).astype(np.float64)
    truth = f.write_ct_series(tmp_path, shape=(4, 6, 5), slope=0.5, intercept=-3.0, values=values)
    vol = load_series(_only_series(tmp_path))
    assert vol.array.dtype == np.float32
    assert np.allclose(vol.array, truth.values)


def test_metadata_carries_patient_study_and_per_slice_uids(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(3, 4, 4))
    vol = load_series(_only_series(tmp_path))
    assert vol.series_uid == truth.series_uid
    assert vol.meta["study_uid"] == truth.study_uid
    assert vol.meta["patient_name"] == "TEST^PATIENT" and vol.meta["patient_id"] == "TEST-001"
    assert vol.meta["institution"] == "Test Hospital" and vol.meta["body_part"] == "CHEST"
    uids = [str(f.read_back(p).SOPInstanceUID) for p in truth.paths]
    assert vol.meta["sop_instance_uids"] == uids
    assert vol.modality == "CT" and vol.description == "Factory CT"


def test_missing_slice_is_reported(tmp_path):
    f.write_ct_series(tmp_path, z_positions=[0, 2, 4, 8, 10])
    info = _only_series(tmp_path)
    assert any("missing" in p for p in info.problems)
    vol = load_series(info)
    assert any("missing" in w for w in vol.warnings) and vol.spacing[2] == pytest.approx(2.0)


def test_uneven_spacing_is_reported(tmp_path):
    f.write_ct_series(tmp_path, z_positions=[0, 2, 4.5, 6.5, 8.5, 10.5])
    assert any("uneven" in p for p in _only_series(tmp_path).problems)


def test_gantry_tilt_is_reported_and_positions_stay_exact(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(5, 6, 6), tilt_deg=15)
    vol = load_series(_only_series(tmp_path))
    assert any("tilt of 15.0°" in w for w in vol.warnings)
    for z in range(5):
        assert np.allclose(vol.index_to_patient([z, 0, 0]), truth.positions[z], atol=1e-4)


def test_duplicate_positions_refuse_with_reason(tmp_path):
    f.write_ct_series(tmp_path, z_positions=[0, 2, 2, 4])
    info = _only_series(tmp_path)
    assert not info.loadable and "share the same position" in info.problems[0]
    with pytest.raises(SeriesAssemblyError, match="share the same position"):
        SeriesReader(info)


def test_first_slice_read_is_the_middle_and_reader_fills_progressively(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(7, 5, 5))
    reader = SeriesReader(_only_series(tmp_path))
    order = reader.slice_order()
    assert order[0] == 3 and sorted(order) == list(range(7))
    reader.read_slice(order[0])
    assert np.array_equal(reader.volume.array[3], truth.values[3])
    assert not reader.is_read(0)
    seen = []
    vol = reader.read_all(on_slice=seen.append)
    assert sorted(seen) == [0, 1, 2, 4, 5, 6]  # the middle slice is not read twice
    assert vol is reader.volume and np.array_equal(vol.array, truth.values)


def test_load_reports_progress_and_can_be_cancelled(tmp_path):
    f.write_ct_series(tmp_path, shape=(6, 4, 4))
    info = _only_series(tmp_path)
    fractions = []
    load_series(info, progress=lambda frac, text: fractions.append(frac))
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    calls = []

    def cancel_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(LoadCancelled):
        load_series(info, cancel=cancel_after_two)


def test_reader_without_scan_headers_reads_them_itself(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(4, 5, 5))
    info = _only_series(tmp_path)
    info.headers = []
    assert np.array_equal(load_series(info).array, truth.values)


def test_load_cancelled_is_the_one_cancelled_and_study_errors_are_user_errors():
    from radlens_core.errors import UserError
    from radlens_core.progress import Cancelled
    from viewer.study.errors import LoadCancelled, StudyError, UnreadableFile

    with pytest.raises(Cancelled):
        raise LoadCancelled(None, "cancelled by the user")
    assert issubclass(LoadCancelled, StudyError)
    assert issubclass(StudyError, UserError) and issubclass(UnreadableFile, UserError)
