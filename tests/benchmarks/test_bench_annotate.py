"""Annotation responsiveness on a 300 x 512 x 512 series: brush dabs, whole strokes, undo, and
the live overlay refresh a dab triggers in the window.

Run: QT_QPA_PLATFORM=offscreen PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_annotate.py
     --benchmark-enable --benchmark-only -q
"""

from __future__ import annotations

import numpy as np
import pytest

from viewer.labels.document import Document
from viewer.ui.tools import BrushTool, Plane, PlaneEvent, ToolContext
from viewer.ui.tools.document_sink import DocumentSink

SHAPE = (300, 512, 512)
SPACING_ZYX = (1.0, 0.7, 0.7)


@pytest.fixture(scope="module")
def doc() -> Document:
    return Document(SHAPE, "bench")


def _stroke(tool: BrushTool, plane: Plane, z: int, n: int = 30) -> None:
    tool.press(PlaneEvent(plane, z, 100, 100))
    for i in range(1, n + 1):
        tool.move(PlaneEvent(plane, z, 100 + 5 * i, 100 + 3 * i))
    tool.release(PlaneEvent(plane, z, 100 + 5 * n, 100 + 3 * n))


@pytest.mark.parametrize("plane_name", ["axial", "sagittal"])
def test_bench_brush_stroke_30_moves(benchmark, doc, plane_name):
    """A 5 mm brush dragged over 30 pointer moves, committed as one undoable edit."""
    ctx = ToolContext(sink=DocumentSink(doc), label=1, brush_radius_mm=5.0)
    plane = Plane(plane_name, SHAPE, SPACING_ZYX)
    benchmark(_stroke, BrushTool(ctx), plane, 150 if plane_name == "axial" else 256)
    assert doc.can_undo


def test_bench_sphere_dab(benchmark, doc):
    """One 10 mm sphere dab (about 29 slices touched) as its own stroke."""
    ctx = ToolContext(sink=DocumentSink(doc), label=2, brush_radius_mm=10.0, brush_3d=True)
    tool = BrushTool(ctx)
    plane = Plane("axial", SHAPE, SPACING_ZYX)

    def dab() -> None:
        tool.press(PlaneEvent(plane, 150, 256, 256))
        tool.release(PlaneEvent(plane, 150, 256, 256))

    benchmark(dab)
    assert doc.labelmap.array[150, 256, 256] == 2


def test_bench_undo_redo_of_a_stroke(benchmark, doc):
    ctx = ToolContext(sink=DocumentSink(doc), label=3, brush_radius_mm=5.0)
    _stroke(BrushTool(ctx), Plane("axial", SHAPE, SPACING_ZYX), 20)
    after = doc.labelmap.array[20].copy()

    def undo_redo() -> None:
        doc.undo()
        doc.redo()

    benchmark(undo_redo)
    np.testing.assert_array_equal(doc.labelmap.array[20], after)


@pytest.mark.gui
def test_bench_live_overlay_refresh_per_dab(benchmark, qtbot):
    """A dab in the window: paint + redraw of the touched slice in each view that shows it."""
    from viewer.study.volume import Volume
    from viewer.ui.main_window import MainWindow

    vol = Volume(
        np.zeros((64, 512, 512), np.int16), spacing=(0.7, 0.7, 1.0), modality="CT", series_uid="b"
    )
    window = MainWindow()
    qtbot.addWidget(window)
    window.area.set_layout("2x2")
    window.show()
    window.state.set_volume(vol)
    window.state.set_cursor((32, 256, 256))
    ctrl = window.annotations.controller
    ctrl.set_tool("brush")
    tool, plane = ctrl.tool, ctrl.tool_plane(window.area.views["axial"])
    tool.press(PlaneEvent(plane, 32, 256, 256))
    moves = iter(range(10**6))

    def dab() -> None:
        i = next(moves) % 200
        tool.move(PlaneEvent(plane, 32, 156 + i, 256))

    benchmark(dab)
    tool.release(PlaneEvent(plane, 32, 356, 256))
    window.close()
