"""The Prompt tool without a window: what a stroke turns into, which gesture a drag is."""

from __future__ import annotations

import numpy as np

from viewer.labels.document import Document
from viewer.ui.tools import PlaneEvent, ToolContext, make_tools
from viewer.ui.tools.document_sink import DocumentSink
from viewer.ui.tools.planes import Plane
from viewer.ui.tools.prompt import SCRIBBLE_MAX_VOXELS, stroke_voxels

SHAPE = (10, 60, 60)


def _ev(plane: Plane, index: int, row: float, col: float, **mods) -> PlaneEvent:
    return PlaneEvent(plane, index, row, col, **mods)


def test_a_stroke_is_every_voxel_it_passes_once_on_its_slice():
    plane = Plane("axial", SHAPE, (2.0, 1.0, 1.0))
    events = [_ev(plane, 4, 10, 10), _ev(plane, 4, 10, 30), _ev(plane, 4, 25, 30)]
    voxels = np.asarray(stroke_voxels(events, SHAPE))
    assert set(voxels[:, 0]) == {4}
    assert len({tuple(v) for v in voxels}) == len(voxels)
    # 21 voxels along the row, then 15 more down the column: connected, nothing skipped.
    assert len(voxels) == 21 + 15
    steps = np.abs(np.diff(voxels, axis=0)).max(axis=1)
    assert steps.max() == 1


def test_a_stroke_on_a_coronal_slice_lies_in_that_slice():
    plane = Plane("coronal", SHAPE, (2.0, 1.0, 1.0))
    voxels = np.asarray(stroke_voxels([_ev(plane, 33, 2, 5), _ev(plane, 33, 7, 5)], SHAPE))
    assert set(voxels[:, 1]) == {33} and len(voxels) == 6


def test_a_long_stroke_is_thinned_to_its_cap():
    shape = (1, 4000, 4000)
    plane = Plane("axial", shape, (1.0, 1.0, 1.0))
    voxels = stroke_voxels([_ev(plane, 0, 0, 0), _ev(plane, 0, 3999, 3999)], shape)
    assert len(voxels) <= SCRIBBLE_MAX_VOXELS


def _tool():
    doc = Document(SHAPE, "t")
    ctx = ToolContext(sink=DocumentSink(doc), hu=np.zeros(SHAPE, np.int16), modality="CT")
    tool = make_tools(ctx)["prompt"]
    tool.submit = lambda: None  # the gesture only: no model here
    return ctx, tool


def test_drag_draws_a_box_or_a_scribble_as_set_and_ctrl_swaps():
    ctx, tool = _tool()
    plane = Plane("axial", SHAPE, (2.0, 1.0, 1.0))

    def drag(**mods):
        tool.press(_ev(plane, 3, 10, 10, **mods))
        tool.move(_ev(plane, 3, 10, 20, **mods))
        tool.release(_ev(plane, 3, 20, 20, **mods))

    drag()
    assert tool.state.box is not None and not tool.state.scribble_positive
    drag(ctrl=True)
    assert len(tool.state.scribble_positive) == 21
    ctx.prompt_drag = "scribble"
    tool.reset()
    drag()
    assert tool.state.box is None and len(tool.state.scribble_positive) == 21
    drag(ctrl=True)
    assert tool.state.box is not None


def test_negative_mode_makes_clicks_and_scribbles_negative_and_shift_swaps():
    ctx, tool = _tool()
    plane = Plane("axial", SHAPE, (2.0, 1.0, 1.0))
    ctx.prompt_negative = True
    tool.press(_ev(plane, 3, 10, 10))
    tool.release(_ev(plane, 3, 10, 10))
    tool.press(_ev(plane, 3, 12, 12))
    tool.release(_ev(plane, 3, 12, 12, shift=True))
    ctx.prompt_drag = "scribble"
    tool.press(_ev(plane, 3, 30, 10))
    tool.release(_ev(plane, 3, 30, 20))
    assert len(tool.state.negative) == 1 and len(tool.state.positive) == 1
    assert len(tool.state.scribble_negative) == 11 and not tool.state.scribble_positive
    assert tool.state.describe() == "1 + / 1 − clicks, − scribble (11 voxels)"
