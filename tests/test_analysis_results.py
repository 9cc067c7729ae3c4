"""Analysis records, their findings and their per-series store (Qt-free, torch-free)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phantoms.chest import LUNG, NODULE, chest_ct
from radlens_core.results import (
    AnalysisResult,
    Box,
    Classification,
    HeatMap,
    LabelClass,
    LabelMap,
    RunInfo,
    Task,
)
from radlens_core.series import series_key as core_series_key
from tests.analysis_fakes import phantom_result
from viewer.labels.result_findings import summarise
from viewer.labels.results import (
    ResultStore,
    ResultStoreError,
    record_from_result,
    series_key,
)


def _run(model_id: str = "fake-seg", task: Task = Task.SEGMENTATION) -> RunInfo:
    return RunInfo(
        model_id=model_id,
        model_version="1.0.0",
        task=task,
        timings={"total": 1.5},
        intended_use="Demonstration only; not for diagnosis.",
    )


def _result(model_id: str = "fake-seg", task: Task = Task.SEGMENTATION, **parts) -> AnalysisResult:
    return AnalysisResult(run=_run(model_id, task), **parts)


def _label_map(array: np.ndarray, names: dict[int, str]) -> LabelMap:
    return LabelMap(array, tuple(LabelClass(i, n, "#ff7043") for i, n in names.items()))


@pytest.fixture(scope="module")
def phantom():
    return chest_ct((32, 64, 64), seed=3, n_nodules=2)


def test_each_nodule_component_is_a_finding_and_lung_is_a_structure(phantom):
    rec = record_from_result(phantom_result(phantom))
    summary = summarise(rec, phantom.spacing)
    regions = [f for f in summary.findings if f.kind == "region"]
    assert len(regions) == len(phantom.nodules) == 2
    assert {f.label for f in regions} == {"nodule"}
    # Each component's centre lies on a true nodule centre (within a voxel or two).
    for n in phantom.nodules:
        d = [np.linalg.norm(np.subtract(f.centre_zyx, n.center_zyx)) for f in regions]
        assert min(d) < 2.0
    voxel_ml = np.prod(phantom.spacing) / 1000.0
    assert sum(f.volume_ml for f in regions) == pytest.approx(
        (phantom.labels == NODULE).sum() * voxel_ml
    )
    assert [s.label for s in summary.structures] == ["lung"]
    assert summary.structures[0].volume_ml == pytest.approx(
        (phantom.labels == LUNG).sum() * voxel_ml
    )


def test_box_findings_carry_size_in_mm_and_slice_range(phantom):
    rec = record_from_result(phantom_result(phantom))
    boxes = [f for f in summarise(rec, phantom.spacing).findings if f.kind == "box"]
    assert len(boxes) == 2
    n = phantom.nodules[0]
    f = min(boxes, key=lambda b: np.linalg.norm(np.subtract(b.centre_zyx, n.center_zyx)))
    assert f.extent_mm[0] == pytest.approx(2 * n.radius_mm)
    assert f.extent_mm[2] == pytest.approx(2 * n.radius_mm)
    assert f.slice_range[0] <= round(n.center_zyx[0]) <= f.slice_range[1]
    assert "mm" in f.describe() and "slices" in f.describe()


def test_classification_is_one_finding_at_heat_map_peak():
    heat = np.zeros((1, 40, 50), np.float32)
    heat[0, 12, 30] = 1.0
    res = _result(
        task=Task.CLASSIFICATION,
        heat_map=HeatMap(heat),
        classification=Classification({"normal": 0.2, "nodule": 0.8}),
    )
    summary = summarise(record_from_result(res), (1.0, 1.0, 1.0))
    assert len(summary.findings) == 1
    f = summary.findings[0]
    assert f.kind == "classification" and f.label == "nodule" and f.score == pytest.approx(0.8)
    assert f.centre_zyx == (0.0, 12.0, 30.0)
    assert f.describe().startswith("nodule (nodule 0.80, normal 0.20)")


def test_2d_mask_component_reports_area_not_volume():
    lm = np.zeros((1, 100, 100), np.uint8)
    lm[0, 5:10, 5:15] = 1
    rec = record_from_result(_result(label_map=_label_map(lm, {1: "opacity"})))
    (f,) = summarise(rec, (0.5, 0.5, 1.0)).findings
    assert f.volume_ml is None and f.area_mm2 == pytest.approx(50 * 0.25)
    assert f.extent_mm == (5.0, 2.5, 0.0)


def test_results_survive_a_new_store_instance(tmp_path, phantom):
    rec = record_from_result(phantom_result(phantom))
    ResultStore(tmp_path).save("1.2.840.99.1", rec)
    (back,) = ResultStore(tmp_path).load_all("1.2.840.99.1")
    assert np.array_equal(back.label_map, phantom.labels)
    assert np.abs(back.heat_map - rec.heat_map).max() <= 0.5 / 255 + 1e-6
    assert back.boxes == rec.boxes and back.labels == rec.labels
    assert back.intended_use == rec.intended_use and back.model_id == "fake-seg"


def test_store_defaults_to_user_data_dir(_isolated_user_data, phantom):
    store = ResultStore()
    store.save("uid with spaces/and slashes", record_from_result(phantom_result(phantom)))
    key = series_key("uid with spaces/and slashes")
    assert key == core_series_key("uid with spaces/and slashes")
    assert "/" not in key and (_isolated_user_data / "results" / key).is_dir()


def test_latest_run_per_model_is_what_a_reopened_series_shows(tmp_path, phantom):
    store = ResultStore(tmp_path)
    old = record_from_result(phantom_result(phantom))
    new = record_from_result(phantom_result(phantom))
    new.created = old.created + 10
    store.save("s", old)
    store.save("s", new)
    assert [r.run_id for r in store.latest_per_model("s")] == [new.run_id]
    assert len(store.load_all("s")) == 2


def test_removed_layers_stay_removed_and_an_empty_run_is_deleted(tmp_path):
    store = ResultStore(tmp_path)
    rec = record_from_result(_result(boxes=(Box((1, 2, 3, 4, 5, 6), "nodule", 0.7),)))
    rec.heat_map = np.zeros((8, 8, 8), np.float32)
    store.save("s", rec)
    store.remove_layer("s", rec, "heatmap")
    (back,) = store.load_all("s")
    assert back.layers() == ["boxes"]
    store.remove_layer("s", back, "boxes")
    assert store.load_all("s") == []


def test_unreadable_stored_result_names_the_file(tmp_path):
    folder = tmp_path / series_key("s")
    folder.mkdir()
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ResultStoreError, match="broken.json"):
        ResultStore(tmp_path).load_all("s")


def test_interrupted_write_leaves_no_run(tmp_path, monkeypatch):
    rec = record_from_result(_result(boxes=(Box((0, 0, 1, 1), "x", 0.5),)))
    store = ResultStore(tmp_path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dumps", boom)
    with pytest.raises(OSError):
        store.save("s", rec)
    monkeypatch.undo()
    assert store.load_all("s") == []
    assert not list((tmp_path / "s").glob("*.tmp"))


def test_mask_value_missing_from_the_label_table_still_becomes_a_finding():
    lm = np.zeros((20, 50, 50), np.uint8)
    lm[2:4, 10:12, 10:12] = 1
    lm[10:12, 30:33, 30:33] = 5
    rec = record_from_result(_result(label_map=_label_map(lm, {1: "nodule"})))
    found = {f.label: f for f in summarise(rec, (1.0, 1.0, 1.0)).findings}
    assert set(found) == {"nodule", "label 5"}
    assert found["label 5"].volume_ml == pytest.approx(18 / 1000)
    assert found["label 5"].slice_range == (10, 11)


def test_heat_map_quantised_in_slabs_equals_whole_array_rounding():
    from viewer.labels.results import quantise_heat

    heat = np.random.default_rng(0).random((19, 30, 31)).astype(np.float32)
    assert np.array_equal(quantise_heat(heat, slab=4), np.rint(heat * 255).astype(np.uint8))


def test_only_the_newest_runs_of_a_model_are_kept(tmp_path):
    store = ResultStore(tmp_path, keep_runs=2)
    runs = []
    for i in range(4):
        rec = record_from_result(_result(boxes=(Box((0, 0, 0, 1, 1, 1), "n", 0.5),)))
        rec.created = 1000.0 + i
        store.save("s", rec)
        runs.append(rec.run_id)
    other = record_from_result(
        _result(model_id="other", boxes=(Box((0, 0, 0, 1, 1, 1), "n", 0.5),))
    )
    other.created = 500.0
    store.save("s", other)
    assert {r.run_id for r in store.load_all("s")} == {runs[2], runs[3], other.run_id}


def test_a_detector_record_takes_name_and_label_table_from_its_card():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Card:
        name: str
        labels: tuple
        intended_use: str

    card = Card("Nodule finder", (LabelClass(0, "background", "#000000"),
                                  LabelClass(2, "nodule", "#ff7043")), "Research only.")  # fmt: skip
    result = AnalysisResult(
        run=RunInfo(model_id="det", model_version="2", task=Task.DETECTION),
        boxes=(Box((0, 0, 0, 1, 1, 1), "nodule", 0.5),),
    )
    rec = record_from_result(result, card, shape=(2, 2, 2))
    assert rec.model_name == "Nodule finder" and rec.intended_use == "Research only."
    assert rec.labels == [LabelClass(2, "nodule", "#ff7043")]
    assert rec.task == "detection" and rec.boxes == [Box((0, 0, 0, 1, 1, 1), "nodule", 0.5)]
    assert record_from_result(result).model_name == "det"


# ---- outside intended use, flags, volumes (issue 11) -----------------------------------------
def _flagged_result() -> AnalysisResult:
    from radlens_core.results import Flag

    run = RunInfo(
        model_id="fake-seg",
        model_version="1.0.0",
        task=Task.SEGMENTATION,
        outside_intended_use=True,
        flags=(Flag("volume_out_of_range", "lung 365 mL is outside the expected 1500-8000 mL"),),
        ood_score=0.41,
        ood_range=(0.7, 0.99),
    )
    lm = np.zeros((4, 8, 8), np.uint8)
    lm[1:3, 2:6, 2:6] = 1
    labels = (LabelClass(1, "lung", "#4fc3f7"),)
    return AnalysisResult(run=run, label_map=LabelMap(lm, labels, {"lung": 365.0}))


def test_outside_use_flags_ood_and_volumes_are_kept_and_stored(tmp_path):
    rec = record_from_result(_flagged_result())
    assert rec.outside_intended_use and rec.flagged
    assert [f.code for f in rec.flags] == ["volume_out_of_range"]
    assert rec.ood_score == pytest.approx(0.41) and rec.ood_range == (0.7, 0.99)
    assert rec.volumes_ml == {"lung": 365.0}
    store = ResultStore(tmp_path)
    store.save("1.2.3", rec)
    (back,) = store.load_all("1.2.3")
    assert back.outside_intended_use and back.flags == rec.flags
    assert back.ood_score == pytest.approx(0.41) and back.ood_range == (0.7, 0.99)
    assert back.volumes_ml == {"lung": 365.0}


def test_a_viewer_override_marks_the_record_even_if_the_engine_did_not():
    rec = record_from_result(_result(), outside_intended_use=True)
    assert rec.outside_intended_use and rec.flagged
    plain = record_from_result(_result())
    assert not plain.outside_intended_use and not plain.flagged


def test_records_stored_before_the_new_fields_read_as_admitted_and_unflagged(tmp_path):
    store = ResultStore(tmp_path)
    rec = record_from_result(_result(label_map=_label_map(np.ones((2, 3, 3), np.uint8), {1: "x"})))
    path = store.save("9.9", rec)
    meta = json.loads(path.read_text())
    for key in ("outside_intended_use", "flags", "ood_score", "ood_range", "volumes_ml"):
        meta.pop(key)
    path.write_text(json.dumps(meta))
    (old,) = store.load_all("9.9")
    assert not old.outside_intended_use and old.flags == [] and old.ood_score is None
    assert old.ood_range is None and old.volumes_ml == {} and not old.flagged


def test_caveats_say_outside_use_each_flag_and_an_unexplained_ood_score():
    from viewer.labels.result_findings import caveats

    rec = record_from_result(_flagged_result())
    said = caveats(rec)
    assert said[0].startswith("Outside intended use: ")
    assert "lung 365 mL is outside the expected 1500-8000 mL" in said
    assert any("Out-of-distribution score 0.41" in s and "0.7–0.99" in s for s in said)
    assert caveats(record_from_result(_result())) == []


def test_label_volumes_come_from_the_engine_or_are_counted():
    from viewer.labels.result_findings import label_volumes

    rec = record_from_result(_flagged_result())
    assert label_volumes(rec, (1.0, 1.0, 1.0)) == {1: 365.0}
    rec.volumes_ml = {}
    # 2 slices x 4 x 4 voxels of 2 x 2 x 2.5 mm = 32 x 10 uL = 0.32 mL
    assert label_volumes(rec, (2.0, 2.0, 2.5)) == {1: pytest.approx(0.32)}


def test_proposals_of_an_outside_use_or_flagged_result_keep_the_mark_in_their_provenance():
    from viewer.labels.document import Document
    from viewer.labels.findings import model_vs_final, propose_result

    rec = record_from_result(_flagged_result())
    doc = Document(rec.shape)
    found = propose_result(doc, rec)
    assert found and all(
        a.source == "model:fake-seg@1.0.0+outside-intended-use.flagged" for a in found
    )
    rows = model_vs_final(doc)  # what the findings export writes
    assert rows and all("+outside-intended-use" in r["source"] for r in rows)
    plain = record_from_result(
        _result(label_map=_label_map(np.ones((2, 3, 3), np.uint8), {1: "x"}))
    )
    doc2 = Document(plain.shape)
    assert all(a.source == "model:fake-seg@1.0.0" for a in propose_result(doc2, plain))
