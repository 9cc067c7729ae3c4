"""Annotation tools in the viewer: real mouse events on the views' viewports -> label Document."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from phantoms.chest import chest_ct
from viewer.labels.findings import propose
from viewer.labels.model import Box, Point, Polygon, RoiEllipse, RoiRect, Ruler
from viewer.study.volume import Volume
from viewer.ui.main_window import MainWindow
from viewer.ui.tools.controller import MASK_LAYER

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
NOMOD = Qt.KeyboardModifier.NoModifier


def phantom_volume(uid: str = "1.2.826.0.1.3680043.99.1") -> Volume:
    ct = chest_ct(shape=(12, 40, 48), seed=3, n_nodules=1, vessels=False, noise_hu=5.0)
    return Volume(ct.hu, spacing=ct.spacing, modality="CT", series_uid=uid, description="phantom")


class Harness:
    """The main window with a phantom Volume loaded straight into it, all three planes shown."""

    def __init__(self, qtbot, volume: Volume) -> None:
        self.window = MainWindow()
        qtbot.addWidget(self.window)
        self.window.resize(1300, 800)
        self.window.show()
        qtbot.waitExposed(self.window)
        self.window.area.set_layout("2x2")
        self.state = self.window.state
        self.views = self.window.area.views
        self.ctrl = self.window.annotations.controller
        self.panel = self.window.annotations.panel
        self.state.set_volume(volume)
        self.volume = volume

    @property
    def doc(self):
        return self.ctrl.document

    def at(self, plane: str, zyx) -> QPoint:
        return self.ctrl.voxel_to_viewport(self.views[plane], np.asarray(zyx, dtype=float))

    def goto(self, zyx) -> None:
        self.state.set_cursor(np.asarray(zyx, dtype=float))

    def press(self, plane: str, zyx) -> None:
        QTest.mousePress(self.views[plane].graphics.viewport(), LEFT, NOMOD, self.at(plane, zyx))

    def move(self, plane: str, zyx) -> None:
        QTest.mouseMove(self.views[plane].graphics.viewport(), self.at(plane, zyx))

    def release(self, plane: str, zyx) -> None:
        QTest.mouseRelease(self.views[plane].graphics.viewport(), LEFT, NOMOD, self.at(plane, zyx))

    def drag(self, plane: str, a, b, steps: int = 3) -> None:
        self.press(plane, a)
        for t in np.linspace(0, 1, steps + 1)[1:]:
            self.move(
                plane, np.asarray(a, float) + t * (np.asarray(b, float) - np.asarray(a, float))
            )
        self.release(plane, b)

    def key(self, plane: str, key: Qt.Key) -> None:
        QTest.keyClick(self.views[plane], key)

    def close(self) -> None:
        self.window.close()  # closes the label store (final snapshot)


@pytest.fixture
def ui(qtbot):
    h = Harness(qtbot, phantom_volume())
    yield h
    h.close()


def test_box_drawn_on_axial_lands_on_those_voxels(ui):
    ui.goto((5, 20, 24))
    ui.ctrl.set_tool("box")
    ui.drag("axial", (5, 10, 12), (5, 18, 30))
    (box,) = ui.doc.annotations.values()
    assert isinstance(box, Box) and box.z == 5 and box.corners == (10, 12, 18, 30)


def test_box_on_coronal_maps_rows_to_z_with_the_display_flip(ui):
    ui.goto((6, 22, 24))
    ui.ctrl.set_tool("box")
    ui.drag("coronal", (2, 22, 10), (8, 22, 20))
    (box,) = ui.doc.annotations.values()
    assert box.is_3d and box.bounds_zyx() == ((2, 22, 10), (8, 22, 20))


def test_brush_on_sagittal_paints_live_and_undo_redo_restore(ui):
    ui.goto((6, 20, 30))
    ui.ctrl.set_tool("brush")
    ui.ctrl.ctx.brush_radius_mm = 6.0
    ui.press("sagittal", (6, 14, 30))
    ui.move("sagittal", (6, 26, 30))
    overlay = ui.views["sagittal"].overlays[MASK_LAYER]
    assert (
        overlay.drawn_rgba() is not None and overlay.drawn_rgba()[..., 3].any()
    )  # live, before release
    ui.release("sagittal", (6, 26, 30))
    mask = ui.doc.labelmap.array
    assert mask[6, 14:27, 30].all() and mask[:, :, 29].sum() == 0
    painted = mask.copy()
    ui.ctrl.undo()
    assert ui.doc.labelmap.array.sum() == 0
    ui.ctrl.redo()
    np.testing.assert_array_equal(ui.doc.labelmap.array, painted)


def click(ui, plane: str, zyx) -> None:
    ui.press(plane, zyx)
    ui.release(plane, zyx)


def test_polygon_point_ruler_and_roi_with_statistics(ui):
    ui.goto((4, 20, 24))
    ui.ctrl.set_tool("polygon")
    for zyx in [(4, 8, 8), (4, 8, 20), (4, 16, 20)]:
        click(ui, "axial", zyx)
    ui.move("axial", (4, 16, 10))
    assert ui.ctrl.drawing(ui.views["axial"]).preview_items  # outline in progress is drawn
    click(ui, "axial", (4, 8, 8))  # back on the first vertex closes it
    ui.ctrl.set_tool("point")
    click(ui, "axial", (4, 30, 40))
    ui.ctrl.set_tool("ruler")
    ui.drag("axial", (4, 30, 5), (4, 30, 25))
    ui.ctrl.set_tool("roi_ellipse")
    ui.drag("axial", (4, 20, 20), (4, 28, 34))
    by_kind = {type(a): a for a in ui.doc.annotations.values()}
    assert set(by_kind) == {Polygon, Point, Ruler, RoiEllipse}
    assert by_kind[Polygon].z == 4 and by_kind[Polygon].vertices[1] == pytest.approx(
        (8, 20), abs=0.5
    )
    assert by_kind[Point].zyx == (4, 30, 40)
    assert by_kind[Ruler].length_mm(ui.volume.spacing) == pytest.approx(
        20 * ui.volume.spacing[0], rel=0.01
    )
    assert by_kind[RoiEllipse].bounds == (20, 20, 28, 34)
    texts = [
        i.toPlainText()
        for i in ui.ctrl.drawing(ui.views["axial"]).items
        if hasattr(i, "toPlainText")
    ]
    assert any("HU" in t and "mm²" in t and "mL" in t for t in texts)
    assert any(t.endswith(" mm") for t in texts)


def test_sagittal_polygon_and_roi_stay_on_their_plane_and_cut_the_axial_view(ui):
    from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsPathItem, QGraphicsRectItem

    ui.goto((5, 20, 24))
    ui.ctrl.set_tool("polygon")
    for zyx in [(2, 8, 24), (2, 30, 24), (9, 20, 24)]:
        click(ui, "sagittal", zyx)
    ui.key("sagittal", Qt.Key.Key_Return)
    ui.ctrl.set_tool("roi_rect")
    ui.drag("sagittal", (3, 10, 24), (8, 30, 24))
    by_kind = {type(a): a for a in ui.doc.annotations.values()}
    poly, roi = by_kind[Polygon], by_kind[RoiRect]
    assert (poly.axis, poly.z, roi.axis, roi.z) == (2, 24, 2, 24)
    assert np.allclose(poly.vertices, ((2, 8), (2, 30), (9, 20)), atol=0.5)  # (z, y)
    assert roi.bounds == (3, 10, 8, 30)
    assert not ui.doc.labelmap.array.any()  # nothing was filled into the mask
    tree = ui.panel.tree
    where = {tree.topLevelItem(i).text(5) for i in range(tree.topLevelItemCount())}
    assert where == {"sagittal slice 24"}
    sagittal = ui.ctrl.drawing(ui.views["sagittal"]).items
    assert any(isinstance(i, QGraphicsPathItem) for i in sagittal)
    assert any(isinstance(i, QGraphicsRectItem) for i in sagittal)
    texts = [i.toPlainText() for i in sagittal if hasattr(i, "toPlainText")]
    assert any("HU" in t and "mm²" in t for t in texts)
    # Axial slice 5 cuts both: each shows as a line along y at x = 24.
    cuts = [i for i in ui.ctrl.drawing(ui.views["axial"]).items if isinstance(i, QGraphicsLineItem)]
    assert len(cuts) == 2
    ui.goto((11, 20, 24))  # above both: no cut
    assert not any(
        isinstance(i, QGraphicsLineItem) for i in ui.ctrl.drawing(ui.views["axial"]).items
    )


def test_threshold_brush_only_paints_voxels_in_the_hu_range(ui):
    ui.goto((6, 20, 24))
    ui.ctrl.set_tool("threshold_brush")
    ui.ctrl.ctx.threshold = (-200.0, 200.0)  # soft tissue, not lung
    ui.ctrl.ctx.brush_radius_mm = 25.0
    ui.drag("axial", (6, 20, 8), (6, 20, 40))
    m = ui.doc.labelmap.array[6] > 0
    hu = ui.volume.array[6]
    assert m.any() and (hu[m] >= -200).all() and (hu[m] <= 200).all()
    assert ((hu >= -200) & (hu <= 200) & ~m).any()  # outside the brush stays unpainted


def test_sphere_brush_eraser_and_interpolation(ui):
    ui.goto((6, 20, 24))
    ctx = ui.ctrl.ctx
    ui.ctrl.set_tool("brush")
    ctx.brush_3d, ctx.brush_radius_mm = True, 30.0  # slices are 25 mm apart
    click(ui, "coronal", (6, 20, 24))
    zs = np.nonzero(ui.doc.labelmap.array.any(axis=(1, 2)))[0]
    assert len(zs) >= 3 and ui.doc.labelmap.array[6, 20, 24] == ctx.label
    ui.ctrl.set_tool("eraser")
    click(ui, "coronal", (6, 20, 24))
    assert ui.doc.labelmap.array.sum() == 0
    ctx.brush_3d, ctx.brush_radius_mm = False, 15.0
    ui.ctrl.set_tool("brush")
    for z in (2, 8):
        ui.goto((z, 20, 24))
        click(ui, "axial", (z, 20, 24))
    ui.ctrl.interpolate()
    assert all(ui.doc.labelmap.array[z, 20, 24] for z in range(2, 9))
    ui.ctrl.undo()
    assert not ui.doc.labelmap.array[5].any()


def test_fill_between_slices_follows_the_active_view_plane(ui):
    ui.goto((6, 20, 24))
    ui.ctrl.set_tool("brush")
    ui.ctrl.ctx.brush_radius_mm = 8.0
    for y in (12, 28):
        ui.goto((6, y, 24))
        click(ui, "coronal", (6, y, 24))
    ui.window.area.set_active_plane("coronal")
    ui.window.annotations.actions["interpolate"].trigger()
    assert all(ui.doc.labelmap.array[6, y, 24] for y in range(12, 29))
    ui.ctrl.undo()  # one step, and only the coronal gap was filled
    drawn = np.nonzero(ui.doc.labelmap.array.any(axis=(0, 2)))[0]
    assert list(drawn) == [12, 28]


def test_model_box_moved_resized_accepted_and_rejected(ui):
    (box,) = propose(ui.doc, "nodule-det", "0.1", boxes=[((4, 10, 10), (7, 16, 18), 2, 0.87)])
    ui.goto((5, 13, 14))
    ui.ctrl.set_tool("select")
    ui.drag("axial", (5, 13, 14), (5, 17, 20))  # move by (+4, +6)
    moved = ui.doc.get(box.id)
    assert moved.status == "edited" and moved.bounds_zyx() == ((4, 14, 16), (7, 20, 24))
    ui.drag("axial", (5, 20.5, 24.5), (5, 24.5, 30.5))  # bottom-right corner handle
    assert ui.doc.get(box.id).bounds_zyx() == ((4, 14, 16), (7, 24, 30))
    ui.key("axial", Qt.Key.Key_A)
    assert ui.doc.get(box.id).status == "accepted"
    ui.key("axial", Qt.Key.Key_X)
    assert ui.doc.get(box.id).status == "rejected"
    ui.ctrl.undo()
    assert ui.doc.get(box.id).status == "accepted"


def test_reopening_the_series_restores_and_draws_the_saved_annotations(qtbot):
    vol = phantom_volume("1.2.826.0.1.3680043.99.2")
    first = Harness(qtbot, vol)
    first.goto((5, 20, 24))
    first.ctrl.set_tool("box")
    first.drag("axial", (5, 10, 12), (5, 18, 30))
    first.close()
    second = Harness(qtbot, phantom_volume("1.2.826.0.1.3680043.99.2"))
    second.goto((5, 20, 24))
    (box,) = second.doc.annotations.values()
    assert box.corners == (10, 12, 18, 30)
    rects = [i for i in second.ctrl.drawing(second.views["axial"]).items if hasattr(i, "rect")]
    assert rects
    second.close()


def test_shortcut_picks_the_tool_and_ctrl_z_undoes_through_the_window(ui, qtbot):
    ui.goto((5, 20, 24))
    ui.views["axial"].setFocus()
    QTest.keyClick(ui.views["axial"], Qt.Key.Key_B)
    assert ui.ctrl.tool_name == "box"
    assert ui.window.annotation_bar.slots["box"].isChecked()
    ui.drag("axial", (5, 10, 12), (5, 18, 30))
    assert len(ui.doc.annotations) == 1
    QTest.keyClick(ui.views["axial"], Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ui.doc.annotations == {}
    QTest.keyClick(
        ui.views["axial"],
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert len(ui.doc.annotations) == 1


def test_panel_lists_model_findings_and_accepts_or_rejects_them(ui):
    a, b = propose(
        ui.doc,
        "nodule-det",
        "0.1",
        boxes=[((4, 10, 10), (7, 16, 18), 2, 0.9), ((2, 20, 20), (3, 24, 26), 2, 0.4)],
    )
    tree = ui.panel.tree
    assert tree.topLevelItemCount() == 2
    assert {tree.topLevelItem(i).text(3) for i in range(2)} == {"proposed"}
    ui.panel.select_annotation(a.id)
    ui.panel.accept_selected()
    ui.panel.select_annotation(b.id)
    ui.panel.reject_selected()
    assert (ui.doc.get(a.id).status, ui.doc.get(b.id).status) == ("accepted", "rejected")
    ui.ctrl.set_label(3)
    ui.panel.select_annotation(b.id)
    ui.panel.relabel_selected()
    assert ui.doc.get(b.id).label == 3
    ui.panel.jump_to(b.id)
    assert ui.state.slice_index("axial") in (2, 3)
    ui.panel.select_annotation(a.id)
    ui.panel.delete_selected()
    assert a.id not in ui.doc.annotations and tree.topLevelItemCount() == 1


def test_label_set_editor_renames_recolours_and_adds_classes(ui):
    assert ui.panel.rename_class(2, "mass")
    assert ui.panel.recolor_class(2, "#00ff00")
    assert ui.panel.add_class("effusion", "#123456")
    labels = ui.doc.label_set
    assert labels.get(2).name == "mass" and labels.by_name("effusion").color == "#123456"
    layer = ui.state.layers.get(MASK_LAYER)
    assert layer.colours[2] == (0, 255, 0)
    combo = ui.window.annotation_bar.label_combo
    assert any("effusion" in combo.itemText(i) for i in range(combo.count()))
    assert not ui.panel.rename_class(1, "mass")  # names must stay unique: refused, unchanged
    assert ui.doc.label_set.get(1).name != "mass"
    ui.ctrl.undo()
    assert "effusion" not in [c.name for c in ui.doc.label_set]


def test_export_dialog_writes_nifti_and_json_that_read_back(ui, qtbot, tmp_path):
    import json

    import nibabel as nib

    ui.goto((6, 20, 24))
    ui.ctrl.set_tool("brush")
    ui.ctrl.ctx.brush_radius_mm = 15.0
    click(ui, "axial", (6, 20, 24))
    ui.ctrl.set_tool("box")
    ui.drag("axial", (6, 10, 12), (6, 18, 30))
    dialog = ui.window.annotations.show_export_dialog()
    assert dialog.deid_box.isChecked()  # de-identification is on by default
    dialog.folder_edit.setText(str(tmp_path))
    for fmt, box in dialog.format_boxes.items():
        box.setChecked(fmt in ("nifti", "json"))
    with qtbot.waitSignal(dialog.export_finished, timeout=20000) as done:
        assert dialog.start_export()
    folder = done.args[0].folder
    mask = np.asarray(nib.load(folder / "mask.nii.gz").dataobj)
    np.testing.assert_array_equal(np.transpose(mask, (2, 1, 0)), ui.doc.labelmap.array)
    records = json.loads((folder / "annotations.json").read_text())["annotations"]
    assert len(records) == 1 and records[0]["kind"] == "Box"
    qtbot.waitUntil(lambda: dialog.task is None, timeout=5000)

    again = ui.window.annotations.show_export_dialog()
    again.folder_edit.setText(str(tmp_path))
    asked = []
    again.confirm_overwrite = lambda path: asked.append(path) or False
    before = (folder / "mask.nii.gz").stat().st_mtime_ns
    assert not again.start_export()  # the user said no: nothing is written
    assert asked == [folder] and (folder / "mask.nii.gz").stat().st_mtime_ns == before


def test_scrolling_while_dragging_a_box_makes_it_span_those_slices(ui):
    ui.goto((3, 20, 24))
    ui.ctrl.set_tool("box")
    ui.press("axial", (3, 10, 12))
    ui.state.step_slice("axial", 3)  # the wheel does this mid-drag
    ui.move("axial", (6, 18, 30))
    ui.release("axial", (6, 18, 30))
    (box,) = ui.doc.annotations.values()
    assert box.is_3d and box.bounds_zyx() == ((3, 10, 12), (6, 18, 30))


def test_escape_drops_an_unfinished_outline_instead_of_a_window_shortcut(ui):
    ui.goto((4, 20, 24))
    ui.ctrl.set_tool("polygon")
    for zyx in [(4, 8, 8), (4, 8, 20)]:
        click(ui, "axial", zyx)
    assert ui.ctrl.tool.busy
    QTest.keyClick(ui.views["axial"], Qt.Key.Key_Escape)
    assert not ui.ctrl.tool.busy and ui.doc.annotations == {}
    assert not ui.ctrl.drawing(ui.views["axial"]).preview_items


def nodule_record(volume: Volume):
    """A segmenter's result with one box and a small mask, as the result store keeps it."""
    from radlens_core.results import Box, LabelClass
    from viewer.labels.results import ResultRecord

    label_map = np.zeros(volume.shape, np.uint8)
    label_map[5, 10:14, 10:14] = 1
    return ResultRecord(
        model_id="nodule-seg",
        model_name="Nodule finder",
        model_version="0.2",
        task="segmentation",
        shape=volume.shape,
        label_map=label_map,
        labels=[LabelClass(1, "nodule", "#ff7043")],
        boxes=[Box((4, 10, 10, 6, 14, 14), "nodule", 0.8)],
    )


def finished(ui, rec):
    from viewer.labels.result_findings import summarise
    from viewer.ui.analysis import AnalysisOutcome

    return AnalysisOutcome(rec, summarise(rec, ui.volume.spacing), "key", None, ui.volume)


def test_finished_analysis_becomes_proposed_annotations_once(ui):
    outcome = finished(ui, nodule_record(ui.volume))
    ui.window.analyze.controller.analysis_finished.emit(outcome)
    kinds = sorted(a.kind for a in ui.doc.annotations.values())
    assert kinds == ["Box", "ModelMask"]
    assert {a.status for a in ui.doc.annotations.values()} == {"proposed"}
    assert not ui.state.layers.get("Nodule finder: boxes").visible  # the editable boxes show
    mask_id = next(a.id for a in ui.doc.annotations.values() if a.kind == "ModelMask")
    ui.panel.select_annotation(mask_id)
    ui.panel.accept_selected()  # the model's voxels become the user's, paintable mask
    nodule = ui.doc.label_set.by_name("nodule").index
    assert (ui.doc.labelmap.array[5, 10:14, 10:14] == nodule).all()
    ui.window.analyze.controller.analysis_finished.emit(outcome)  # the same model again
    assert sum(a.kind == "Box" for a in ui.doc.annotations.values()) == 1


def test_reopened_series_draws_stored_model_boxes_once(ui):
    from viewer.ui.analysis import volume_key

    rec = nodule_record(ui.volume)
    ui.window.analyze.store.save(volume_key(ui.volume), rec)
    ui.window.analyze.controller.analysis_finished.emit(finished(ui, rec))
    raw = "Nodule finder: boxes"
    ui.state.set_volume(None)
    ui.state.set_volume(ui.volume)  # reopened: stored layers and saved proposals both return
    assert raw in ui.state.layers.names()
    assert [a.status for a in ui.doc.annotations.values() if a.kind == "Box"] == ["proposed"]
    assert not ui.state.layers.get(raw).visible
    ui.goto((5, 12, 12))
    assert not ui.views["axial"].overlays[raw].rects  # only the editable box is drawn


def test_every_window_shortcut_is_bound_once(ui):
    from PySide6.QtGui import QAction, QKeySequence

    seen: dict[str, str] = {}
    for action in ui.window.findChildren(QAction):
        for seq in action.shortcuts():
            key = seq.toString(QKeySequence.SequenceFormat.PortableText)
            assert key not in seen, f"{key} is bound to {seen[key]!r} and {action.text()!r}"
            seen[key] = action.text()
    assert {"B", "R", "E", "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+E"} <= set(seen)
