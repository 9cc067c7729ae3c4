"""`radlens export`: from a DICOM folder and its stored labels to a case folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_export_dicom_seg import PHI, write_ct_series
from viewer.cli import main
from viewer.labels.model import Box
from viewer.labels.store import LabelStore
from viewer.study.scan import scan_folder
from viewer.study.series import load_series


@pytest.fixture
def labelled_series(tmp_path):
    src = tmp_path / "study"
    _, uids = write_ct_series(src)
    volume = load_series(scan_folder(src).series[0])
    with LabelStore.open(volume) as store:
        square = np.zeros(volume.shape[1:], bool)
        square[3:7, 3:7] = True
        store.document.paint(1, square, 2)
        store.document.paint(2, square, 2)
        store.document.add(Box(2, id="b1", corners=(1, 3, 3, 2, 6, 6)))
    return src, uids


def test_cli_exports_stored_labels_deidentified(labelled_series, tmp_path, capsys):
    src, uids = labelled_series
    out = tmp_path / "export"
    rc = main(["export", str(src), "--series", uids["series"], "--format", "nifti,json",
               "--format", "dicom-seg", "--out", str(out), "--with-image"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    (case,) = out.iterdir()
    names = {p.name for p in case.iterdir()}
    assert {"mask.nii.gz", "image.nii.gz", "seg.dcm", "annotations.json", "export.json"} <= names
    info = json.loads((case / "export.json").read_text())
    assert info["deid"]["enabled"] and info["patient_id"] != PHI["PatientID"]
    assert info["labels"]["2"]["voxels"] == 32
    ann = json.loads((case / "annotations.json").read_text())["annotations"]
    assert [a["id"] for a in ann] == ["b1"]
    blob = b"".join(p.read_bytes() for p in case.rglob("*") if p.is_file())
    assert not [
        v
        for v in (*PHI.values(), uids["series"], uids["study"], *uids["sops"])
        if v.encode() in blob
    ]
    # Second run refuses to overwrite, with a sentence and exit status 1.
    assert main(["export", str(src), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_cli_reports_unknown_series_and_missing_labels(labelled_series, tmp_path, capsys):
    src, _ = labelled_series
    assert main(["export", str(src), "--series", "9.9.9", "--out", str(tmp_path / "o")]) == 1
    assert "no loadable series '9.9.9'" in capsys.readouterr().err
    other = tmp_path / "other"
    write_ct_series(other)
    assert main(["export", str(other), "--out", str(tmp_path / "o")]) == 1
    assert "no labels are stored" in capsys.readouterr().err
