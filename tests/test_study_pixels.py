"""Pixel formats: multi-frame, 2D projections, MONOCHROME1, colour, compressed transfer syntaxes."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import get_encoder
from pydicom.uid import MPEG2MPML, JPEG2000Lossless, JPEGLSLossless, RLELossless

from tests import dicom_factory as f
from viewer.study.errors import UnsupportedFormat
from viewer.study.scan import scan_folder
from viewer.study.series import SeriesReader, load_series


def _load(path):
    result = scan_folder(path)
    images = [s for s in result.series if s.kind == "dicom"]
    assert len(images) == 1, result.to_json()
    return load_series(images[0])


def test_enhanced_multiframe_ct_frames_sorted_by_per_frame_position(tmp_path):
    values = f.ct_values((5, 6, 7), seed=4)
    f.write_enhanced(tmp_path / "mf.dcm", values, frame_order=[3, 0, 4, 1, 2])
    vol = _load(tmp_path)
    assert vol.array.dtype == np.int16
    assert np.array_equal(vol.array, values)
    assert vol.spacing == pytest.approx((0.9, 0.9, 3.0))
    assert vol.meta["frame_index"] == [1, 3, 4, 0, 2]
    assert np.allclose(vol.index_to_patient([2, 0, 0]), (-10, -10, 6.0))


def test_enhanced_mr_without_rescale_keeps_values(tmp_path):
    values = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) * 7
    f.write_enhanced(tmp_path / "mr.dcm", values, modality="MR", intercept=0.0)
    vol = _load(tmp_path)
    assert vol.modality == "MR" and np.array_equal(vol.array, values)


def test_projection_radiograph_is_one_slice_with_imager_pixel_spacing(tmp_path):
    img = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    f.write_2d(tmp_path / "dx.dcm", img, modality="DX", imager_spacing=(0.15, 0.2))
    vol = _load(tmp_path)
    assert vol.is_2d and vol.shape == (1, 20, 30)
    assert vol.spacing[:2] == pytest.approx((0.15, 0.2))
    assert np.array_equal(vol.array[0], img)


def test_monochrome1_is_inverted_so_higher_is_brighter(tmp_path):
    img = np.array([[0, 100], [4000, 4095]], dtype=np.uint16)
    f.write_2d(tmp_path / "cr.dcm", img, modality="CR", photometric="MONOCHROME1", bits_stored=12)
    ds = f.read_back(tmp_path / "cr.dcm")
    ds.WindowCenter, ds.WindowWidth = 1000, 500
    ds.save_as(tmp_path / "cr.dcm", enforce_file_format=True)
    vol = _load(tmp_path)
    assert np.array_equal(vol.array[0], 4095 - img.astype(np.int32))
    assert vol.windows == [(3095.0, 500.0, "")]  # the window is mirrored with the values


def test_unused_high_bits_are_masked(tmp_path):
    img = np.array([[0x1005, 0x0FFF]], dtype=np.uint16)  # an overlay bit above BitsStored 12
    f.write_2d(tmp_path / "cr.dcm", img, bits_stored=12)
    assert _load(tmp_path).array[0].tolist() == [[5, 4095]]


def test_rgb_image_loads_as_channel_last(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[1, 2] = (1, 2, 3)
    f.write_2d(tmp_path / "rgb.dcm", rgb, modality="OT", photometric="RGB")
    vol = _load(tmp_path)
    assert vol.is_rgb and vol.array.shape == (1, 4, 5, 3)
    assert np.array_equal(vol.array[0], rgb)


def test_palette_colour_is_converted_through_its_lut(tmp_path):
    lut = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    idx = np.array([[0, 1], [2, 3]], np.uint8)
    f.write_palette(tmp_path / "pal.dcm", idx, lut)
    vol = _load(tmp_path)
    assert vol.is_rgb and np.array_equal(vol.array[0], lut[idx])


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=lambda u: u.name
)
def test_compressed_series_decodes_to_the_same_values(tmp_path, syntax):
    if not get_encoder(syntax).is_available:
        pytest.skip(f"no pydicom encoder for {syntax.name} in this installation")
    truth = f.write_ct_series(tmp_path, shape=(3, 32, 32), transfer_syntax=syntax)
    assert str(f.read_back(truth.paths[0]).file_meta.TransferSyntaxUID) == syntax
    vol = _load(tmp_path)
    assert np.array_equal(vol.array, truth.values)


def test_compressed_multiframe_decodes_each_frame(tmp_path):
    values = f.ct_values((4, 8, 8), seed=2)
    f.write_enhanced(
        tmp_path / "mf.dcm", values, frame_order=[2, 0, 3, 1], transfer_syntax=RLELossless
    )
    assert np.array_equal(_load(tmp_path).array, values)
    # The first slice on screen decodes just its own frame.
    (info,) = scan_folder(tmp_path).series
    reader = SeriesReader(info)
    reader.read_slice(1)
    assert np.array_equal(reader.volume.array[1], values[1]) and not reader.is_read(0)


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "SC_rgb_rle.dcm",
        "rtdose.dcm",
    ],
)
def test_pydicom_sample_files_load_like_pydicom_decodes_them(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom installation (no download)")
    ds = pydicom.dcmread(path)
    vol = _load(path)
    expected = (
        pydicom.pixels.apply_rescale(ds.pixel_array, ds) if "RescaleSlope" in ds else ds.pixel_array
    )
    if "DoseGridScaling" in ds:  # RT dose is shown in its DoseUnits (issue 13)
        expected = expected * float(ds.DoseGridScaling)
    got = vol.array[0] if expected.ndim == vol.array.ndim - 1 else vol.array
    assert got.shape == expected.shape
    assert np.allclose(got, expected)


def _break_syntax(path):
    # A syntax no installed decoder handles (MPEG-2 video) on otherwise valid data.
    ds = f.read_back(path)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 16])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def test_unsupported_transfer_syntax_is_a_typed_error_naming_the_file(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(2, 4, 4))
    for path in truth.paths:
        _break_syntax(path)
    (info,) = scan_folder(tmp_path).series
    with pytest.raises(UnsupportedFormat) as err:
        load_series(info)
    assert str(err.value).startswith(str(tmp_path)) and "MPEG2" in str(err.value)


def test_one_undecodable_slice_is_left_blank_and_named(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(3, 4, 4))
    _break_syntax(truth.paths[1])
    (info,) = scan_folder(tmp_path).series
    vol = load_series(info)
    assert np.array_equal(vol.array[[0, 2]], truth.values[[0, 2]])
    (warning,) = vol.warnings
    assert warning.startswith("slice 2 is blank") and truth.paths[1].name in warning


def test_rt_dose_frames_are_placed_by_grid_frame_offsets():
    path = get_testdata_file("rtdose.dcm", download=False)
    if path is None:
        pytest.skip("rtdose.dcm is not shipped with this pydicom installation (no download)")
    vol = _load(path)
    ds = pydicom.dcmread(path)
    assert vol.shape == (15, 10, 10) and vol.spacing[2] == pytest.approx(5.0)
    last = np.asarray(ds.ImagePositionPatient, float) + [0, 0, 70.0]
    assert np.allclose(vol.index_to_patient([14, 0, 0]), last)
