"""Folder scan: grouping, bad input listed not fatal, DICOMDIR, progress and cancel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from pydicom.fileset import FileSet

from tests import dicom_factory as f
from viewer.study.errors import SeriesAssemblyError, StudyError
from viewer.study.scan import scan_folder
from viewer.study.series import SeriesReader, load_series


def test_scan_groups_files_by_study_and_series_recursively(tmp_path):
    a = f.write_ct_series(tmp_path / "a" / "deep", shape=(4, 6, 6))
    b = f.write_ct_series(tmp_path / "b", shape=(3, 5, 5), study_uid=a.study_uid)
    result = scan_folder(tmp_path)
    assert not result.cancelled and result.skipped == []
    by_uid = {s.series_uid: s for s in result.series}
    assert set(by_uid) == {a.series_uid, b.series_uid}
    assert by_uid[a.series_uid].n_images == 4 and by_uid[a.series_uid].shape == (4, 6, 6)
    assert sorted(by_uid[b.series_uid].files) == sorted(b.paths)
    s = by_uid[a.series_uid]
    assert (s.patient_name, s.patient_id, s.modality, s.kind) == (
        "TEST^PATIENT",
        "TEST-001",
        "CT",
        "dicom",
    )
    assert (s.rows, s.cols, s.study_date) == (6, 6, "20260102")


def test_scan_reads_headers_only_never_pixels(tmp_path, monkeypatch):
    f.write_ct_series(tmp_path, shape=(3, 4, 4))
    import numpy

    def forbidden(*args, **kwargs):
        raise AssertionError("the scan read pixel data")

    monkeypatch.setattr(numpy, "fromfile", forbidden)
    assert scan_folder(tmp_path).series[0].n_images == 3


def test_junk_truncated_and_empty_files_are_skipped_with_reasons(tmp_path):
    truth = f.write_ct_series(tmp_path / "ct", shape=(3, 64, 64))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.dcm").write_bytes(b"")
    f.truncate(truth.paths[0], tmp_path / "cut.dcm", keep_fraction=0.5)
    f.truncate(truth.paths[0], tmp_path / "cut_header.dcm", keep_fraction=0.05)
    result = scan_folder(tmp_path)
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert set(reasons) == {"notes.txt", "empty.dcm", "cut.dcm", "cut_header.dcm"}
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "truncated" in reasons["cut.dcm"] and "bytes short" in reasons["cut.dcm"]
    assert "truncated" in reasons["cut_header.dcm"]
    assert [s.n_images for s in result.series] == [3]


def test_non_image_objects_are_listed_but_not_loadable(tmp_path):
    for kind in ("sr", "pdf", "rtstruct"):
        f.write_non_image(tmp_path / f"{kind}.dcm", kind)
    result = scan_folder(tmp_path)
    assert result.skipped == []
    assert sorted(s.modality for s in result.series) == ["DOC", "RTSTRUCT", "SR"]
    for s in result.series:
        assert s.kind == "non-image" and not s.loadable and s.problems


def test_series_mixing_sizes_is_split_into_loadable_parts_with_the_problem(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(3, 8, 8), rows_cols=[(8, 8), (4, 4), (8, 8)])
    main, extra = scan_folder(tmp_path).series
    assert main.series_uid == truth.series_uid and extra.series_uid == truth.series_uid + "#2"
    assert (main.shape, extra.shape) == ((2, 8, 8), (1, 4, 4))
    assert main.problems == ["part 1 of 2: this series has slices of two slice sizes: 8×8 and 4×4"]
    assert main.loadable and extra.loadable
    assert np.array_equal(load_series(main).array, truth.values[[0, 2]])
    # Each part has its own label-store key.
    assert load_series(extra).series_uid == truth.series_uid + "#2"


def test_localizer_in_an_axial_series_is_split_off(tmp_path):
    truth = f.write_ct_series(tmp_path / "ax", shape=(4, 6, 6))
    f.write_ct_series(
        tmp_path / "loc",
        shape=(1, 6, 6),
        orientation=(1, 0, 0, 0, 0, -1),
        series_uid=truth.series_uid,
        study_uid=truth.study_uid,
    )
    axial, localizer = scan_folder(tmp_path).series
    assert axial.n_images == 4 and localizer.n_images == 1
    assert "mixes slice orientations" in axial.problems[0]
    assert np.array_equal(load_series(axial).array, truth.values)


def test_reader_refuses_a_series_of_two_sizes_naming_them(tmp_path):
    f.write_ct_series(tmp_path, shape=(3, 8, 8), rows_cols=[(8, 8), (4, 4), (8, 8)])
    main, extra = scan_folder(tmp_path).series
    mixed = replace(main, headers=main.headers + extra.headers, files=main.files + extra.files)
    with pytest.raises(SeriesAssemblyError, match="two slice sizes: 8×8 and 4×4"):
        SeriesReader(mixed)


def test_files_without_series_uid_are_each_their_own_series(tmp_path):
    for k in range(2):
        path = f.write_2d(tmp_path / f"sc{k}.dcm", np.full((4, 4), k, np.uint16))
        ds = f.read_back(path)
        del ds.SeriesInstanceUID
        ds.save_as(path, enforce_file_format=True)
    result = scan_folder(tmp_path)
    assert len(result.series) == 2
    assert all(s.series_uid.startswith("sha256:") for s in result.series)
    assert {int(load_series(s).array.max()) for s in result.series} == {0, 1}


def test_single_file_can_be_scanned(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(2, 4, 4))
    result = scan_folder(truth.paths[0])
    assert result.root == truth.paths[0] and result.series[0].n_images == 1


def test_missing_path_is_a_typed_error(tmp_path):
    with pytest.raises(StudyError, match="no such file or folder"):
        scan_folder(tmp_path / "nope")


def test_progress_is_reported_per_file_and_cancel_stops_the_scan(tmp_path):
    f.write_ct_series(tmp_path, shape=(6, 4, 4))
    seen: list[float] = []
    scan_folder(tmp_path, progress=lambda frac, text: seen.append(frac))
    assert len(seen) == 7 and seen[-1] == 1.0 and seen == sorted(seen)
    checks = []

    def cancel() -> bool:
        checks.append(1)
        return len(checks) > 3

    result = scan_folder(tmp_path, cancel=cancel)
    assert result.cancelled and sum(s.n_images for s in result.series) == 2


def test_dicomdir_references_are_used_and_missing_ones_reported(tmp_path):
    src = f.write_ct_series(tmp_path / "src", shape=(3, 4, 4))
    fs = FileSet()
    for p in src.paths:
        fs.add(str(p))
    media = tmp_path / "media"
    fs.write(media)
    referenced = sorted(p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    referenced[0].unlink()
    result = scan_folder(media)
    assert [s.n_images for s in result.series] == [2]
    assert len(result.skipped) == 1 and "missing" in result.skipped[0].reason


def test_scan_result_json_lists_series_and_skipped(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(3, 4, 5), spacing=(0.5, 0.6, 2.0))
    (tmp_path / "junk.bin").write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    data = scan_folder(tmp_path).to_json()
    (s,) = data["series"]
    assert s["series_uid"] == truth.series_uid and s["shape"] == [3, 4, 5]
    assert s["spacing_mm"] == pytest.approx([0.5, 0.6, 2.0])
    assert data["skipped"][0]["path"].endswith("junk.bin")


def test_pick_series_names_the_folder_when_nothing_can_be_loaded(tmp_path):
    from viewer.study.errors import SeriesNotFound
    from viewer.study.scan import pick_series

    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(SeriesNotFound) as err:
        pick_series(tmp_path)
    assert str(tmp_path) in str(err.value) and "no image series" in str(err.value)
    with pytest.raises(SeriesNotFound, match="no loadable series '1.2.3'"):
        pick_series(tmp_path, "1.2.3")
