"""The demo study, `radlens scan` and `radlens demo`, and the DICOM tags list."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import dicom_factory as f
from viewer import cli
from viewer.study import demo
from viewer.study.errors import StudyError, UnreadableFile
from viewer.study.scan import scan_folder
from viewer.study.series import load_series
from viewer.study.tags import dicom_tags


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    # The full demo is 96x256x256; tests use a smaller phantom of the same recipe.
    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "DEMO_SHAPE", (12, 32, 32))
    yield tmp_path_factory.mktemp("demo")
    mp.undo()


def test_demo_series_round_trips_to_the_demo_volume(small_demo):
    vol = demo.demo_volume()
    paths = demo.write_demo_series(small_demo / "dcm")
    assert len(paths) == vol.shape[0]
    (info,) = scan_folder(small_demo / "dcm").series
    assert info.patient_name == "RADLENS^DEMO" and info.problems == []
    loaded = load_series(info)
    assert loaded.array.dtype == np.int16 and np.array_equal(loaded.array, vol.array)
    assert loaded.series_uid == vol.series_uid
    assert np.allclose(loaded.affine_lps, vol.affine_lps, atol=1e-3)
    assert loaded.windows[0] == (40.0, 400.0, "MEDIASTINUM")
    assert vol.meta["truth_labels"].shape == vol.shape and vol.meta["nodules"]


def test_demo_refuses_to_overwrite_and_the_cache_is_written_once(small_demo):
    target = small_demo / "twice"
    demo.write_demo_series(target)
    with pytest.raises(StudyError, match="already exists"):
        demo.write_demo_series(target)
    first = demo.demo_series_dir()
    stamp = (first / "CT0001.dcm").stat().st_mtime_ns
    assert demo.demo_series_dir() == first
    assert (first / "CT0001.dcm").stat().st_mtime_ns == stamp


def test_cli_demo_then_scan_json(small_demo, capsys):
    out = small_demo / "cli"
    assert cli.main(["demo", "--out", str(out)]) == 0
    capsys.readouterr()
    (out / "readme.txt").write_text("not dicom")
    assert cli.main(["scan", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (s,) = data["series"]
    assert s["modality"] == "CT" and s["shape"] == [12, 32, 32] and s["problems"] == []
    assert s["spacing_mm"][2] == pytest.approx(300 / 12)
    assert data["skipped"] == [
        {"path": str(out / "readme.txt"), "reason": "not a DICOM file (no DICM marker)"}
    ]


def test_cli_scan_table_shows_problems_and_skips(tmp_path, capsys):
    f.write_ct_series(tmp_path, z_positions=[0, 2, 6, 8])
    (tmp_path / "x.txt").write_text("junk")
    assert cli.main(["scan", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "1 series, 1 skipped" in text and "missing" in text and "x.txt" in text
    assert cli.main(["scan", str(tmp_path / "absent")]) == 2


def test_tags_list_header_elements_with_nested_sequences(tmp_path):
    path = f.write_enhanced(tmp_path / "mf.dcm", f.ct_values((2, 4, 4)))
    rows = dicom_tags(path)
    by_kw = {kw: (tag, vr, value) for tag, kw, vr, value in rows}
    assert by_kw["PatientName"] == ("(0010,0010)", "PN", "TEST^PATIENT")
    assert by_kw["TransferSyntaxUID"][0] == "(0002,0010)"
    assert by_kw["PerFrameFunctionalGroupsSequence"][2] == "<2 items>"
    assert ">>ImagePositionPatient" in by_kw
    assert "PixelData" not in by_kw


def test_tags_of_junk_is_a_typed_error(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(UnreadableFile, match="a.txt"):
        dicom_tags(tmp_path / "a.txt")


def test_study_package_imports_neither_qt_nor_torch():
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "import viewer.study.scan, viewer.study.series, viewer.study.formats\n"
        "import viewer.study.demo, viewer.study.tags, viewer.commands.scan, viewer.commands.demo\n"
        "bad = [m for m in ('torch', 'PySide6', 'pyqtgraph', 'monai') if m in sys.modules]\n"
        "print(', '.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("where", ["loading", "running"])
def test_ctrl_c_before_a_command_handles_it_exits_130_with_a_sentence(
    monkeypatch, capsys, tmp_path, where
):
    """Ctrl-C while a command's modules load (or in a command with no handler of its own)
    ends with the shell's status 130 and one line, never a traceback."""
    from viewer.commands import scan

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    if where == "loading":
        monkeypatch.setattr(cli, "_available", interrupted)
    else:
        monkeypatch.setattr(scan, "run", interrupted)
    assert cli.main(["scan", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "radlens scan: stopped (Ctrl-C)" in err and "Traceback" not in err
