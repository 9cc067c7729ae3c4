"""Label model: annotations, label map edits, undo/redo, findings, ROI statistics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from viewer.labels.document import Document, edit_from_dict, edit_to_dict
from viewer.labels.findings import model_vs_final, propose
from viewer.labels.labelmap import disk_mask
from viewer.labels.model import (
    Box,
    LabelError,
    LabelSet,
    Point,
    Polygon,
    RoiEllipse,
    RoiRect,
    Ruler,
    annotation_from_dict,
)
from viewer.labels.planar import cut_segments
from viewer.labels.stats import mask_stats, roi_stats
from viewer.study.volume import Volume

SHAPE = (8, 32, 32)

ANNOTATIONS = [
    Box(2, corners=(3, 4, 10, 12), z=2),
    Box(2, corners=(1, 3, 4, 5, 10, 12)),
    Polygon(3, z=4, vertices=((2, 2), (2, 20), (15, 10))),
    Point(1, zyx=(1, 2, 3)),
    Ruler(1, start=(0, 0, 0), end=(0, 3, 4)),
    RoiRect(1, z=1, bounds=(2, 2, 6, 9)),
    RoiEllipse(1, z=1, bounds=(2, 2, 10, 10)),
    Polygon(3, z=9, vertices=((1, 2), (1, 20), (6, 10)), axis=1),  # coronal: (z, x)
    RoiEllipse(1, z=7, bounds=(1, 3, 5, 12), axis=2),  # sagittal: (z, y)
]


def _snapshot(doc: Document):
    return (doc.labelmap.array.copy(), dict(doc.annotations), doc.label_set)


def _same(a, b) -> bool:
    return np.array_equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]


@pytest.mark.parametrize(
    "ann", ANNOTATIONS, ids=lambda a: a.kind + ("3d" if getattr(a, "is_3d", False) else "")
)
def test_each_annotation_kind_adds_edits_removes_with_undo_redo(ann):
    doc = Document(SHAPE)
    s0 = _snapshot(doc)
    doc.add(ann)
    s1 = _snapshot(doc)
    doc.update(ann.__class__(**{**ann.__dict__, "note": "checked"}))
    s2 = _snapshot(doc)
    doc.remove(ann.id)
    assert ann.id not in doc.annotations
    doc.undo()
    assert _same(_snapshot(doc), s2)
    doc.undo()
    assert _same(_snapshot(doc), s1)
    doc.undo()
    assert _same(_snapshot(doc), s0)
    doc.redo()
    doc.redo()
    assert doc.get(ann.id).note == "checked"


@pytest.mark.parametrize("ann", ANNOTATIONS, ids=lambda a: a.kind)
def test_annotation_json_round_trip_is_identical(ann):
    assert annotation_from_dict(ann.to_dict()) == ann


def test_planar_annotations_saved_before_axes_existed_load_as_axial():
    old = {"kind": "Polygon", "label": 3, "id": "p1", "z": 4, "vertices": [[2, 2], [2, 9], [7, 5]]}
    poly = annotation_from_dict(old)
    assert poly.axis == 0 and poly.points()[1] == (4.0, 2.0, 9.0)
    roi = annotation_from_dict({"kind": "RoiRect", "label": 1, "z": 2, "bounds": [1, 2, 3, 4]})
    assert roi.axis == 0 and roi.points() == [(2, 1, 2), (2, 3, 4)]


def test_planar_points_map_in_plane_coordinates_to_the_right_voxel_axes():
    coronal = Polygon(1, z=9, vertices=((1, 2), (3, 20), (6, 10)), axis=1)
    assert coronal.points() == [(1, 9, 2), (3, 9, 20), (6, 9, 10)]
    sagittal = RoiRect(1, z=7, bounds=(5, 12, 1, 3), axis=2)
    assert sagittal.bounds == (1, 3, 5, 12) and sagittal.points() == [(1, 3, 7), (5, 12, 7)]
    with pytest.raises(LabelError, match="axis"):
        RoiRect(1, z=0, bounds=(0, 0, 1, 1), axis=3)


def test_another_plane_cuts_a_planar_annotation_along_a_segment():
    poly = Polygon(1, z=24, vertices=((2, 8), (2, 30), (9, 20)), axis=2)  # sagittal (z, y)
    ((a, b),) = cut_segments(poly, 0, 5)  # axial slice z = 5
    assert a == pytest.approx((5, 20 - 12 * 4 / 7, 24)) and b == pytest.approx((5, 30 - 30 / 7, 24))
    assert cut_segments(poly, 0, 10) == [] and cut_segments(poly, 2, 24) == []
    ellipse = RoiEllipse(1, z=3, bounds=(10, 10, 20, 30))  # axial, centre (15, 20)
    ((a, b),) = cut_segments(ellipse, 1, 15)  # coronal y = 15 goes through the centre
    assert a == pytest.approx((3, 15, 10)) and b == pytest.approx((3, 15, 30))
    ((a, b),) = cut_segments(RoiRect(1, z=3, bounds=(10, 10, 20, 30)), 2, 12)  # sagittal x = 12
    assert a == (3, 10, 12) and b == (3, 20, 12)


def test_box_corners_are_normalised_and_bad_geometry_is_refused():
    assert Box(1, corners=(10, 12, 3, 4), z=0).corners == (3, 4, 10, 12)
    with pytest.raises(LabelError, match="needs 6 numbers"):
        Box(1, corners=(1, 2, 3, 4))
    with pytest.raises(LabelError, match="at least 3 vertices"):
        Polygon(1, vertices=((0, 0), (1, 1)))
    with pytest.raises(LabelError, match="source"):
        Point(1, source="someone")


def test_ruler_length_uses_spacing_in_mm():
    r = Ruler(1, start=(0, 0, 0), end=(2, 3, 4))
    assert r.length_mm((0.5, 2.0, 3.0)) == pytest.approx(np.sqrt(6**2 + 6**2 + 2**2))


def test_label_set_edits_are_undoable():
    doc = Document(SHAPE)
    doc.set_label_set(
        doc.label_set.add("vessel", "#00ff00").rename(1, "left lung").recolor(2, "#123456")
    )
    assert doc.label_set.by_name("vessel").index == 4
    assert doc.label_set.get(2).color == "#123456"
    doc.set_label_set(doc.label_set.remove(3))
    assert 3 not in doc.label_set
    doc.undo()
    doc.undo()
    assert doc.label_set == LabelSet()
    with pytest.raises(LabelError, match="repeat"):
        LabelSet().add("lung")


def test_brush_and_eraser_undo_redo_restore_exact_voxels():
    doc = Document(SHAPE)
    brush = disk_mask(SHAPE[1:], (10, 10), 4)
    doc.paint(3, brush, 2)
    painted = doc.labelmap.array.copy()
    assert painted[3].sum() == 2 * brush.sum()
    doc.erase(3, disk_mask(SHAPE[1:], (10, 10), 2))
    assert doc.labelmap.array[3, 10, 10] == 0
    doc.undo()
    assert np.array_equal(doc.labelmap.array, painted)
    doc.undo()
    assert not doc.labelmap.array.any()
    doc.redo()
    assert np.array_equal(doc.labelmap.array, painted)


def test_eraser_limited_to_one_label_keeps_the_others():
    doc = Document(SHAPE)
    doc.paint(0, disk_mask(SHAPE[1:], (10, 10), 5), 1)
    doc.paint(0, disk_mask(SHAPE[1:], (10, 10), 2), 2)
    doc.erase(0, np.ones(SHAPE[1:], bool), label=1)
    assert set(np.unique(doc.labelmap.array)) == {0, 2}


def test_mask_edit_stores_only_the_changed_bbox():
    doc = Document((4, 256, 256))
    edit = doc.paint(1, disk_mask((256, 256), (100, 100), 3), 1)
    (diff,) = edit.diffs
    assert diff.bbox == (97, 97, 104, 104)
    assert len(diff.after) == 49


def test_threshold_brush_paints_only_within_hu_range():
    doc = Document(SHAPE)
    hu = np.where(np.arange(SHAPE[2])[None, :] < 16, -800, 40).repeat(SHAPE[1], 0)
    doc.paint(2, np.ones(SHAPE[1:], bool), 1, hu_slice=hu, hu_range=(-1000, -400))
    assert doc.labelmap.array[2, :, :16].all() and not doc.labelmap.array[2, :, 16:].any()
    doc.undo()
    assert not doc.labelmap.array.any()


def test_sphere_brush_is_round_in_mm_on_anisotropic_voxels():
    doc = Document((16, 32, 32))
    doc.paint_sphere((8, 16, 16), 6.0, 2, spacing_xyz=(1.0, 1.0, 3.0))
    m = doc.labelmap.array == 2
    zs = np.nonzero(m.any(axis=(1, 2)))[0]
    assert list(zs) == [6, 7, 8, 9, 10]  # +-2 slices of 3 mm
    assert m[8, 16, 10] and m[8, 16, 22] and not m[8, 16, 9]
    doc.undo()
    assert not doc.labelmap.array.any()


def test_interpolation_between_slices_grows_shape_smoothly():
    doc = Document((9, 40, 40))
    doc.paint(0, disk_mask((40, 40), (20, 20), 4), 3)
    doc.paint(8, disk_mask((40, 40), (20, 20), 12), 3)
    doc.interpolate_between_slices(3, 8, 0)
    areas = [(doc.labelmap.array[z] == 3).sum() for z in range(9)]
    assert all(a < b for a, b in zip(areas, areas[1:], strict=False))
    mid = disk_mask((40, 40), (20, 20), 8)
    assert abs(int((doc.labelmap.array[4] == 3).sum()) - int(mid.sum())) < 0.1 * mid.sum()
    doc.undo()
    assert not doc.labelmap.array[1:8].any()
    with pytest.raises(LabelError, match="both slice"):
        doc.interpolate_between_slices(2, 0, 8)


@pytest.mark.parametrize("axis", [1, 2])
def test_interpolation_runs_along_the_given_axis_like_axial(axis):
    axial = Document((9, 40, 40))
    axial.paint(0, disk_mask((40, 40), (20, 20), 4), 3)
    axial.paint(8, disk_mask((40, 40), (20, 20), 12), 3)
    axial.interpolate_between_slices(3, 0, 8)
    expected = np.moveaxis(axial.labelmap.array, 0, axis)  # the same problem, turned
    doc = Document(expected.shape)
    np.moveaxis(doc.labelmap.array, axis, 0)[[0, 8]] = axial.labelmap.array[[0, 8]]
    edit = doc.interpolate_between_slices(3, 8, 0, axis=axis)
    np.testing.assert_array_equal(doc.labelmap.array, expected)
    doc.undo()
    assert not np.moveaxis(doc.labelmap.array, axis, 0)[1:8].any()
    doc.redo()
    np.testing.assert_array_equal(doc.labelmap.array, expected)
    assert not edit.empty
    with pytest.raises(LabelError, match="outside"):
        doc.interpolate_between_slices(3, 0, 40, axis=axis)


def test_polygon_fill_covers_the_interior():
    doc = Document(SHAPE)
    doc.fill_polygon(5, [(4, 4), (4, 20), (20, 20), (20, 4)], 1)
    m = doc.labelmap.array[5] == 1
    assert m[10, 10] and m[4:20, 4:20].all() and not m[21, 10]
    doc.undo()
    assert not doc.labelmap.array.any()


def test_listeners_receive_each_applied_edit_and_round_trip_as_json():
    doc = Document(SHAPE)
    seen = []
    doc.listeners.append(seen.append)
    doc.paint(0, disk_mask(SHAPE[1:], (5, 5), 2), 1)
    doc.add(Point(1, zyx=(0, 1, 1)))
    doc.undo()
    assert len(seen) == 3
    replay = Document(SHAPE)
    for e in seen:
        replay.apply(edit_from_dict(edit_to_dict(e)))
    assert _same(_snapshot(replay), _snapshot(doc))


def test_model_findings_keep_provenance_and_compare_with_final():
    doc = Document((4, 20, 20))
    lm = np.zeros((4, 20, 20), np.uint8)
    lm[1:3, 5:10, 5:10] = 2
    boxes = [((1, 2, 2), (2, 6, 6), 2, 0.9), ((0, 10, 10), (1, 12, 12), 2, 0.4)]
    found = propose(doc, "radlens-ct", "1.2.0", boxes=boxes, label_map=lm)
    assert {a.source for a in found} == {"model:radlens-ct@1.2.0"}
    b1, b2, mask = found
    doc.update(Box(2, id=b1.id, source=b1.source, status="proposed", corners=(1, 2, 2, 2, 6, 8)))
    doc.reject(b2.id)
    doc.accept(mask.id)
    assert (doc.labelmap.array == 2).sum() == 50
    rows = {r["id"]: r for r in model_vs_final(doc)}
    assert rows[b1.id]["action"] == "edited"
    assert rows[b1.id]["iou"] == pytest.approx(50 / 70)
    assert rows[b2.id]["action"] == "rejected"
    assert rows[mask.id]["action"] == "accepted" and rows[mask.id]["dice"] == 1.0
    doc.erase(1, np.ones((20, 20), bool))
    assert model_vs_final(doc)[2]["action"] == "edited"
    assert model_vs_final(doc)[2]["dice"] == pytest.approx(2 * 25 / 75)
    doc.undo()
    doc.undo()  # un-accept: the model voxels leave the user's map again
    assert not doc.labelmap.array.any()


def test_roi_stats_use_spacing():
    arr = np.zeros((2, 20, 20), np.int16)
    arr[1, 5:10, 5:10] = 100
    arr[1, 5, 5] = 200
    vol = Volume(arr, spacing=(0.5, 0.5, 2.0), modality="CT")
    s = roi_stats(vol, RoiRect(1, z=1, bounds=(5, 5, 9, 9)))
    assert s.voxels == 25 and s.max == 200 and s.min == 100
    assert s.mean == pytest.approx(104.0)
    assert s.area_mm2 == pytest.approx(25 * 0.25)
    assert s.volume_ml == pytest.approx(25 * 0.5 / 1000)
    e = roi_stats(vol, RoiEllipse(1, z=1, bounds=(5, 5, 9, 9)))
    assert 9 < e.voxels < 25
    m = mask_stats(vol, arr > 0)
    assert m.volume_ml == pytest.approx(25 * 0.5 * 0.5 * 2 / 1000)


def test_model_polygon_compared_with_final_by_its_pixels_on_its_own_plane():
    doc = Document(SHAPE)
    model = Polygon(1, z=5, vertices=((0, 0), (0, 9.5), (3.5, 9.5), (3.5, 0)), axis=2,
                    source="model:seg@1", status="proposed")  # fmt: skip
    doc.add(model)
    doc.update(replace(model, vertices=((0, 0), (0, 4.5), (3.5, 4.5), (3.5, 0))))
    (row,) = model_vs_final(doc)
    assert row["action"] == "edited" and row["iou"] == pytest.approx(0.5)
    doc.update(replace(doc.get(model.id), z=6))
    assert model_vs_final(doc)[0]["dice"] == 0.0  # moved to another slice


def test_engine_record_labels_map_to_document_classes_by_name():
    from radlens_core.results import Box as CoreBox
    from radlens_core.results import LabelClass
    from viewer.labels.findings import propose_result
    from viewer.labels.results import ResultRecord

    doc = Document((2, 10, 10))
    lm = np.zeros((2, 10, 10), np.uint8)
    lm[0, :2] = 1  # model index 1 = nodule (document index 2)
    lm[1, :2] = 2  # model index 2 = "mass" (new class)
    record = ResultRecord(
        model_id="det",
        model_name="det",
        model_version="0.3",
        task="segmentation",
        shape=(2, 10, 10),
        label_map=lm,
        labels=[LabelClass(1, "nodule", "#ff0000"), LabelClass(2, "mass", "#00ff00")],
        boxes=[CoreBox((0, 1, 1, 1, 3, 3), "nodule", 0.8)],
    )
    found = propose_result(doc, record)
    mass = doc.label_set.by_name("mass").index
    assert found[0].label == 2 and found[0].score == 0.8
    assert {a.label for a in found[1:]} == {2, mass}
    assert set(np.unique(doc.layers["model:det@0.3"].array)) == {0, 2, mass}
    doc.undo()
    assert doc.label_set == LabelSet() and not doc.annotations and not doc.layers


def test_engine_analysis_result_shape_is_proposed_with_its_label_table():
    from radlens_core.results import AnalysisResult, LabelClass, LabelMap, RunInfo, Task
    from radlens_core.results import Box as CoreBox
    from viewer.labels.findings import propose_result

    doc = Document((2, 10, 10))
    arr = np.zeros((2, 10, 10), np.uint8)
    arr[1, 4:6, 4:6] = 3  # the model's index 3 is "nodule"
    result = AnalysisResult(
        run=RunInfo(model_id="seg", model_version="1.0.0", task=Task.SEGMENTATION),
        label_map=LabelMap(arr, (LabelClass(3, "nodule", "#ff7043"),)),
        boxes=(CoreBox((1, 4, 4, 1, 5, 5), "nodule", 0.95),),
    )
    box, mask = propose_result(doc, result)
    assert box.label == mask.label == doc.label_set.by_name("nodule").index == 2
    assert (doc.layers[mask.layer].array == 2).sum() == 4


def test_annotation_label_sets_refuse_index_0_and_use_the_core_label_class():
    from radlens_core.results import LabelClass as CoreLabelClass
    from radlens_core.results import LabelError as CoreLabelError
    from viewer.labels.model import LabelClass

    assert LabelClass is CoreLabelClass and LabelError is CoreLabelError
    with pytest.raises(LabelError, match=r"1\.\.255 \(0 is background\), got 0"):
        LabelSet((LabelClass(0, "background", "#000000"),))
    with pytest.raises(LabelError, match=r"1\.\.255 \(0 is background\), got 256"):
        LabelSet().add("too far", index=256)
    with pytest.raises(LabelError, match="0 is background"):
        LabelSet.from_table({"0": {"name": "bg", "color": "#000000"}})
