"""The folder scan's fast tag reader gives exactly the header pydicom gives, or steps aside."""

from __future__ import annotations

import glob
import os

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

from tests import dicom_factory as f
from viewer.study.headers import HEADER_KEYWORDS, HEADER_SEQUENCES, read_header
from viewer.study.opening import open_regular
from viewer.study.tag_reader import KeywordTable, TagSet, read_tags

TABLE = KeywordTable(HEADER_KEYWORDS, HEADER_SEQUENCES)


def _plain(value):
    """A value as the header code uses it: numbers as floats, the rest as text."""
    return float(value) if isinstance(value, (int, float)) else str(value)


def _fast(path):
    with open_regular(path) as fp:
        return read_tags(fp, TABLE)


def _same_header(path):
    fast = read_header(path)  # the tag reader when it can
    slow = read_header(path, keep=True, full=True)  # pydicom, always
    assert fast == slow
    return fast


def test_plain_ct_slice_read_fast_matches_pydicom(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(3, 8, 9), slope=2.0, intercept=-1000.0)
    path = truth.paths[1]
    got = _fast(path)
    assert got is not None
    tags, offset = got
    ds = pydicom.dcmread(path)
    for kw in HEADER_KEYWORDS:
        if kw in ds:
            mine, theirs = tags.get(kw), ds.get(kw)
            if isinstance(theirs, (list, pydicom.multival.MultiValue)):
                assert [_plain(v) for v in mine] == [_plain(v) for v in theirs], kw
            else:
                assert _plain(mine) == _plain(theirs), kw
        else:
            assert kw not in tags
    # The pixel offset is where pydicom finds the pixel bytes.
    raw = open(path, "rb").read()
    assert raw[offset : offset + len(ds.PixelData)] == ds.PixelData
    header = _same_header(path)
    assert header.pixel_offset == offset


def test_implicit_vr_file_read_fast_matches_pydicom(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(2, 6, 6), transfer_syntax=ImplicitVRLittleEndian)
    assert _fast(truth.paths[0]) is not None
    _same_header(truth.paths[0])


def test_compressed_file_header_read_fast_matches_pydicom(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(2, 8, 8), transfer_syntax=RLELossless)
    assert _fast(truth.paths[0]) is not None
    header = _same_header(truth.paths[0])
    assert header.transfer_syntax == RLELossless and header.pixel_offset is None


def test_undefined_length_sequences_are_skipped(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(2, 6, 6))
    ds = pydicom.dcmread(truth.paths[0])
    inner = pydicom.Dataset()
    inner.CodeValue = "X"
    deeper = pydicom.Dataset()
    deeper.CodeMeaning = "deep"
    inner.ConceptCodeSequence = pydicom.Sequence([deeper])
    ds.ProcedureCodeSequence = pydicom.Sequence([inner, pydicom.Dataset()])
    ds["ProcedureCodeSequence"].is_undefined_length = True
    inner["ConceptCodeSequence"].is_undefined_length = True
    path = tmp_path / "seq.dcm"
    ds.save_as(path, enforce_file_format=True)
    raw = path.read_bytes()
    assert b"\xfe\xff\xdd\xe0" in raw  # really written with sequence delimiters
    assert _fast(path) is not None
    _same_header(path)


def test_files_outside_the_plain_case_are_left_to_pydicom(tmp_path):
    enhanced = f.write_enhanced(tmp_path / "mf.dcm", f.ct_values((3, 5, 5)))
    named = f.write_ct_series(tmp_path / "name", shape=(1, 6, 6)).paths[0]
    ds = pydicom.dcmread(named)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.save_as(named)
    for path in (enhanced, named):
        assert _fast(path) is None
        header = read_header(path)  # still read, by pydicom
        assert header.rows > 0
    assert str(read_header(named, keep=True).dataset.PatientName) == ("Müller^Jürgen")


def test_a_keyword_not_listed_is_an_error_not_a_missing_value(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(1, 6, 6))
    header = read_header(truth.paths[0], keep=True)
    assert isinstance(header.dataset, TagSet)
    with pytest.raises(KeyError, match="HEADER_KEYWORDS"):
        header.dataset.get("InstitutionName")


def test_damaged_values_are_left_to_pydicom(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(1, 6, 6))
    path = truth.paths[0]
    raw = bytearray(path.read_bytes())
    at = raw.index(b"\x28\x00\x53\x10DS")  # RescaleSlope: give it a value that is no number
    length = int.from_bytes(raw[at + 6 : at + 8], "little")
    raw[at + 8 : at + 8 + length] = b"x" * length
    path.write_bytes(bytes(raw))
    assert _fast(path) is None
    try:
        slow = read_header(path, keep=True, full=True)
    except Exception as exc:  # noqa: BLE001 - whatever pydicom says, the scan says the same
        with pytest.raises(type(exc)):
            read_header(path)
    else:
        assert read_header(path) == slow
    # Cut headers: every cut either reads fast or is pydicom's to word, never a crash.
    data = path.read_bytes()
    for cut in range(0, 700, 7):
        part = tmp_path / f"cut{cut}.dcm"
        part.write_bytes(data[:cut])
        fast = _fast(part)
        assert fast is None or isinstance(fast[0], TagSet)


@pytest.mark.parametrize(
    "path",
    sorted(glob.glob(os.path.join(os.path.dirname(pydicom.data.__file__), "test_files", "*.dcm")))[
        :80
    ],
    ids=os.path.basename,
)
def test_pydicom_sample_files_give_the_same_header_either_way(path):
    try:
        slow = read_header(path, keep=True, full=True)
    except Exception as exc:  # noqa: BLE001 - the fast path must fail the same way
        with pytest.raises(type(exc)):
            read_header(path)
        return
    assert read_header(path) == slow
