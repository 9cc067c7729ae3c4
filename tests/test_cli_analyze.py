"""`radlens analyze` and `radlens models` end to end: DICOM in, findings.json + NIfTI out."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from phantoms.chest import chest_ct  # noqa: E402
from radlens_core.paths import user_models_dir  # noqa: E402
from tests.dicom_factory import write_ct_series  # noqa: E402
from tests.inference_factory import save_det_package, save_seg_package  # noqa: E402
from viewer.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")


@pytest.fixture
def ct_folder(tmp_path):
    ct = chest_ct((12, 32, 32), seed=1, n_nodules=1)
    truth = write_ct_series(
        tmp_path / "dicom", shape=ct.hu.shape, spacing=(4.0, 4.0, 5.0), values=ct.hu
    )
    return tmp_path / "dicom", truth


@pytest.fixture
def installed_segmenter():
    return save_seg_package(user_models_dir() / "seg")


def test_analyze_writes_findings_mask_and_heatmap_with_series_geometry(
    ct_folder, installed_segmenter, tmp_path, capsys
):
    from viewer.study.formats import read_image

    folder, truth = ct_folder
    out = tmp_path / "out"
    rc = main(
        [
            "analyze",
            str(folder),
            "--model",
            "tiny-seg",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--threads",
            "1",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "window 1 of" in captured.err and "100.0%" in captured.err
    data = json.loads((out / "findings.json").read_text())
    assert data["model"] == {
        "id": "tiny-seg",
        "version": "0.1",
        "name": "Tiny segmenter",
        "task": "segmentation",
        "trained_on": "",
    }
    assert data["device"] == "cpu" and data["intended_use"] == "test only"
    assert set(data["volumes_ml"]) == {"lung", "nodule"}
    mask = read_image(out / "mask.nii.gz")
    assert mask.shape == (12, 32, 32)
    assert np.allclose(mask.spacing, (4.0, 4.0, 5.0))
    assert np.allclose(mask.origin, truth.positions[0])
    heat = read_image(out / "heatmap.nii.gz")
    assert heat.array.dtype == np.float32 and heat.array.max() <= 1.0
    # The source folder is only read.
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in truth.paths)


def test_analyze_reports_boxes_in_voxels_and_patient_mm(ct_folder, tmp_path, monkeypatch):
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series

    save_det_package(user_models_dir() / "det", target_spacing=None, patch_size=[32, 32, 12])

    def fake(net, x):
        out = torch.full((x.shape[0], 4, *x.shape[2:]), -10.0)
        out[:, 0, 6, 10, 20] = 10.0
        out[:, 1:, 6, 10, 20] = torch.tensor([2.0, 4.0, 4.0])
        return out

    monkeypatch.setattr("inference.tasks.segment.forward", fake)
    folder, _ = ct_folder
    out = tmp_path / "out"
    rc = main(["analyze", str(folder), "--model", "tiny-det", "--out", str(out), "--quiet"])
    assert rc == 0
    data = json.loads((out / "findings.json").read_text())
    [box] = data["boxes"]
    assert box["center_voxel_zyx"] == [6.0, 10.0, 20.0]
    assert box["corners_voxel_zyx"] == [5.0, 8.0, 18.0, 7.0, 12.0, 22.0]
    vol = load_series(scan_folder(folder).series[0])
    assert np.allclose(box["center_lps_mm"], vol.index_to_patient([6, 10, 20]), atol=0.01)


def test_models_command_lists_packages_and_refused_ones(installed_segmenter, capsys):
    broken = user_models_dir() / "broken"
    broken.mkdir()
    (broken / "model.json").write_text(json.dumps({"id": "broken", "task": "nope"}))
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "tiny-seg" in [m["id"] for m in data["models"]]
    assert any("broken" in p["path"] and "'task'" in p["problem"] for p in data["problems"])


def test_analyze_errors_are_sentences_with_non_zero_exit(ct_folder, tmp_path, capsys):
    folder, _ = ct_folder
    rc = main(["analyze", str(folder), "--model", "no-such", "--out", str(tmp_path / "o")])
    assert rc == 2 and "no model package 'no-such'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = main(["analyze", str(empty), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no image series found" in capsys.readouterr().err


def test_analyze_never_overwrites_earlier_results(ct_folder, installed_segmenter, tmp_path, capsys):
    folder, _ = ct_folder
    out = tmp_path / "out"
    out.mkdir()
    (out / "findings.json").write_text("{}")
    rc = main(["analyze", str(folder), "--out", str(out), "--quiet"])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "findings.json").read_text() == "{}"


def test_folder_with_two_series_needs_series_and_then_analyses_that_one(
    ct_folder, installed_segmenter, tmp_path, capsys
):
    folder, truth = ct_folder
    other = write_ct_series(folder / "other", shape=(4, 16, 16), spacing=(2.0, 2.0, 3.0))
    rc = main(["analyze", str(folder), "--out", str(tmp_path / "a"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--series" in err and truth.series_uid in err and other.series_uid in err
    out = tmp_path / "b"
    rc = main(
        [
            "analyze",
            str(folder),
            "--series",
            other.series_uid,
            "--model",
            "tiny-seg",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    data = json.loads((out / "findings.json").read_text())
    assert data["series_uid"] == other.series_uid and data["geometry"]["shape_zyx"] == [4, 16, 16]


def test_findings_json_is_built_from_core_records_with_2d_boxes_on_slice_0(tmp_path):
    from types import SimpleNamespace

    from radlens_core.results import AnalysisResult, Box, Classification, RunInfo, Task
    from viewer.commands.analyze import findings_json
    from viewer.study.volume import Volume

    volume = Volume(np.zeros((1, 20, 30), np.int16), spacing=(0.5, 0.5, 1.0), series_uid="7.7")
    card = SimpleNamespace(id="cxr", version="1.0", name="CXR", task="classification",
                           training={"data": "phantoms"}, intended_use="Demo only.")  # fmt: skip
    result = AnalysisResult(
        run=RunInfo("cxr", "1.0", Task.CLASSIFICATION, timings={"total": 0.25}, warnings=("w",)),
        boxes=(Box((2, 4, 6, 10), "nodule", 0.87654),),
        classification=Classification({"normal": 0.2, "nodule": 0.8}),
    )
    data = findings_json(tmp_path / "x.png", volume, "DX", card, result)
    assert data["model"] == {"id": "cxr", "version": "1.0", "name": "CXR",
                             "task": "classification", "trained_on": "phantoms"}  # fmt: skip
    assert data["device"] == "cpu" and data["timings_s"] == {"total": 0.25}
    assert data["warnings"] == ["w"] and data["probabilities"] == {"normal": 0.2, "nodule": 0.8}
    (box,) = data["boxes"]
    assert box["label"] == "nodule" and box["score"] == 0.8765
    assert box["corners_voxel_zyx"] == [0.0, 2.0, 4.0, 0.0, 6.0, 10.0]
    assert box["center_voxel_zyx"] == [0.0, 4.0, 7.0]
    assert box["center_lps_mm"] == [3.5, 2.0, 0.0]
    assert "labels" not in data and "volumes_ml" not in data
