"""Tools editing a real label Document: one undo step per edit, model box review states."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.labels.document import Document
from viewer.labels.findings import model_vs_final, propose
from viewer.labels.model import Box, Point, Polygon, RoiEllipse, Ruler
from viewer.labels.planar import roi_mask3d
from viewer.ui.tools import BoxEditTool, BrushTool, Plane, PlaneEvent, ToolContext, make_tools
from viewer.ui.tools.document_sink import DocumentSink

SHAPE = (6, 20, 24)
SPACING_ZYX = (2.0, 1.0, 1.0)


@pytest.fixture
def doc() -> Document:
    return Document(SHAPE, "1.2.3")


@pytest.fixture
def ctx(doc) -> ToolContext:
    return ToolContext(sink=DocumentSink(doc), label=2, brush_radius_mm=2.0)


def plane(name: str) -> Plane:
    return Plane(name, SHAPE, SPACING_ZYX)


def drag(tool, p: Plane, s: int, a, b, s_end: int | None = None) -> None:
    tool.press(PlaneEvent(p, s, *a))
    tool.move(PlaneEvent(p, s if s_end is None else s_end, *b))
    tool.release(PlaneEvent(p, s if s_end is None else s_end, *b))


def test_whole_brush_stroke_undoes_in_one_step_and_redoes(doc, ctx):
    tool = BrushTool(ctx)
    p = plane("axial")
    tool.press(PlaneEvent(p, 2, 5, 3))
    for c in range(4, 18, 2):
        tool.move(PlaneEvent(p, 2, 5, c))
    tool.release(PlaneEvent(p, 2, 5, 17))
    painted = doc.labelmap.array.copy()
    assert (painted[2, 5, 3:18] == 2).all()
    assert doc.undo() is not None
    assert doc.labelmap.array.sum() == 0 and not doc.can_undo
    doc.redo()
    np.testing.assert_array_equal(doc.labelmap.array, painted)


def test_overlapping_dabs_undo_to_the_state_before_the_stroke(doc, ctx):
    doc.labelmap.array[1, 4:8, 4:8] = 1  # the user's earlier mask, not journalled here
    tool = BrushTool(ctx, "erase")
    drag(tool, plane("coronal"), 6, (1, 3), (1, 9))  # crosses slice z=1 through the old mask
    assert doc.labelmap.array[1, 6, 4:8].sum() == 0
    doc.undo()
    assert (doc.labelmap.array[1, 4:8, 4:8] == 1).all()


def test_live_paint_reports_each_region_before_the_stroke_ends(doc):
    seen = []
    ctx = ToolContext(sink=DocumentSink(doc, on_painted=seen.append), label=1)
    tool = BrushTool(ctx)
    tool.press(PlaneEvent(plane("sagittal"), 10, 3, 10))
    assert seen and doc.labelmap.array[3, 10, 10] == 1 and not doc.can_undo
    tool.release(PlaneEvent(plane("sagittal"), 10, 3, 10))
    assert doc.can_undo


def test_vector_tools_create_document_annotations(doc, ctx):
    tools = make_tools(ctx)
    ax = plane("axial")
    drag(tools["box"], ax, 3, (2, 2), (6, 9))
    drag(tools["box"], ax, 1, (2, 2), (6, 9), s_end=4)
    drag(tools["ruler"], plane("coronal"), 10, (0, 0), (3, 4))
    tools["point"].press(PlaneEvent(ax, 2, 7, 8))
    drag(tools["roi_ellipse"], ax, 2, (4, 4), (10, 12))
    for rc in [(1, 1), (1, 8), (8, 8)]:
        tools["polygon"].press(PlaneEvent(ax, 5, *rc))
        tools["polygon"].release(PlaneEvent(ax, 5, *rc))
    tools["polygon"].key("Return")
    kinds = {type(a) for a in doc.annotations.values()}
    assert kinds == {Box, Ruler, Point, RoiEllipse, Polygon}
    boxes = sorted(
        (a for a in doc.annotations.values() if isinstance(a, Box)), key=lambda b: b.z is None
    )
    assert boxes[0].z == 3 and boxes[0].corners == (2, 2, 6, 9)
    assert boxes[1].is_3d and boxes[1].corners == (1, 2, 2, 4, 6, 9)
    ruler = next(a for a in doc.annotations.values() if isinstance(a, Ruler))
    assert ruler.length_mm((1.0, 1.0, 2.0)) == pytest.approx(np.hypot(6, 4))
    for _ in range(6):
        doc.undo()
    assert doc.annotations == {}


def test_outline_on_coronal_becomes_a_coronal_polygon_not_paint(doc, ctx):
    p = plane("coronal")
    pts = p.points_to_volume(np.array([(0.5, 1.5), (0.5, 10.5), (4.5, 10.5), (4.5, 1.5)]), 7)
    poly = doc.get(ctx.sink.add_polygon(pts, 3, p, 7))
    assert (poly.axis, poly.z) == (1, 7) and poly.vertices[1] == (0.5, 10.5)  # (z, x)
    np.testing.assert_allclose(poly.points(), pts)
    assert not doc.labelmap.array.any()
    inside = roi_mask3d(poly, SHAPE)
    assert inside[1:5, 7, 2:11].all() and inside.sum() == 36


def test_roi_on_sagittal_keeps_its_plane(doc, ctx):
    drag(make_tools(ctx)["roi_rect"], plane("sagittal"), 10, (1, 3), (4, 9))  # rows z, cols y
    (roi,) = doc.annotations.values()
    assert (roi.axis, roi.z, roi.bounds) == (2, 10, (1, 3, 4, 9))
    assert roi.points() == [(1, 3, 10), (4, 9, 10)]


def test_polygon_is_stored_in_array_axis_order_whatever_the_view_rows_are(doc, ctx):
    turned = Plane("coronal", SHAPE, SPACING_ZYX, (1, 2, 0))  # rows x, cols z
    tool = make_tools(ctx)["polygon"]
    for rc in [(2, 1), (12, 1), (12, 4)]:
        tool.press(PlaneEvent(turned, 6, *rc))
        tool.release(PlaneEvent(turned, 6, *rc))
    tool.key("Return")
    (poly,) = doc.annotations.values()
    assert poly.axis == 1 and poly.vertices == ((1, 2), (1, 12), (4, 12))  # (z, x)


def test_interpolate_fills_the_gap_between_drawn_slices_in_one_step(doc, ctx):
    doc.labelmap.array[0, 5:10, 5:10] = 2
    doc.labelmap.array[4, 5:10, 5:10] = 2
    assert ctx.sink.interpolate(2) == 3
    assert (doc.labelmap.array[1:4, 6:9, 6:9] == 2).all()
    doc.undo()
    assert doc.labelmap.array[1:4].sum() == 0


def test_interpolate_along_the_sagittal_axis_fills_between_drawn_columns(doc, ctx):
    doc.labelmap.array[2:6, 3:8, 1] = 2
    doc.labelmap.array[2:6, 3:8, 6] = 2
    painted = []
    ctx.sink.on_painted = painted.append
    assert ctx.sink.interpolate(2, axis=2) == 4
    assert (doc.labelmap.array[2:6, 3:8, 1:7] == 2).all()
    assert painted == [(slice(None), slice(None), slice(1, 7))]
    doc.undo()
    assert doc.labelmap.array[:, :, 2:6].sum() == 0


def test_model_box_move_accept_reject_is_recorded_for_export(doc, ctx):
    (box,) = propose(doc, "nodule-det", "1.0", boxes=[((1, 4, 4), (3, 8, 8), 2, 0.9)])
    tool = BoxEditTool(ctx)
    ax = plane("axial")
    drag(tool, ax, 2, (6, 6), (8, 9))  # move by (+2, +3)
    moved = doc.get(box.id)
    assert moved.status == "edited" and moved.bounds_zyx() == ((1, 6, 7), (3, 10, 11))
    assert tool.key("A") and doc.get(box.id).status == "accepted"
    assert tool.key("X") and doc.get(box.id).status == "rejected"
    (row,) = model_vs_final(doc)
    assert row["action"] == "rejected" and tuple(row["model"]["corners"]) == (1, 4, 4, 3, 8, 8)
    doc.undo()
    doc.undo()
    doc.undo()
    assert doc.get(box.id).status == "proposed"


def test_escape_mid_stroke_restores_every_touched_voxel_and_records_nothing(doc, ctx):
    doc.labelmap.array[:, 8:12, 8:12] = 1
    before = doc.labelmap.array.copy()
    ctx.brush_3d = True
    tool = BrushTool(ctx, "erase")
    tool.press(PlaneEvent(plane("sagittal"), 10, 2, 9))
    tool.move(PlaneEvent(plane("sagittal"), 10, 4, 11))
    assert not np.array_equal(doc.labelmap.array, before)
    tool.key("Escape")
    np.testing.assert_array_equal(doc.labelmap.array, before)
    assert not doc.can_undo
