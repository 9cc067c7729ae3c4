"""Files other toolkits write that RadiAnt opens: no preamble, RT dose scaling, Modality LUT."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pydicom.data
import pytest

from tests import dicom_factory as f
from viewer.study.scan import scan_folder
from viewer.study.series import load_series
from viewer.study.tags import dicom_tags

TEST_FILES = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")


def _strip_preamble(src, dst, implicit=True):
    """The same dataset written the ACR-NEMA way: no preamble, no DICM, no file meta."""
    ds = pydicom.dcmread(src)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.preamble = None
    ds.save_as(dst, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    raw = open(dst, "rb").read()
    assert raw[128:132] != b"DICM" and raw[:4] != b"\0\0\0\0"
    return ds


@pytest.mark.parametrize("implicit", [True, False])
def test_series_without_preamble_is_listed_and_loads_its_values(tmp_path, implicit):
    truth = f.write_ct_series(tmp_path / "src", shape=(3, 16, 12))
    out = tmp_path / "bare"
    out.mkdir()
    for i, p in enumerate(truth.paths):
        _strip_preamble(p, out / f"im{i}.dcm", implicit=implicit)
    result = scan_folder(out)
    assert result.skipped == []
    (series,) = result.series
    assert series.n_images == 3 and series.loadable
    vol = load_series(series)
    assert np.array_equal(vol.array, truth.values)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicoms_own_files_without_preamble_are_read_not_skipped(tmp_path, name):
    src = os.path.join(TEST_FILES, name)
    expected = _strip_preamble(src, tmp_path / name, implicit=False)
    source = pydicom.dcmread(src)
    result = scan_folder(tmp_path)
    assert result.skipped == []
    (series,) = result.series
    vol = load_series(series)
    arr = source.pixel_array * float(expected.get("RescaleSlope", 1)) + float(
        expected.get("RescaleIntercept", 0)
    )
    assert np.allclose(vol.array[0], arr)
    tags = {row[1]: row[3] for row in dicom_tags(tmp_path / name)}
    assert tags["SOPClassUID"] == str(expected.SOPClassUID)


def test_junk_without_preamble_stays_skipped_with_a_reason(tmp_path):
    f.write_ct_series(tmp_path / "ct", shape=(2, 8, 8))
    rng = np.random.default_rng(1)
    (tmp_path / "noise.dcm").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "notes.dcm").write_text("Patient notes\nnothing to see\n" * 20)
    # Parses as DICOM elements, but holds nothing an image needs.
    ds = pydicom.Dataset()
    ds.PatientName = "Only^Name"
    ds.save_as(tmp_path / "bare_name.dcm", implicit_vr=True, enforce_file_format=False)
    result = scan_folder(tmp_path)
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert set(reasons) == {"noise.dcm", "notes.dcm", "bare_name.dcm"}
    assert all("not a DICOM file" in r for r in reasons.values()), reasons
    assert [s.n_images for s in result.series] == [2]


@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_1frame.dcm"])
def test_rt_dose_is_shown_in_dose_units_not_stored_integers(tmp_path, name):
    src = os.path.join(TEST_FILES, name)
    (tmp_path / name).write_bytes(open(src, "rb").read())
    (series,) = scan_folder(tmp_path).series
    vol = load_series(series)
    ds = pydicom.dcmread(src)
    stored = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    assert vol.array.dtype.kind == "f"
    assert float(vol.array.max()) == pytest.approx(stored.max() * 1e-6)  # 1.254, not 1254000
    assert np.allclose(np.sort(vol.array.ravel()), np.sort(stored.ravel() * 1e-6), rtol=1e-6)
    assert vol.meta["dose_units"] == str(ds.DoseUnits)


def test_generated_dose_grid_in_gray(tmp_path):
    """795000 stored with DoseGridScaling 1e-6 reads 0.795 Gy."""
    truth = f.write_ct_series(tmp_path / "src", shape=(2, 8, 8))
    out = tmp_path / "dose"
    out.mkdir()
    for i, p in enumerate(truth.paths):
        ds = pydicom.dcmread(p)
        ds.Modality = "RTDOSE"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
        ds.DoseGridScaling = "1e-6"
        ds.PixelData = np.full((8, 8), 795000, np.uint32).tobytes()
        ds.save_as(out / f"d{i}.dcm", enforce_file_format=True)
    (series,) = scan_folder(out).series
    vol = load_series(series)
    assert np.allclose(vol.array, 0.795)
    assert vol.meta["dose_units"] == "GY"


def _with_modality_lut(src, dst, table, first=0, stored=None):
    ds = pydicom.dcmread(src)
    if stored is not None:
        ds.PixelData = stored.astype(np.int16).tobytes()
    del ds.RescaleSlope, ds.RescaleIntercept
    item = pydicom.Dataset()
    item.LUTDescriptor = [len(table), first, 16]
    item.ModalityLUTType = "HU"
    item.LUTData = np.asarray(table, np.uint16).tobytes()
    ds.ModalityLUTSequence = [item]
    ds.save_as(dst, enforce_file_format=True)
    return ds


def test_modality_lut_sequence_maps_stored_values(tmp_path):
    truth = f.write_ct_series(tmp_path / "src", shape=(2, 8, 8))
    out = tmp_path / "lut"
    out.mkdir()
    table = np.arange(256) * 3 + 100  # stored 0..255 -> 100..865
    rng = np.random.default_rng(4)
    # Stored values beyond the table take its last value.
    stored = rng.integers(0, 300, (2, 8, 8))
    stored[0, 0, 0], stored[1, 0, 0] = 0, 299
    for i, p in enumerate(truth.paths):
        _with_modality_lut(p, out / f"s{i}.dcm", table, stored=stored[i])
    (series,) = scan_folder(out).series
    vol = load_series(series)
    names = sorted(out.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    expected = np.stack(
        [pydicom.pixels.apply_modality_lut(pydicom.dcmread(p).pixel_array, pydicom.dcmread(p))
         for p in names]
    )  # fmt: skip
    assert np.array_equal(vol.array, expected)
    assert vol.array.min() == 100 and vol.array.max() == 865


def test_modality_lut_with_a_first_mapped_value(tmp_path):
    truth = f.write_ct_series(tmp_path / "src", shape=(1, 8, 8))
    table = np.arange(50) * 10  # stored 1000..1049 -> 0..490
    stored = np.full((8, 8), 1000) + np.arange(64).reshape(8, 8)
    ds = _with_modality_lut(truth.paths[0], tmp_path / "one.dcm", table, first=1000, stored=stored)
    (series,) = [s for s in scan_folder(tmp_path).series if "one.dcm" in str(s.files[0])]
    vol = load_series(series)
    assert np.array_equal(vol.array[0], np.clip(stored - 1000, 0, 49) * 10)
    assert np.array_equal(vol.array[0], pydicom.pixels.apply_modality_lut(ds.pixel_array, ds))


def test_a_modality_lut_shorter_than_it_declares_is_skipped_with_a_reason(tmp_path):
    truth = f.write_ct_series(tmp_path / "src", shape=(1, 8, 8))
    ds = pydicom.dcmread(truth.paths[0])
    item = pydicom.Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = np.arange(10, dtype=np.uint16).tobytes()
    ds.ModalityLUTSequence = [item]
    out = tmp_path / "bad"
    out.mkdir()
    ds.save_as(out / "bad.dcm", enforce_file_format=True)
    result = scan_folder(out)
    assert result.series == [] or not any(s.loadable for s in result.series)
    reasons = [s.reason for s in result.skipped]
    assert len(reasons) == 1 and "invalid header value" in reasons[0], reasons


def test_a_deflate_bomb_without_preamble_is_measured_and_refused(tmp_path):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from radlens_core import limits

    src = f.write_2d(tmp_path / "src.dcm", np.zeros((1024, 1024), np.uint16))
    ds = f.read_back(src)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(src, enforce_file_format=True)
    out = tmp_path / "in"
    out.mkdir()
    raw = src.read_bytes()
    assert raw[128:132] == b"DICM"
    (out / "bomb.dcm").write_bytes(raw[132:])  # meta group first, no preamble, no DICM
    limits.set_max_alloc_bytes(2**20)
    try:
        result = scan_folder(out)
    finally:
        limits.set_max_alloc_bytes(None)
    (skip,) = result.skipped
    assert skip.reason.startswith("its deflated data inflates to more than 1 MiB")
    (series,) = scan_folder(out).series  # under the usual limit it is an ordinary image
    assert load_series(series).shape == (1, 1024, 1024)
