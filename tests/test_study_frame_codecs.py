"""Compressed frames decoded straight from their codestream (viewer.study.frame_codecs) give
pydicom's ``pixel_array`` exactly, with every decoder library this installation has, signed
and unsigned, and anything outside the plain case is left to pydicom."""

from __future__ import annotations

import os
import time

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_encoder
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless

from tests import dicom_factory as f
from viewer.study import frame_codecs
from viewer.study.decode import decode_file
from viewer.study.headers import read_header
from viewer.study.scan import scan_folder
from viewer.study.series import load_series


def _write(folder, syntax, signed, bits_stored, shape=(3, 32, 48)):
    # Signed: stored values are the HU themselves (-1000..1500); unsigned: HU + 1024.
    intercept = 0.0 if signed else -1024.0
    kwargs = dict(shape=shape, intercept=intercept, signed=signed, bits_stored=bits_stored)
    if syntax == JPEGLosslessSV1:
        truth = f.write_ct_series(folder, **kwargs)
        pytest.importorskip("gdcm")
        f.reencode_jpeg_lossless_sv1(truth.paths)
    else:
        if not get_encoder(syntax).is_available:
            pytest.skip(f"no pydicom encoder for {syntax.name} in this installation")
        truth = f.write_ct_series(folder, transfer_syntax=syntax, **kwargs)
    return truth, intercept


#: Each decoder library this installation has for the syntax, one at a time: the fastest
#: (imagecodecs where installed), then without imagecodecs (pyjpegls, pylibjpeg, GDCM).
LIBRARIES = ["fastest", "without imagecodecs"]


@pytest.fixture(params=LIBRARIES)
def library(request, monkeypatch):
    if request.param == "without imagecodecs":
        monkeypatch.setitem(frame_codecs._MODULES, "imagecodecs", None)
    elif frame_codecs._lib("imagecodecs") is None:
        pytest.skip("imagecodecs is not installed: the other case covers this installation")
    return request.param


SYNTAXES = [JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless]


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda u: u.name)
@pytest.mark.parametrize("signed,bits", [(False, 12), (True, 12), (True, 16)])
def test_direct_decode_is_pydicoms_pixel_array(tmp_path, library, syntax, signed, bits):
    truth, intercept = _write(tmp_path, syntax, signed, bits)
    for z, path in enumerate(truth.paths):
        h = read_header(path)
        assert h.encapsulated_offset is not None
        direct = frame_codecs.decode_file_direct(h)
        assert direct is not None, f"{syntax.name} was not decoded directly ({library})"
        expected = pydicom.dcmread(path).pixel_array
        assert direct.dtype == expected.dtype
        assert np.array_equal(direct, expected)
        stored = np.round(truth.values[z] - intercept).astype(np.int64)
        assert np.array_equal(direct.astype(np.int64), stored)


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda u: u.name)
def test_series_loads_the_same_with_and_without_the_direct_path(tmp_path, monkeypatch, syntax):
    truth, _ = _write(tmp_path, syntax, False, 12, shape=(4, 32, 40))
    (info,) = [s for s in scan_folder(tmp_path).series if s.kind == "dicom"]
    direct = load_series(info)
    monkeypatch.setattr(frame_codecs, "plain", lambda h: False)
    through_pydicom = load_series(info)
    assert np.array_equal(direct.array, through_pydicom.array)
    assert np.array_equal(direct.array, truth.values)


def test_a_file_changed_since_the_scan_is_read_by_pydicom_again(tmp_path):
    truth, intercept = _write(tmp_path, RLELossless, False, 12)
    h = read_header(truth.paths[0])
    # Another (longer) description moves the pixel data: the scan's offset is stale now.
    ds = pydicom.dcmread(truth.paths[0])
    ds.SeriesDescription = "a much longer description than the factory wrote at first"
    ds.save_as(truth.paths[0])
    assert frame_codecs.read_codestream(h) is None
    stored = np.round(truth.values[0] - intercept)
    assert np.array_equal(decode_file(h), stored)


def test_a_codestream_of_another_size_is_left_to_pydicom(tmp_path):
    truth, _ = _write(tmp_path, JPEG2000Lossless, False, 12)
    h = read_header(truth.paths[0])
    data = frame_codecs.read_codestream(h)
    assert data is not None
    other = read_header(truth.paths[1])
    import dataclasses

    wider = dataclasses.replace(other, cols=other.cols * 2)
    assert frame_codecs.decode_codestream(wider, data) is None


def test_colour_and_palette_frames_are_not_the_plain_case(tmp_path):
    truth, _ = _write(tmp_path, RLELossless, False, 12)
    import dataclasses

    h = read_header(truth.paths[0])
    assert frame_codecs.plain(h)
    assert not frame_codecs.plain(dataclasses.replace(h, photometric="PALETTE COLOR"))
    assert not frame_codecs.plain(dataclasses.replace(h, samples_per_pixel=3))
    assert not frame_codecs.plain(dataclasses.replace(h, transfer_syntax="1.2.840.10008.1.2.1"))


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless])
def test_a_truncated_codestream_is_left_to_pydicom(tmp_path, library, syntax):
    truth, _ = _write(tmp_path, syntax, False, 12)
    h = read_header(truth.paths[0])
    data = frame_codecs.read_codestream(h)
    assert data is not None and frame_codecs.decode_codestream(h, data) is not None
    # Cut short: the decoders would fill the rest of the image; pydicom refuses it.
    assert frame_codecs.decode_codestream(h, data[: len(data) // 2]) is None


def test_headers_from_the_scan_cache_keep_where_the_codestream_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLENS_DATA_DIR", str(tmp_path / "data"))
    truth, _ = _write(tmp_path / "series", RLELossless, False, 12)
    for p in truth.paths:  # older than the cache (files written just now are read again)
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    from viewer.study import scan as scan_module

    scans = [scan_folder(tmp_path / "series", use_cache=True)]

    def not_read(*args, **kwargs):
        raise AssertionError("the second scan must come from the cache")

    monkeypatch.setattr(scan_module, "read_header", not_read)
    scans.append(scan_folder(tmp_path / "series", use_cache=True))
    assert len(scans[1].series) == 1 and not scans[1].skipped
    offsets = [
        sorted(h.encapsulated_offset for h in s.series[0].headers)  # type: ignore[type-var]
        for s in scans
    ]
    assert offsets[0] == offsets[1] and None not in offsets[1]
    assert offsets[1] == sorted(read_header(p).encapsulated_offset for p in truth.paths)
