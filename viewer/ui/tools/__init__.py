"""Annotation tools: one small Qt-free state machine per tool (plane events in, label edits out)."""

from __future__ import annotations

from viewer.ui.tools.base import (
    AnnotationSink,
    BoxInfo,
    PlaneEvent,
    Preview,
    Tool,
    ToolContext,
)
from viewer.ui.tools.brush import BrushTool
from viewer.ui.tools.edit import BoxEditTool
from viewer.ui.tools.planes import Plane
from viewer.ui.tools.prompt import PromptTool
from viewer.ui.tools.segment import ClickSegmentTool, IslandTool
from viewer.ui.tools.shapes import BoxTool, PointTool, PolygonTool, RoiTool, RulerTool

#: (name, title, shortcut, class, keyword arguments) of every tool, in tool-bar order.
#: Shortcuts avoid the window's own single keys (Q W Z P modes, A C S planes, O X F I).
TOOL_TABLE: tuple[tuple[str, str, str, type[Tool], dict], ...] = (
    ("select", "Select / edit boxes", "V", BoxEditTool, {}),
    ("box", "Bounding box", "B", BoxTool, {}),
    ("polygon", "Polygon / freehand", "G", PolygonTool, {}),
    ("polygon_fill", "Outline into mask", "Shift+G", PolygonTool, {"to_mask": True}),
    ("brush", "Brush", "R", BrushTool, {"mode": "paint"}),
    ("eraser", "Eraser", "E", BrushTool, {"mode": "erase"}),
    ("threshold_brush", "Threshold brush", "Shift+R", BrushTool, {"mode": "threshold"}),
    ("point", "Point", "T", PointTool, {}),
    ("ruler", "Ruler", "M", RulerTool, {}),
    ("roi_ellipse", "Ellipse ROI", "N", RoiTool, {"shape": "ellipse"}),
    ("roi_rect", "Rectangle ROI", "Shift+N", RoiTool, {"shape": "rect"}),
    ("click_segment", "Click to segment (Shift+click removes)", "K", ClickSegmentTool, {}),
    ("island", "Pick island (keep or remove the one clicked)", "Shift+K", IslandTool, {}),
    (
        "prompt",
        "Prompt: AI from clicks (Shift: not it), a box or a scribble (Ctrl+drag)",
        "Shift+P",
        PromptTool,
        {},
    ),
)


def make_tools(ctx: ToolContext) -> dict[str, Tool]:
    """Every tool of the annotation tool bar, in tool-bar order, keyed by name."""
    tools: dict[str, Tool] = {}
    for name, title, shortcut, cls, kwargs in TOOL_TABLE:
        tool = cls(ctx, **kwargs)
        tool.name, tool.title, tool.shortcut = name, title, shortcut
        tools[name] = tool
    return tools


__all__ = [
    "AnnotationSink",
    "BoxEditTool",
    "BoxInfo",
    "BoxTool",
    "BrushTool",
    "ClickSegmentTool",
    "IslandTool",
    "Plane",
    "PlaneEvent",
    "PointTool",
    "PolygonTool",
    "PromptTool",
    "Preview",
    "RoiTool",
    "RulerTool",
    "TOOL_TABLE",
    "Tool",
    "ToolContext",
    "make_tools",
]
