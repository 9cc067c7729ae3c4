"""Hostile inputs: each is refused with the sentence a user sees, allocates nothing it
declares, never hangs, and never spoils the good series beside it."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

import numpy as np
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from radlens_core import limits
from tests import dicom_factory as f
from viewer import cli
from viewer.study import scan as scan_module
from viewer.study import scan_series as scan_series_module
from viewer.study.errors import (
    LoadCancelled,
    SeriesAssemblyError,
    SeriesNotFound,
    StudyError,
    TooLarge,
    UnsupportedFormat,
)
from viewer.study.scan import pick_series, scan_folder
from viewer.study.series import SeriesReader, load_series

GiB = 2**30


@pytest.fixture(autouse=True)
def limit_8_gib():
    # Every machine refuses the same inputs: the limit is fixed here, not half of its memory.
    limits.set_max_alloc_bytes(8 * GiB)
    yield
    limits.set_max_alloc_bytes(None)


def _good(folder):
    return f.write_ct_series(folder / "good", shape=(3, 6, 6))


def _assert_good_listed_and_loadable(result, truth):
    (good,) = [s for s in result.series if s.series_uid == truth.series_uid]
    assert good.loadable and good.problems == []
    assert np.array_equal(load_series(good).array, truth.values)


def _by_file(result, name):
    (s,) = [s for s in result.series if any(p.name == name for p in s.files)]
    return s


# ---- memory: the header's declared size, not the file's --------------------------------------


def test_jpeg2000_file_declaring_700_frames_of_4096_is_refused_before_allocating(tmp_path):
    path = f.write_declared(tmp_path / "big" / "j2k.dcm", 4096, 4096, 700, JPEG2000Lossless)
    assert path.stat().st_size < 150_000
    truth = _good(tmp_path)
    result = scan_folder(tmp_path)
    big = _by_file(result, "j2k.dcm")
    assert not big.loadable and big.n_images == 700
    (problem,) = big.problems
    assert problem == (
        f"{path}: declares 700 frames of 4096×4096 at 16 bits (21.9 GiB), more than the "
        "8 GiB one image may use on this computer; not loaded "
        "(RADLENS_MAX_ALLOC_BYTES sets the limit)"
    )
    _assert_good_listed_and_loadable(result, truth)
    with pytest.raises(TooLarge) as err:
        SeriesReader(big)
    assert str(err.value) == problem


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, RLELossless], ids=lambda u: u.name)
def test_compressed_header_of_781_tib_is_listed_not_loadable_and_never_reaches_numpy(
    tmp_path, syntax
):
    path = f.write_declared(tmp_path / "huge.dcm", 65535, 65535, 100000, syntax)
    truth = _good(tmp_path)
    result = scan_folder(tmp_path)
    huge = _by_file(result, "huge.dcm")
    assert not huge.loadable
    assert "declares 100000 frames of 65535×65535 at 16 bits (781 TiB)" in huge.problems[0]
    assert str(path) in huge.problems[0] and "8 GiB" in huge.problems[0]
    _assert_good_listed_and_loadable(result, truth)
    with pytest.raises(TooLarge, match="781 TiB"):
        load_series(huge)


def test_a_series_whose_files_together_exceed_the_limit_is_refused(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(4, 8, 8))
    limits.set_max_alloc_bytes(4 * 8 * 8 * 2 - 1)
    (s,) = scan_folder(tmp_path).series
    assert not s.loadable
    assert "this series declares 4 slices of 8×8 at 16 bits in 4 files" in s.problems[0]
    assert str(s.problems[0]).startswith(str(truth.paths[0].parent))
    with pytest.raises(TooLarge, match="in 4 files"):
        SeriesReader(s)


def test_the_limit_is_a_share_of_memory_settable_by_environment_and_function(monkeypatch):
    limits.set_max_alloc_bytes(None)
    monkeypatch.delenv(limits.ENV_VAR, raising=False)
    assert limits.max_alloc_bytes() == int(limits.physical_memory_bytes() * limits.DEFAULT_SHARE)
    monkeypatch.setenv(limits.ENV_VAR, "2GiB")
    assert limits.max_alloc_bytes() == 2 * GiB
    monkeypatch.setenv(limits.ENV_VAR, "12345")
    assert limits.max_alloc_bytes() == 12345
    limits.set_max_alloc_bytes(7)
    assert limits.max_alloc_bytes() == 7
    assert limits.human_bytes(700 * 4096 * 4096 * 2) == "21.9 GiB"
    assert limits.human_bytes(65535 * 65535 * 100000 * 2) == "781 TiB"
    with pytest.raises(ValueError, match="not a size"):
        limits.parse_bytes("lots")


def test_uncompressed_header_declaring_more_than_the_file_holds_is_truncated_in_human_units(
    tmp_path,
):
    truth = f.write_ct_series(tmp_path / "ct", shape=(2, 4, 4))
    bad = f.set_attribute(truth.paths[0], "Rows", 60000)
    f.set_attribute(bad, "Columns", 60000)
    result = scan_folder(tmp_path)
    (skip,) = result.skipped
    assert skip.path == bad and "truncated" in skip.reason and "6.71 GiB" in skip.reason


@pytest.mark.parametrize(
    "keyword, value, words",
    [
        ("NumberOfFrames", "-5", "NumberOfFrames is -5, outside 0..4294967295"),
        ("NumberOfFrames", "4294967296", "NumberOfFrames is 4294967296, outside 0..4294967295"),
        ("SamplesPerPixel", 9, "SamplesPerPixel is 9, outside 1..4"),
        ("BitsAllocated", 4096, "BitsAllocated is 4096, outside 1..64"),
    ],
)
def test_impossible_pixel_counts_skip_the_file_naming_the_attribute(
    tmp_path, keyword, value, words
):
    truth = f.write_ct_series(tmp_path / "ct", shape=(3, 4, 4))
    bad = f.write_2d(tmp_path / "bad.dcm", np.zeros((4, 4), np.uint16))
    f.set_attribute(bad, keyword, value)
    result = scan_folder(tmp_path)
    (skip,) = result.skipped
    assert skip.path == bad and words in skip.reason
    _assert_good_listed_and_loadable(result, truth)


def _header_only_nifti(path, shape, dtype=np.int16):
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    header.set_zooms((1.0,) * len(shape))
    header["vox_offset"] = 352
    header["sform_code"] = 1
    header.set_sform(np.eye(4))
    path.write_bytes(header.binaryblock + b"\x00" * 4 + b"\x00" * 1024)
    return path


def test_nifti_header_declaring_too_much_is_refused_by_scan_load_and_core(tmp_path):
    from radlens_core.nifti import NiftiTooLarge, read_nifti, read_nifti_grid
    from viewer.study.formats import read_image

    path = _header_only_nifti(tmp_path / "huge.nii", (30000, 30000, 5000))
    truth = _good(tmp_path)
    result = scan_folder(tmp_path)
    huge = _by_file(result, "huge.nii")
    assert not huge.loadable and huge.shape == (5000, 30000, 30000)
    assert "declares an image of 30000×30000×5000 at 16 bits (8.19 TiB" in huge.problems[0]
    _assert_good_listed_and_loadable(result, truth)
    with pytest.raises(TooLarge, match=r"huge.nii: declares 30000×30000×5000 voxels \(8.19 TiB"):
        read_image(path)
    with pytest.raises(NiftiTooLarge) as err:
        read_nifti(path)
    assert err.value.declared == 30000 * 30000 * 5000 * 2 and err.value.limit == 8 * GiB
    assert read_nifti_grid(path).shape == (5000, 30000, 30000)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_nrrd_and_mha_headers_declaring_too_much_are_listed_not_loadable(tmp_path, suffix):
    from viewer.study.formats import read_image

    path = tmp_path / f"huge{suffix}"
    if suffix == ".nrrd":
        text = (
            "NRRD0004\ntype: short\ndimension: 3\nsizes: 65535 65535 1000\n"
            "spacings: 1 1 1\nencoding: raw\nendian: little\n\n"
        )
    else:
        text = (
            "ObjectType = Image\nNDims = 3\nDimSize = 65535 65535 1000\n"
            "ElementSpacing = 1 1 1\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
        )
    path.write_bytes(text.encode() + b"\x00" * 64)
    truth = _good(tmp_path)
    result = scan_folder(tmp_path)
    huge = _by_file(result, path.name)
    assert not huge.loadable and "(7.81 TiB, 15.6 TiB while loading)" in huge.problems[0]
    _assert_good_listed_and_loadable(result, truth)
    with pytest.raises(TooLarge, match=f"huge{suffix}: declares an image of 65535×65535×1000"):
        read_image(path)


def test_training_dataset_refuses_a_case_whose_header_declares_too_much(tmp_path):
    from inference.training.dataset import DatasetError, load_dataset, write_case

    write_case(tmp_path, "ok", np.zeros((3, 4, 4), np.int16), np.zeros((3, 4, 4)), (1, 1, 1), {})
    write_case(tmp_path, "big", np.zeros((3, 4, 4), np.int16), None, (1, 1, 1), {})
    _header_only_nifti(tmp_path / "big" / "image.nii", (30000, 30000, 5000))
    (tmp_path / "big" / "image.nii.gz").unlink()
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    text = str(err.value)
    assert text.startswith("case big: ") and "image.nii: declares 30000×30000×5000 voxels" in text
    assert "(16.4 TiB" in text  # converted to float32 for training
    from inference.training.cases import TrainingCase

    case = TrainingCase("big", "big", tmp_path / "big" / "image.nii", None)
    with pytest.raises(DatasetError, match="8 GiB one image may use"):
        case.load_image()


# ---- hangs: special files, cancel --------------------------------------------------------------


def _scan_with_deadline(folder, seconds=20.0, **kwargs):
    out: dict = {}

    def run() -> None:
        try:
            out["r"] = scan_folder(folder, **kwargs)
        except StudyError as exc:
            out["e"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the scan hung"
    if "e" in out:
        raise out["e"]
    return out["r"]


def test_fifo_socket_and_device_are_skipped_without_opening_them(tmp_path):
    folder = tmp_path / "s"
    truth = _good(folder)
    os.mkfifo(folder / "pipe.dcm")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(folder / "sock"))
        os.symlink("/dev/zero", folder / "zero.dcm")
        result = _scan_with_deadline(folder)
    finally:
        sock.close()
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons == {
        "pipe.dcm": "a named pipe (FIFO), not a file: skipped without opening it",
        "sock": "a socket, not a file: skipped without opening it",
        "zero.dcm": "a link to a file outside the opened folder: skipped",
    }
    _assert_good_listed_and_loadable(result, truth)


def test_a_device_inside_the_folder_is_skipped(tmp_path, monkeypatch):
    # /dev/zero reached as the scan root's own file: never read (it has no end).
    with pytest.raises(StudyError, match="a character device, not a file"):
        scan_folder("/dev/zero")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(StudyError, match="named pipe"):
        _scan_with_deadline(tmp_path / "pipe")


def test_cli_scan_of_a_folder_with_a_fifo_lists_it_as_skipped(tmp_path, capsys):
    _good(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    assert cli.main(["scan", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"skipped {tmp_path / 'pipe'}: a named pipe (FIFO), not a file" in out


def test_cancel_stops_the_scan_within_a_second_even_inside_a_slow_file(tmp_path, monkeypatch):
    f.write_ct_series(tmp_path, shape=(6, 4, 4))
    real = scan_module.read_header
    release = threading.Event()

    def slow(path, keep=False):
        release.wait(30)  # a file on a stalled network share
        return real(path, keep=keep)

    monkeypatch.setattr(scan_module, "read_header", slow)
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    t0 = time.monotonic()
    try:
        result = scan_folder(tmp_path, cancel=flag.is_set)
    finally:
        release.set()
    assert result.cancelled and time.monotonic() - t0 < 1.3


def test_cancel_stops_a_load_within_a_second_even_inside_a_slow_slice(tmp_path, monkeypatch):
    f.write_ct_series(tmp_path, shape=(4, 4, 4))
    (info,) = scan_folder(tmp_path).series
    reader = SeriesReader(info)
    release = threading.Event()
    real = reader.read_slice

    def slow(z):
        release.wait(30)
        real(z)

    monkeypatch.setattr(reader, "read_slice", slow)
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(LoadCancelled):
            reader.read_all(cancel=flag.is_set)
    finally:
        release.set()
    assert time.monotonic() - t0 < 1.3


# ---- one bad series never spoils the rest ------------------------------------------------------


@pytest.mark.parametrize(
    "keyword, value, sentence",
    [
        ("ImagePositionPatient", ["0", "0", "1e300"], "ImagePositionPatient is 0\\0\\1e+300"),
        ("ImagePositionPatient", ["nan", "0", "0"], "ImagePositionPatient is nan\\0\\0"),
        ("ImagePositionPatient", ["0", "-inf", "0"], "ImagePositionPatient is 0\\-inf\\0"),
        ("PixelSpacing", ["0", "0.7"], "PixelSpacing is 0\\0.7"),
        ("PixelSpacing", ["-0.8", "0.7"], "PixelSpacing is -0.8\\0.7"),
        ("PixelSpacing", ["nan", "nan"], "PixelSpacing is nan\\nan"),
        (
            "ImageOrientationPatient",
            ["1", "0", "0", "1", "0", "0"],
            "ImageOrientationPatient is 1\\0\\0\\1\\0\\0 (no plane",
        ),
        (
            "ImageOrientationPatient",
            ["0", "0", "0", "0", "1", "0"],
            "ImageOrientationPatient is 0\\0\\0\\0\\1\\0 (no plane",
        ),
        (
            "ImageOrientationPatient",
            ["nan", "0", "0", "0", "1", "0"],
            "ImageOrientationPatient is nan\\0\\0\\0\\1\\0",
        ),
    ],
)
def test_absurd_geometry_is_a_problem_of_its_series_naming_file_and_attribute(
    tmp_path, keyword, value, sentence
):
    bad = f.write_ct_series(tmp_path / "bad", shape=(4, 5, 5), shuffle_seed=None)
    f.set_attribute(bad.paths[2], keyword, value)
    truth = _good(tmp_path)
    result = scan_folder(tmp_path)
    (s,) = [s for s in result.series if s.series_uid == bad.series_uid]
    assert not s.loadable and s.shape is None
    (problem,) = s.problems
    assert problem.startswith(f"slice 3 (file {bad.paths[2].name}): {sentence}")
    assert "cannot be measured" in problem
    _assert_good_listed_and_loadable(result, truth)
    with pytest.raises(SeriesAssemblyError) as err:
        load_series(s)
    assert str(err.value) == f"{bad.paths[2].parent}: {problem}"


def test_absurd_slice_thickness_is_reported_but_the_positions_still_measure(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(3, 4, 4), shuffle_seed=None)
    f.set_attribute(truth.paths[1], "SliceThickness", "0")
    (s,) = scan_folder(tmp_path).series
    assert s.loadable and s.problems == [
        f"slice 2 (file {truth.paths[1].name}): SliceThickness is 0 (ignored)"
    ]
    assert load_series(s).spacing[2] == pytest.approx(2.5)


def test_an_arithmetic_failure_in_one_series_is_its_problem_not_the_scans(tmp_path, monkeypatch):
    bad = f.write_ct_series(tmp_path / "bad", shape=(3, 4, 4))
    truth = _good(tmp_path)
    real = scan_series_module.plan_series  # series are assembled there for the scan

    def fragile(headers):
        if headers[0].series_uid == bad.series_uid:
            raise ZeroDivisionError("float division by zero")
        return real(headers)

    monkeypatch.setattr(scan_series_module, "plan_series", fragile)
    result = scan_folder(tmp_path)
    (s,) = [s for s in result.series if s.series_uid == bad.series_uid]
    assert not s.loadable
    assert s.problems == [
        f"cannot be assembled (file {s.files[0].name}: ZeroDivisionError: float division by "
        "zero); not loaded"
    ]
    monkeypatch.setattr(scan_series_module, "plan_series", real)
    _assert_good_listed_and_loadable(result, truth)


def test_cli_prints_the_sentence_of_a_refused_series_and_analyze_says_why(tmp_path, capsys):
    path = f.write_declared(tmp_path / "j2k.dcm", 4096, 4096, 700, JPEG2000Lossless)
    assert cli.main(["scan", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert f"! {path}: declares 700 frames of 4096×4096 at 16 bits (21.9 GiB)" in out.out
    assert "Traceback" not in out.out + out.err
    with pytest.raises(SeriesNotFound, match=r"no loadable image series \(.*21.9 GiB"):
        pick_series(tmp_path)


# ---- DICOMDIR entries stay inside the folder ---------------------------------------------------


def test_dicomdir_entries_leaving_the_folder_are_ignored_and_listed(tmp_path, monkeypatch):
    src = f.write_ct_series(tmp_path / "src", shape=(3, 4, 4))
    other = f.write_ct_series(tmp_path / "other", shape=(2, 4, 4))
    fs = FileSet()
    for p in src.paths:
        fs.add(str(p))
    media = tmp_path / "media"
    fs.write(media)
    os.symlink(other.paths[1], media / "LINK")
    import pydicom

    dicomdir = pydicom.dcmread(media / "DICOMDIR")
    images = [r for r in dicomdir.DirectoryRecordSequence if "ReferencedFileID" in r]
    images[0].ReferencedFileID = ["..", "other", other.paths[0].name]
    images[1].ReferencedFileID = "/etc/passwd"
    images[2].ReferencedFileID = "LINK"
    dicomdir.save_as(media / "DICOMDIR")
    opened = []
    real = scan_module.read_header

    def spy(path, keep=False):
        opened.append(path.resolve())
        return real(path, keep=keep)

    monkeypatch.setattr(scan_module, "read_header", spy)
    result = scan_folder(media)
    assert all(p.is_relative_to(media.resolve()) for p in opened)
    assert other.series_uid not in {s.series_uid for s in result.series}
    reasons = sorted(s.reason for s in result.skipped)
    assert sum("DICOMDIR entry that leaves the opened folder" in r for r in reasons) == 2
    assert sum("DICOMDIR entry that links outside the opened folder" in r for r in reasons) == 1
    assert "a link to a file outside the opened folder: skipped" in reasons
    assert not any("passwd" in str(p) for s in result.series for p in s.files)


# ---- missing slices: the true spacing, the gap named ---------------------------------------


def test_a_missing_slice_is_named_with_positions_and_the_true_spacing_kept(tmp_path):
    f.write_ct_series(tmp_path, z_positions=[0, 2.5, 5, 10], spacing=(0.7, 0.8, 2.5))
    (s,) = scan_folder(tmp_path).series
    assert s.loadable and s.spacing[2] == pytest.approx(2.5)
    assert s.problems[0].startswith(
        "1 slice missing between z=45.00 and z=50.00 mm (slice spacing 2.5 mm)"
    )
    assert load_series(s).spacing[2] == pytest.approx(2.5)


def test_four_slice_series_with_one_unreadable_file_keeps_its_spacing(tmp_path):
    truth = f.write_ct_series(tmp_path / "ct", shape=(4, 6, 6), shuffle_seed=None)
    f.truncate(truth.paths[1], truth.paths[1].with_suffix(".cut"), keep_fraction=0.5)
    truth.paths[1].unlink()
    result = scan_folder(tmp_path)
    (skip,) = result.skipped
    assert "truncated" in skip.reason
    (s,) = result.series
    assert s.spacing[2] == pytest.approx(2.5) and s.n_images == 3
    assert s.problems[0].startswith("1 slice missing between z=40.00 and z=45.00 mm")
    vol = load_series(s)
    assert vol.spacing[2] == pytest.approx(2.5)


def test_several_gaps_are_each_named_and_uneven_spacing_stays_uneven(tmp_path):
    f.write_ct_series(tmp_path / "a", z_positions=[0, 2, 6, 8, 14])
    (a,) = scan_folder(tmp_path / "a").series
    assert a.problems[0].startswith(
        "1 slice missing between z=42.00 and z=46.00 mm; 2 slices missing between z=48.00 and "
        "z=54.00 mm (slice spacing 2 mm)"
    )
    f.write_ct_series(tmp_path / "b", z_positions=[0, 2, 5, 7])
    (b,) = scan_folder(tmp_path / "b").series
    assert b.problems[0].startswith("uneven slice spacing (2 to 3 mm)")


# ---- the codestream's own size, and files changed after the scan ---------------------------

SIZ_65535 = (
    b"\xff\x4f\xff\x51"
    + struct.pack(">HHIIIIIIIIH", 41, 0, 65535, 65535, 0, 0, 65535, 65535, 0, 0, 1)
    + b"\x0f\x01\x01"
)
SOF_65535 = b"\xff\xd8\xff\xc0" + struct.pack(">HBHHB", 11, 8, 65535, 65535, 1) + b"\x01\x11\x00"


@pytest.mark.parametrize(
    "syntax, fragment",
    [(JPEG2000Lossless, SIZ_65535), (JPEGBaseline8Bit, SOF_65535)],
    ids=["jpeg2000", "jpeg"],
)
def test_a_codestream_declaring_more_than_its_header_is_not_decoded(tmp_path, syntax, fragment):
    path = f.write_declared(tmp_path / "liar.dcm", 64, 64, 1, syntax, fragment=fragment, bits=8)
    truth = _good(tmp_path)
    result = scan_folder(tmp_path)
    liar = _by_file(result, "liar.dcm")
    with pytest.raises(UnsupportedFormat) as err:
        load_series(liar)
    assert str(err.value) == (
        f"{path}: frame 1's compressed data declares 65535×65535 pixels but the header says "
        "64×64: not decoded"
    )
    _assert_good_listed_and_loadable(result, truth)


def test_a_file_grown_after_the_scan_is_not_decoded_from_its_new_header(tmp_path):
    path = f.write_declared(tmp_path / "x.dcm", 64, 64, 1, RLELossless)
    (info,) = scan_folder(tmp_path).series
    f.set_attribute(path, "Rows", 65535)
    with pytest.raises(UnsupportedFormat, match="changed on disk since the folder was scanned"):
        load_series(info)


def test_a_deflate_bomb_is_measured_streaming_and_refused_above_the_limit(tmp_path):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    bomb = f.write_2d(tmp_path / "bomb.dcm", np.zeros((1024, 1024), np.uint16))
    ds = f.read_back(bomb)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(bomb, enforce_file_format=True)
    assert bomb.stat().st_size < 20_000  # 2 MiB of pixels, deflated
    truth = _good(tmp_path)
    limits.set_max_alloc_bytes(2**20)
    result = scan_folder(tmp_path)
    (skip,) = result.skipped
    assert skip.path == bomb and skip.reason == (
        "its deflated data inflates to more than 1 MiB, the most one image may use on this "
        "computer; not read (RADLENS_MAX_ALLOC_BYTES sets the limit)"
    )
    _assert_good_listed_and_loadable(result, truth)
    limits.set_max_alloc_bytes(8 * GiB)
    (s,) = [s for s in scan_folder(tmp_path).series if s.files == [bomb]]
    assert s.loadable and load_series(s).shape == (1, 1024, 1024)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPEG-lossy.dcm",
    ],
)
def test_real_codestreams_declare_their_header_size(name):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    from viewer.study.codestream import frame_size

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom installation (no download)")
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))))
    size = frame_size(frame, ds.file_meta.TransferSyntaxUID)
    assert size is not None and size[:2] == (ds.Rows, ds.Columns)
    assert frame_size(frame, RLELossless) is None  # other syntaxes are never parsed as JPEG


def test_label_import_of_an_nrrd_declaring_too_much_is_refused_before_reading(tmp_path):
    from viewer.labels.imports import LabelImportError, import_mask
    from viewer.study.volume import Volume

    path = tmp_path / "mask.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: 65535 65535 100000\n"
        b"spacings: 1 1 1\nencoding: raw\nendian: little\n\n" + b"\x00" * 64
    )
    volume = Volume(np.zeros((4, 8, 8), np.int16), modality="CT", series_uid="1.2.3")
    with pytest.raises(
        LabelImportError, match=r"mask\.nrrd: declares an image of 65535×65535×100000"
    ):
        import_mask(path, volume)
