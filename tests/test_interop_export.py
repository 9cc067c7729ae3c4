"""Exports that other toolkits' sources allow: a SEG without type-2 attributes, one failing
format never stopping the others."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from tests.test_export_dicom_seg import _doc, write_ct_series
from viewer.labels.deid import Deidentifier
from viewer.labels.dicomseg import TYPE2_COPIED
from viewer.labels.export import export_case

SALT = b"interop-salt"


def _strip_type2(ds):
    for keyword in TYPE2_COPIED:
        if keyword in ds:
            delattr(ds, keyword)


@pytest.mark.parametrize("deid", [True, False])
def test_seg_is_written_when_the_source_lacks_type2_attributes(tmp_path, deid):
    vol, uids = write_ct_series(tmp_path / "src", extra=_strip_type2)
    before = {p: open(p, "rb").read() for p in vol.meta["source_files"]}
    res = export_case(
        vol, _doc(vol), tmp_path / "out", ["nifti", "dicom-seg"], deid=deid,
        deidentifier=Deidentifier(SALT), seg_type="binary",
    )  # fmt: skip
    assert "seg.dcm" in res.files and "mask.nii.gz" in res.files
    seg = pydicom.dcmread(res.folder / "seg.dcm")
    for keyword in ("PatientSex", "AccessionNumber", "StudyID", "StudyTime", "PatientBirthDate"):
        assert keyword in seg and not seg[keyword].value, keyword  # present, zero-length
    assert int(seg.NumberOfFrames) == 3  # slice 1: label 1; slice 2: labels 1 and 2
    report = json.loads((res.folder / "export.json").read_text())
    assert "failed" not in report
    # The sources were read, never written.
    assert {p: open(p, "rb").read() for p in vol.meta["source_files"]} == before


def test_a_failing_seg_does_not_stop_the_nifti_and_is_reported(tmp_path, monkeypatch):
    vol, _ = write_ct_series(tmp_path / "src")
    vol.meta["source_files"] = vol.meta["source_files"][:-1]  # one slice's file is gone
    res = export_case(
        vol, _doc(vol), tmp_path / "out", ["nifti", "json", "dicom-seg"],
        deidentifier=Deidentifier(SALT),
    )  # fmt: skip
    assert "mask.nii.gz" in res.files and "annotations.json" in res.files
    assert "seg.dcm" not in res.files and not (res.folder / "seg.dcm").exists()
    report = json.loads((res.folder / "export.json").read_text())
    assert "one source file per slice" in report["failed"]["dicom-seg"]
    assert any(w.startswith("DICOM-SEG not written") for w in report["warnings"])


def _labelled(tmp_path, extra=None):
    from viewer.labels.store import LabelStore
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series

    src = tmp_path / "study"
    _, uids = write_ct_series(src, extra=extra)
    volume = load_series(scan_folder(src).series[0])
    with LabelStore.open(volume) as store:
        square = np.zeros(volume.shape[1:], bool)
        square[3:7, 3:7] = True
        store.document.paint(1, square, 2)
    return src, uids


def test_cli_writes_the_seg_of_a_source_without_type2_attributes(tmp_path, capsys):
    from viewer.cli import main

    src, uids = _labelled(tmp_path, extra=_strip_type2)
    out = tmp_path / "export"
    rc = main(["export", str(src), "--format", "nifti,dicom-seg", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    (case,) = out.iterdir()
    assert {"seg.dcm", "mask.nii.gz"} <= {p.name for p in case.iterdir()}


def test_cli_reports_the_failed_format_and_writes_the_others(tmp_path, capsys, monkeypatch):
    from viewer.cli import main
    from viewer.labels import dicomseg

    def refuse(*args, **kwargs):
        raise dicomseg.SegExportError("highdicom refused the segmentation: test refusal")

    monkeypatch.setattr(dicomseg, "build_segmentation", refuse)
    src, uids = _labelled(tmp_path)
    out = tmp_path / "export"
    rc = main(["export", str(src), "--format", "nifti,csv,dicom-seg", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "DICOM-SEG not written: highdicom refused the segmentation: test refusal" in err
    assert "dicom-seg was not written" in err
    (case,) = out.iterdir()
    names = {p.name for p in case.iterdir()}
    assert {"mask.nii.gz", "annotations.csv", "export.json"} <= names and "seg.dcm" not in names
    report = json.loads((case / "export.json").read_text())
    assert report["failed"] == {"dicom-seg": "highdicom refused the segmentation: test refusal"}
