"""AI results as DICOM-SEG: `radlens export` of a series with AI results and no labels drawn
writes them, marked as AI results; `radlens analyze --format dicom-seg` writes seg.dcm. Both
SEGs say AUTOMATIC with the model's id and version."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from radlens_core.results import LabelClass
from tests.seg_series import load, write_series
from viewer.cli import main
from viewer.labels.results import ResultRecord, ResultStore
from viewer.labels.seg_read import read_seg


def _algorithm(ds) -> tuple[str, str, str]:
    item = ds.SegmentSequence[-1]
    ident = item.SegmentationAlgorithmIdentificationSequence[0]
    return str(item.SegmentAlgorithmType), str(ident.AlgorithmName), str(ident.AlgorithmVersion)


def test_export_of_a_series_with_only_ai_results_writes_them_marked_as_ai(tmp_path, capsys):
    write_series(tmp_path / "src")
    volume = load(tmp_path / "src")
    mask = np.zeros(volume.shape, np.uint8)
    mask[2:4, 5:9, 6:10] = 2
    mask[1, 1:3, 1:3] = 1
    rec = ResultRecord(
        model_id="demo-liver", model_name="Demo liver", model_version="1.4",
        task="segmentation", shape=volume.shape, label_map=mask,
        labels=[LabelClass(1, "liver", "#aa5500"), LabelClass(2, "lesion", "#00ff88")],
    )  # fmt: skip
    ResultStore().save(volume.series_uid, rec)
    out = tmp_path / "export"
    rc = main(["export", str(tmp_path / "src"), "--format", "nifti,dicom-seg", "--out", str(out),
               "--no-deid"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "AI results, not drawn by a person" in captured.out and "demo-liver@1.4" in captured.out
    (case,) = out.iterdir()
    info = json.loads((case / "export.json").read_text())
    assert info["labels_source"] == "ai"
    assert info["ai_results"][0]["model_id"] == "demo-liver"
    assert info["ai_results"][0]["run_id"] == rec.run_id
    assert "AI results" in info["labels_note"]
    ds = pydicom.dcmread(case / "seg.dcm")
    assert _algorithm(ds) == ("AUTOMATIC", "demo-liver", "1.4")
    assert ds.ContentLabel == "AI_RESULT"
    imp = read_seg(case / "seg.dcm", volume)
    assert imp.automatic
    assert {c.name: c.color for c in imp.label_set} == {"liver": "#aa5500", "lesion": "#00ff88"}
    names = {c.index: c.name for c in imp.label_set}
    np.testing.assert_array_equal(
        np.vectorize(lambda v: {"liver": 1, "lesion": 2}.get(names.get(v, ""), 0))(imp.array),
        mask,
    )


def test_export_with_neither_labels_nor_ai_results_says_so(tmp_path, capsys):
    write_series(tmp_path / "src")
    rc = main(["export", str(tmp_path / "src"), "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "no labels are stored" in capsys.readouterr().err


def test_analyze_format_dicom_seg_writes_the_label_map_as_an_automatic_seg(tmp_path, capsys):
    pytest.importorskip("torch")
    from radlens_core.paths import user_models_dir
    from tests.inference_factory import save_seg_package
    from viewer.study.formats import read_image

    save_seg_package(user_models_dir() / "seg")
    write_series(tmp_path / "src", shape=(8, 32, 32), spacing_xyz=(4.0, 4.0, 5.0))
    out = tmp_path / "out"
    rc = main(["analyze", str(tmp_path / "src"), "--model", "tiny-seg", "--out", str(out),
               "--device", "cpu", "--threads", "1", "--quiet", "--format", "dicom-seg"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    data = json.loads((out / "findings.json").read_text())
    assert data["files"]["seg"] == "seg.dcm" and "failed" not in data
    ds = pydicom.dcmread(out / "seg.dcm")
    assert ds.SegmentationType == "LABELMAP"
    assert _algorithm(ds) == ("AUTOMATIC", "tiny-seg", "0.1")
    volume = load(tmp_path / "src")
    mask = read_image(out / "mask.nii.gz").array
    np.testing.assert_array_equal(read_seg(out / "seg.dcm", volume).array, mask)


def test_analyze_format_dicom_seg_of_a_nifti_is_reported_not_fatal(tmp_path, capsys):
    pytest.importorskip("torch")
    from radlens_core.paths import user_models_dir
    from tests.inference_factory import save_seg_package
    from viewer.study.formats import write_image
    from viewer.study.volume import Volume

    save_seg_package(user_models_dir() / "seg")
    arr = np.full((8, 32, 32), -800, np.int16)
    write_image(Volume(arr, spacing=(4.0, 4.0, 5.0), modality="CT"), tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    rc = main(["analyze", str(tmp_path / "ct.nii.gz"), "--model", "tiny-seg", "--modality", "CT",
               "--out", str(out), "--device", "cpu", "--quiet", "--format", "dicom-seg"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0
    assert "DICOM-SEG not written" in err and "source DICOM files" in err
    data = json.loads((out / "findings.json").read_text())
    assert "source DICOM files" in data["failed"]["dicom-seg"]
    assert (out / "mask.nii.gz").exists() and not (out / "seg.dcm").exists()


def test_export_of_a_series_opened_and_analysed_but_not_labelled_writes_the_ai_results(
    tmp_path, capsys
):
    from viewer.labels.store import LabelStore

    write_series(tmp_path / "src")
    volume = load(tmp_path / "src")
    with LabelStore.open(volume):  # opened in the viewer: a store exists, nothing drawn
        pass
    mask = np.zeros(volume.shape, np.uint8)
    mask[2, 5:9, 6:10] = 1
    ResultStore().save(
        volume.series_uid,
        ResultRecord(
            model_id="demo-nodule", model_name="Demo", model_version="2", task="segmentation",
            shape=volume.shape, label_map=mask, labels=[LabelClass(1, "nodule", "#ff8800")],
        ),
    )  # fmt: skip
    out = tmp_path / "export"
    rc = main(["export", str(tmp_path / "src"), "--format", "dicom-seg", "--out", str(out),
               "--no-deid"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    (case,) = out.iterdir()
    assert json.loads((case / "export.json").read_text())["labels_source"] == "ai"
    np.testing.assert_array_equal(read_seg(case / "seg.dcm", volume).array, mask)

    # Once a person paints, the export is theirs again.
    with LabelStore.open(volume) as store:
        square = np.zeros(volume.shape[1:], bool)
        square[1:3, 1:3] = True
        store.document.paint(1, square, 2)
    rc = main(["export", str(tmp_path / "src"), "--format", "dicom-seg", "--out", str(out),
               "--no-deid", "--overwrite"])  # fmt: skip
    assert rc == 0
    info = json.loads((case / "export.json").read_text())
    assert info["labels_source"] == "human"
    assert pydicom.dcmread(case / "seg.dcm").SegmentSequence[-1].SegmentAlgorithmType == "MANUAL"
