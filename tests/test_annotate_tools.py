"""Qt-free annotation tool state machines: plane events -> edits, on all three planes."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.ui.tools import (
    BoxEditTool,
    BoxInfo,
    BoxTool,
    BrushTool,
    Plane,
    PlaneEvent,
    PointTool,
    PolygonTool,
    RoiTool,
    RulerTool,
    ToolContext,
    make_tools,
)
from viewer.ui.tools.planes import polygon_mask

SHAPE = (8, 12, 16)  # z, y, x: every axis a different length catches swapped axes
SPACING_ZYX = (3.0, 1.0, 0.5)


class RecordingSink:
    """An in-memory AnnotationSink: records vector edits, paints into a real label array."""

    def __init__(self) -> None:
        self.mask = np.zeros(SHAPE, dtype=np.uint8)
        self.items: dict[str, tuple] = {}
        self.strokes: list[int] = []  # dabs per finished stroke
        self._dabs = 0
        self._before: np.ndarray | None = None
        self.status: dict[str, str] = {}

    def _add(self, *item) -> str:
        key = f"a{len(self.items)}"
        self.items[key] = item
        return key

    def add_box(self, lo, hi, label, dims):
        return self._add("box", tuple(lo), tuple(hi), label, dims)

    def add_polygon(self, points_zyx, label, plane, slice_index):
        return self._add("polygon", np.asarray(points_zyx), label, plane.name, slice_index)

    def add_point(self, zyx, label):
        return self._add("point", tuple(zyx), label)

    def add_ruler(self, a, b, label):
        return self._add("ruler", tuple(a), tuple(b), label)

    def add_roi(self, shape, lo, hi, plane, label):
        return self._add("roi", shape, tuple(lo), tuple(hi), plane.name, label)

    def begin_stroke(self):
        self._dabs, self._before = 0, self.mask.copy()

    def paint(self, region, mask, value):
        assert self._before is not None, "paint outside a stroke"
        self.mask[region][mask] = value
        self._dabs += 1

    def end_stroke(self):
        self.strokes.append(self._dabs)
        self._before = None

    def cancel_stroke(self):
        self.mask[:] = self._before
        self._before = None

    def interpolate(self, label, axis=0):
        return 0

    def boxes(self):
        return [
            BoxInfo(k, v[1], v[2], status=self.status.get(k, "proposed"))
            for k, v in self.items.items()
            if v[0] == "box"
        ]

    def move_box(self, box_id, lo, hi):
        kind, _, _, label, dims = self.items[box_id]
        self.items[box_id] = (kind, tuple(lo), tuple(hi), label, dims)
        self.status[box_id] = "edited"

    def set_status(self, box_id, status):
        self.status[box_id] = status

    def remove(self, box_id):
        del self.items[box_id]


def plane(name: str) -> Plane:
    return Plane(name, SHAPE, SPACING_ZYX)


def ev(p: Plane, s: int, r: float, c: float, **kw) -> PlaneEvent:
    return PlaneEvent(p, s, r, c, **kw)


@pytest.fixture
def ctx() -> ToolContext:
    return ToolContext(sink=RecordingSink(), label=2)


@pytest.mark.parametrize(
    ("name", "expected_zyx"),
    [("axial", (5, 2, 3)), ("coronal", (2, 5, 3)), ("sagittal", (2, 3, 5))],
)
def test_plane_row_col_slice_maps_to_volume_zyx(name, expected_zyx):
    p = plane(name)
    assert tuple(p.to_volume(2, 3, 5)) == expected_zyx
    assert p.from_volume(expected_zyx) == (2, 3, 5)
    data = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    assert p.take(data, 5)[2, 3] == data[expected_zyx]


def test_plane_pixel_size_follows_the_volume_spacing():
    assert plane("axial").pixel_mm == (1.0, 0.5)
    assert plane("coronal").pixel_mm == (3.0, 0.5)
    assert plane("sagittal").pixel_mm == (3.0, 1.0)
    assert plane("sagittal").size == (8, 12)


@pytest.mark.parametrize("name", ["axial", "coronal", "sagittal"])
def test_box_drag_on_any_plane_gives_voxel_corners(ctx, name):
    p = plane(name)
    tool = BoxTool(ctx)
    tool.press(ev(p, 4, 1.2, 2.0))
    tool.move(ev(p, 4, 3.0, 5.0))
    assert tool.preview()[0].kind == "rect"
    tool.release(ev(p, 4, 3.4, 6.1))
    ((_, lo, hi, label, dims),) = ctx.sink.items.values()
    assert (label, dims) == (2, 2)
    assert lo == tuple(p.to_volume(1, 2, 4))
    assert hi == tuple(p.to_volume(3, 6, 4))


def test_box_dragged_across_slices_is_3d(ctx):
    p = plane("axial")
    tool = BoxTool(ctx)
    tool.press(ev(p, 2, 1, 1))
    tool.move(ev(p, 5, 4, 4))
    assert "slices 2–5" in tool.preview()[0].text
    tool.release(ev(p, 5, 4, 4))
    ((_, lo, hi, _, dims),) = ctx.sink.items.values()
    assert dims == 3 and lo == (2, 1, 1) and hi == (5, 4, 4)


def test_3d_box_switch_gives_depth_from_the_smaller_side(ctx):
    ctx.box_3d = True
    p = plane("axial")  # slices 3 mm apart, pixels 1 x 0.5 mm
    tool = BoxTool(ctx)
    tool.press(ev(p, 4, 0, 0))
    tool.release(ev(p, 4, 6, 12))  # 6 mm tall, 6 mm wide -> one slice either side
    ((_, lo, hi, _, dims),) = ctx.sink.items.values()
    assert dims == 3 and (lo[0], hi[0]) == (3, 5)


def test_click_without_drag_makes_no_box(ctx):
    tool = BoxTool(ctx)
    tool.press(ev(plane("axial"), 0, 2, 2))
    tool.release(ev(plane("axial"), 0, 2.3, 2.2))
    assert ctx.sink.items == {}


def test_brush_stroke_is_one_edit_and_paints_a_solid_line(ctx):
    p = plane("axial")
    ctx.brush_radius_mm = 1.0
    tool = BrushTool(ctx, "paint")
    tool.press(ev(p, 3, 6, 1))
    tool.move(ev(p, 3, 6, 14))  # one fast move: the dabs in between must fill the gap
    tool.release(ev(p, 3, 6, 14))
    assert len(ctx.sink.strokes) == 1
    assert (ctx.sink.mask[3, 6, 1:15] == 2).all()
    assert ctx.sink.mask[[0, 1, 2, 4, 5, 6, 7]].sum() == 0  # disc stays on its slice


def test_brush_on_sagittal_paints_the_right_voxels(ctx):
    p = plane("sagittal")  # rows = z (3 mm), cols = y (1 mm)
    ctx.brush_radius_mm = 1.0
    tool = BrushTool(ctx, "paint")
    tool.press(ev(p, 9, 4, 5))
    tool.release(ev(p, 9, 4, 5))
    painted = np.argwhere(ctx.sink.mask)
    assert {tuple(v) for v in painted} == {(4, 4, 9), (4, 5, 9), (4, 6, 9)}


def test_eraser_clears_and_escape_restores_the_stroke(ctx):
    p = plane("axial")
    ctx.sink.mask[:] = 1
    tool = BrushTool(ctx, "erase")
    tool.press(ev(p, 0, 5, 5))
    assert ctx.sink.mask[0, 5, 5] == 0
    assert tool.key("Escape")
    assert ctx.sink.mask.min() == 1 and ctx.sink.strokes == []


def test_threshold_brush_paints_only_inside_the_hu_range(ctx):
    hu = np.full(SHAPE, -800.0)
    hu[:, :, 8:] = 50.0
    ctx.hu, ctx.threshold, ctx.brush_radius_mm = hu, (0.0, 100.0), 3.0
    tool = BrushTool(ctx, "threshold")
    tool.press(ev(plane("axial"), 2, 6, 8))
    tool.release(ev(plane("axial"), 2, 6, 8))
    painted = ctx.sink.mask[2] > 0
    assert painted.any() and (hu[2][painted] == 50.0).all()


def test_sphere_brush_paints_across_slices(ctx):
    ctx.brush_3d, ctx.brush_radius_mm = True, 3.0
    tool = BrushTool(ctx, "paint")
    tool.press(ev(plane("coronal"), 6, 4, 8))  # centre (z=4, y=6, x=8)
    tool.release(ev(plane("coronal"), 6, 4, 8))
    assert set(np.unique(np.nonzero(ctx.sink.mask)[0])) == {3, 4, 5}
    assert ctx.sink.mask[4, 6, 8] == 2 and ctx.sink.mask[4, 9, 8] == 2
    assert ctx.sink.mask[4, 10, 8] == 0


def test_brush_size_keys_change_the_radius(ctx):
    tool = BrushTool(ctx)
    before = ctx.brush_radius_mm
    tool.key("]")
    assert ctx.brush_radius_mm > before
    tool.key("[")
    tool.key("[")
    assert ctx.brush_radius_mm < before
    assert tool.preview() == []


def test_polygon_clicks_close_on_the_first_vertex(ctx):
    p = plane("coronal")
    tool = PolygonTool(ctx)
    for r, c in [(1, 1), (1, 10), (6, 10)]:
        tool.press(ev(p, 7, r, c))
        tool.release(ev(p, 7, r, c))
    tool.hover(ev(p, 7, 6, 2))
    assert len(tool.preview()[0].points_rc) == 4  # three vertices + rubber band
    tool.press(ev(p, 7, 1.2, 1.1))  # back on the first vertex
    ((kind, pts, label, plane_name, s),) = ctx.sink.items.values()
    assert (kind, plane_name, s, label) == ("polygon", "coronal", 7, 2)
    assert pts.shape == (3, 3) and (pts[:, 1] == 7).all()  # coronal slice axis is y
    assert not tool.busy


def test_freehand_drag_makes_a_polygon_on_release(ctx):
    p = plane("axial")
    tool = PolygonTool(ctx)
    tool.press(ev(p, 1, 2, 2))
    for r, c in [(2, 8), (8, 8), (8, 2)]:
        tool.move(ev(p, 1, r, c))
    tool.release(ev(p, 1, 8, 2))
    ((kind, pts, *_),) = ctx.sink.items.values()
    assert kind == "polygon" and len(pts) == 4


def test_outline_fill_paints_the_inside_into_the_mask(ctx):
    p = plane("sagittal")
    tool = PolygonTool(ctx, to_mask=True)
    for r, c in [(1, 1), (1, 6), (5, 6), (5, 1)]:
        tool.press(ev(p, 3, r, c))
        tool.release(ev(p, 3, r, c))
    assert tool.key("Return")
    assert (ctx.sink.mask[2:5, 2:6, 3] == 2).all()
    assert ctx.sink.mask[:, :, [0, 1, 2, 4]].sum() == 0 and len(ctx.sink.strokes) == 1


def test_polygon_mask_even_odd_square():
    m = polygon_mask(plane("axial"), np.array([[0.5, 0.5], [0.5, 3.5], [3.5, 3.5], [3.5, 0.5]]))
    assert m.sum() == 9 and m[1:4, 1:4].all()


def test_point_ruler_and_roi_tools_record_volume_coordinates(ctx):
    p = plane("coronal")
    PointTool(ctx).press(ev(p, 3, 2.2, 4.9))
    ruler = RulerTool(ctx)
    ruler.press(ev(p, 3, 0, 0))
    ruler.move(ev(p, 3, 1, 8))
    assert ruler.preview()[0].text == "5.0 mm"  # 1 row = 3 mm, 8 cols = 4 mm
    ruler.release(ev(p, 3, 1, 8))
    roi = RoiTool(ctx, "ellipse")
    roi.press(ev(p, 3, 1, 1))
    roi.release(ev(p, 3, 5, 9))
    point, rul, ell = ctx.sink.items.values()
    assert point == ("point", (2, 3, 5), 2)
    assert rul[1:3] == ((0, 3, 0), (1, 3, 8))
    assert ell[:5] == ("roi", "ellipse", (1, 3, 1), (5, 3, 9), "coronal")


def _model_box(ctx) -> str:
    return ctx.sink.add_box(np.array([2, 3, 4]), np.array([4, 6, 8]), 1, 3)


def test_drag_inside_a_box_moves_it_and_marks_it_edited(ctx):
    box_id = _model_box(ctx)
    tool = BoxEditTool(ctx)
    p = plane("axial")
    assert tool.press(ev(p, 3, 4.5, 6))
    tool.move(ev(p, 3, 6.5, 5))
    assert tool.preview()[0].kind == "rect"
    tool.release(ev(p, 3, 6.5, 5))
    assert ctx.sink.items[box_id][1:3] == ((2, 5, 3), (4, 8, 7))
    assert ctx.sink.status[box_id] == "edited" and ctx.selected == box_id


def test_drag_on_a_corner_handle_resizes_only_that_corner(ctx):
    box_id = _model_box(ctx)
    tool = BoxEditTool(ctx)
    p = plane("coronal")  # rows = z, cols = x; box z 2..4, x 4..8
    tool.press(ev(p, 4, 4.5, 8.5))  # bottom-right pixel edge
    tool.release(ev(p, 4, 6.5, 10.5))
    assert ctx.sink.items[box_id][1:3] == ((2, 3, 4), (6, 6, 10))


def test_accept_reject_delete_keys_act_on_the_selected_box(ctx):
    box_id = _model_box(ctx)
    tool = BoxEditTool(ctx)
    p = plane("axial")
    tool.press(ev(p, 2, 4, 6))
    tool.release(ev(p, 2, 4, 6))  # a click: selects, does not edit
    assert ctx.sink.status.get(box_id) is None
    assert tool.key("A") and ctx.sink.status[box_id] == "accepted"
    assert tool.key("X") and ctx.sink.status[box_id] == "rejected"
    assert tool.key("Delete") and box_id not in ctx.sink.items


def test_click_outside_every_box_clears_the_selection_and_lets_the_view_pan(ctx):
    _model_box(ctx)
    ctx.selected = "a0"
    tool = BoxEditTool(ctx)
    assert not tool.press(ev(plane("axial"), 3, 10, 14))
    assert ctx.selected is None


def test_tool_bar_has_every_tool_with_a_distinct_shortcut(ctx):
    tools = make_tools(ctx)
    shortcuts = [t.shortcut for t in tools.values()]
    assert len(set(shortcuts)) == len(shortcuts) == 14
    assert {"box", "polygon", "brush", "eraser", "threshold_brush", "ruler"} <= set(tools)
    assert {"click_segment", "island", "prompt"} <= set(tools)


def test_plane_with_display_chosen_axes_takes_and_embeds_consistently(ctx):
    p = Plane("axial", SHAPE, SPACING_ZYX, (0, 2, 1))  # rows along x, cols along y
    data = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    assert p.size == (16, 12) and p.take(data, 3)[5, 7] == data[3, 7, 5]
    ctx.brush_radius_mm = 0.1
    tool = BrushTool(ctx)
    tool.press(ev(p, 3, 5, 7))
    tool.release(ev(p, 3, 5, 7))
    assert [tuple(v) for v in np.argwhere(ctx.sink.mask)] == [(3, 7, 5)]
    region, mask = p.embed(np.eye(16, 12, dtype=bool), 2)
    assert mask.shape == (1, 12, 16) and ctx.sink.mask[region].shape == mask.shape
