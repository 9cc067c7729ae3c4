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
from viewer.ui.tools.shapes import BoxTool, PointTool, PolygonTool, RoiTool, RulerTool


def make_tools(ctx: ToolContext) -> dict[str, Tool]:
    """Every tool of the annotation tool bar, in tool-bar order, keyed by name."""
    tools: list[Tool] = [
        BoxEditTool(ctx),
        BoxTool(ctx),
        PolygonTool(ctx),
        PolygonTool(ctx, to_mask=True),
        BrushTool(ctx, "paint"),
        BrushTool(ctx, "erase"),
        BrushTool(ctx, "threshold"),
        PointTool(ctx),
        RulerTool(ctx),
        RoiTool(ctx, "ellipse"),
        RoiTool(ctx, "rect"),
    ]
    return {t.name: t for t in tools}


__all__ = [
    "AnnotationSink",
    "BoxEditTool",
    "BoxInfo",
    "BoxTool",
    "BrushTool",
    "Plane",
    "PlaneEvent",
    "PointTool",
    "PolygonTool",
    "Preview",
    "RoiTool",
    "RulerTool",
    "Tool",
    "ToolContext",
    "make_tools",
]
