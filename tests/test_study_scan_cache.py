"""The scan cache: reopening an unchanged folder reads no file again; a changed file, another
folder or a damaged cache file is never trusted."""

from __future__ import annotations

import os
import shutil
import stat
import time

import pydicom
import pytest

from tests import dicom_factory as f
from viewer.study import scan as scan_module
from viewer.study import scan_cache
from viewer.study.scan import scan_folder

HOUR_AGO = time.time() - 3600


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "user-data"
    monkeypatch.setenv("RADLENS_DATA_DIR", str(folder))
    monkeypatch.delenv(scan_cache.ENV_VAR, raising=False)
    return folder


@pytest.fixture
def reads(monkeypatch):
    """The files the scan parsed (cache misses), in order."""
    seen = []
    real = scan_module.read_header

    def counting(path, keep=False):
        seen.append(path.name)
        return real(path, keep=keep)

    monkeypatch.setattr(scan_module, "read_header", counting)
    return seen


def _old(paths):
    # Files written a while ago, as a study on disk is (a fresh file is read again: racy).
    for p in paths:
        os.utime(p, (HOUR_AGO, HOUR_AGO))


def _series(result):
    return [(s.to_json(), s.headers) for s in result.series]


def _study(tmp_path, n=4):
    truth = f.write_ct_series(tmp_path / "study", shape=(n, 8, 8))
    _old(truth.paths)
    return truth


def test_reopening_an_unchanged_folder_reads_no_file(tmp_path, data_dir, reads):
    truth = _study(tmp_path)
    first = scan_folder(tmp_path / "study")
    assert len(reads) == 4
    reads.clear()
    again = scan_folder(tmp_path / "study")
    assert reads == []
    assert _series(again) == _series(first)
    assert again.series[0].description == "Factory CT"
    # The cache lives in the user data folder, private, never beside the sources.
    (cache,) = (data_dir / "scan-cache").glob("*.json")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == sorted(
        p.name for p in truth.paths
    )


def test_a_changed_file_is_read_again_even_with_its_size_and_mtime_kept(tmp_path, data_dir, reads):
    truth = _study(tmp_path)
    scan_folder(tmp_path / "study")
    victim = truth.paths[2]
    before = victim.stat()
    ds = pydicom.dcmread(victim)
    ds.SeriesDescription = "Factory MR"  # the same length: the file keeps its size
    ds.save_as(victim)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert victim.stat().st_size == before.st_size
    assert victim.stat().st_mtime_ns == before.st_mtime_ns
    reads.clear()
    result = scan_folder(tmp_path / "study")
    assert reads == [victim.name]
    assert result.series[0].headers  # still one series of 4 files
    # A file that changes size is read again too.
    reads.clear()
    with open(truth.paths[0], "ab") as fp:
        fp.write(b"\0\0")
    _old([truth.paths[0]])
    scan_folder(tmp_path / "study")
    assert reads == [truth.paths[0].name]


def test_a_file_written_just_now_is_not_taken_from_the_cache(tmp_path, data_dir, reads):
    truth = f.write_ct_series(tmp_path / "study", shape=(3, 8, 8))  # mtimes: now
    scan_folder(tmp_path / "study")
    reads.clear()
    scan_folder(tmp_path / "study")
    assert sorted(reads) == sorted(p.name for p in truth.paths)


def test_the_cache_of_one_folder_is_not_used_for_another(tmp_path, data_dir, reads):
    _study(tmp_path)
    scan_folder(tmp_path / "study")
    shutil.copytree(tmp_path / "study", tmp_path / "copy")
    _old((tmp_path / "copy").iterdir())
    reads.clear()
    copy = scan_folder(tmp_path / "copy")
    assert len(reads) == 4
    assert all(p.parent == tmp_path / "copy" for p in copy.series[0].files)
    # Even a cache file put under the other folder's name is refused: it names its folder.
    caches = {p.stat().st_mtime_ns: p for p in (data_dir / "scan-cache").glob("*.json")}
    older, newer = (caches[k] for k in sorted(caches))
    shutil.copyfile(older, newer)
    reads.clear()
    again = scan_folder(tmp_path / "copy")
    assert len(reads) == 4
    assert all(p.parent == tmp_path / "copy" for p in again.series[0].files)


@pytest.mark.parametrize(
    "damage",
    [
        b"\x00\xff garbage",
        b'{"fingerprint": ',
        b"[]",
        b'{"fingerprint": "x", "root": "/", "files": {}, "written_ns": 0}',
        "entries",
    ],
    ids=["bytes", "truncated", "not-an-object", "other-code", "bad-entries"],
)
def test_a_damaged_cache_file_is_ignored_and_rewritten(tmp_path, data_dir, reads, damage):
    _study(tmp_path)
    first = scan_folder(tmp_path / "study")
    (cache,) = (data_dir / "scan-cache").glob("*.json")
    if damage == "entries":
        import json

        data = json.loads(cache.read_text())
        for k, entry in enumerate(data["files"].values()):
            if k % 2:
                entry[2] = []
            else:
                entry[2][0][scan_cache._HEADER_FIELDS.index("rows")] = "many"
        cache.write_text(json.dumps(data))
    else:
        cache.write_bytes(damage)
    reads.clear()
    again = scan_folder(tmp_path / "study")
    assert len(reads) == 4
    assert _series(again) == _series(first)
    reads.clear()
    scan_folder(tmp_path / "study")
    assert reads == []  # rewritten whole


def test_the_cache_folder_is_bounded(tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(scan_cache, "MAX_CACHE_FILES", 2)
    for k in range(4):
        truth = f.write_ct_series(tmp_path / f"s{k}", shape=(2, 4, 4))
        _old(truth.paths)
        scan_folder(tmp_path / f"s{k}")
    assert len(list((data_dir / "scan-cache").glob("*.json"))) == 2


def test_the_cache_can_be_turned_off(tmp_path, data_dir, reads, monkeypatch):
    _study(tmp_path)
    monkeypatch.setenv(scan_cache.ENV_VAR, "0")
    scan_folder(tmp_path / "study")
    reads.clear()
    scan_folder(tmp_path / "study")
    assert len(reads) == 4
    assert not (data_dir / "scan-cache").exists() or not list(
        (data_dir / "scan-cache").glob("*.json")
    )


def test_skipped_and_non_image_files_come_back_the_same_from_the_cache(tmp_path, data_dir, reads):
    _study(tmp_path)
    f.write_non_image(tmp_path / "study" / "sr.dcm", "sr")
    (tmp_path / "study" / "notes.txt").write_text("not dicom")
    _old((tmp_path / "study").iterdir())
    first = scan_folder(tmp_path / "study")
    reads.clear()
    again = scan_folder(tmp_path / "study")
    assert reads == []
    assert again.to_json() == first.to_json()


def test_a_reopened_folder_reports_its_first_series_before_reviving_the_rest(
    tmp_path, data_dir, reads, monkeypatch
):
    for k in range(3):
        _old(f.write_ct_series(tmp_path / "study" / f"s{k}", shape=(4, 8, 8)).paths)
    first = scan_folder(tmp_path / "study")
    revived: list[str] = []
    real = scan_cache.ScanCache.lookup

    def counting(self, path, st):
        revived.append(path.name)
        return real(self, path, st)

    monkeypatch.setattr(scan_cache.ScanCache, "lookup", counting)
    monkeypatch.setattr(scan_module, "REPORT_INTERVAL_S", 0.0)
    at_first_report: list[int] = []

    def on_series(found):
        if not at_first_report:
            at_first_report.append(len(revived))

    reads.clear()
    again = scan_folder(tmp_path / "study", on_series=on_series)
    assert reads == [] and len(revived) == 12
    # When the first folder's series was reported, its four entries had been revived (and
    # the first of the next folder, whose arrival closes the first), not all twelve.
    assert at_first_report == [5]
    assert _series(again) == _series(first)
