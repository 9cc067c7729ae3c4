"""The batch hands series to the workers while the folder is still being scanned: a series
whose slices lie in two folders is analysed again, whole, once the scan has seen them all;
results are written by the driver's writer threads, and a series whose results cannot be
written fails alone."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("torch")

from radlens_core.series import series_key  # noqa: E402
from tests.batch_factory import write_phantom_ct  # noqa: E402
from viewer.batch.items import FolderScan  # noqa: E402
from viewer.cli import main  # noqa: E402


def _split_series(root: Path) -> tuple[str, int]:
    """A 12-slice CT with its first half in ``root/a`` and the rest in ``root/zz``, and an
    ordinary series in ``root/m`` between them: the scan reports ``a`` before it reaches
    ``zz``."""
    truth = write_phantom_ct(root / "a", 7)
    (root / "zz").mkdir()
    for path in sorted(truth.paths)[len(truth.paths) // 2 :]:
        path.rename(root / "zz" / path.name)
    write_phantom_ct(root / "m", 8)
    return truth.series_uid, len(truth.paths)


def test_scan_hands_out_a_series_again_when_a_later_folder_adds_slices(tmp_path):
    uid, slices = _split_series(tmp_path)
    handed = list(FolderScan(tmp_path))
    mine = [i for i in handed if i.key == series_key(uid)]
    assert [i.generation for i in mine] == [0, 1]
    assert len(mine[0].series.files) == slices // 2
    assert len(mine[1].series.files) == slices
    assert len(handed) == 3  # the other series once


def test_a_split_series_is_analysed_whole_and_counted_once(tmp_path, capsys):
    uid, slices = _split_series(tmp_path / "archive")
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "archive"), "--out", str(out), "--threads", "1"]) == 0
    data = json.loads((out / series_key(uid) / "findings.json").read_text())
    assert data["geometry"]["shape_zyx"][0] == slices
    db = sqlite3.connect(out / "manifest.sqlite")
    rows = db.execute("SELECT key, status FROM series").fetchall()
    db.close()
    assert sorted(s for _, s in rows) == ["done", "done"]
    assert "2 done, 0 failed, 0 skipped (2 this run" in capsys.readouterr().out


def test_series_whose_results_cannot_be_written_fails_alone(tmp_path, capsys):
    archive = tmp_path / "archive"
    blocked = write_phantom_ct(archive / "one", 1)
    fine = write_phantom_ct(archive / "two", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / series_key(blocked.series_uid)).write_text("in the way\n")  # not a folder
    assert main(["batch", str(archive), "--out", str(out), "--threads", "1", "--quiet"]) == 1
    db = sqlite3.connect(out / "manifest.sqlite")
    got = {k: (s, r) for k, s, r in db.execute("SELECT key, status, reason FROM series")}
    db.close()
    status, reason = got[series_key(blocked.series_uid)]
    assert status == "failed" and reason.startswith("cannot write its results into ")
    assert got[series_key(fine.series_uid)] == ("done", "")
    assert (out / series_key(fine.series_uid) / "findings.json").is_file()
