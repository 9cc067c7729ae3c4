"""Vector annotation tools: bounding box (2D/3D), polygon/freehand, point, ruler, ellipse/rect ROI."""

from __future__ import annotations

import numpy as np

from viewer.ui.tools.base import PlaneEvent, Preview, Tool
from viewer.ui.tools.planes import Plane, polygon_mask


def _voxel_box(
    plane: Plane, a_rc: tuple[float, float], b_rc: tuple[float, float], s0: int, s1: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive integer (z, y, x) corners of the voxels a drag from a to b covers."""
    lo = np.minimum(plane.to_volume(*a_rc, s0), plane.to_volume(*b_rc, s1))
    hi = np.maximum(plane.to_volume(*a_rc, s0), plane.to_volume(*b_rc, s1))
    top = np.asarray(plane.shape) - 1
    return np.clip(np.rint(lo), 0, top), np.clip(np.rint(hi), 0, top)


class _DragTool(Tool):
    """Press, drag, release: remembers the start and the current event."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.start: PlaneEvent | None = None
        self.current: PlaneEvent | None = None

    @property
    def busy(self) -> bool:
        return self.start is not None

    def cancel(self) -> None:
        self.start = self.current = None

    def press(self, ev: PlaneEvent) -> bool:
        self.start = self.current = ev
        return True

    def move(self, ev: PlaneEvent) -> bool:
        if self.start is None:
            return False
        self.current = ev
        return True

    def release(self, ev: PlaneEvent) -> bool:
        if self.start is None:
            return False
        start = self.start
        self.cancel()
        self.finish(start, ev)
        return True

    def finish(self, start: PlaneEvent, end: PlaneEvent) -> None:
        raise NotImplementedError

    def _size_text(self) -> str:
        assert self.start is not None and self.current is not None
        plane = self.start.plane
        rows = self.current.row - self.start.row
        cols = self.current.col - self.start.col
        return plane.calibration.size_text(rows, cols, plane.pixel_mm)


class BoxTool(_DragTool):
    """Bounding box: a 2D box on the slice, or a 3D box.

    3D boxes span from the slice where the drag began to the one where it ended (scroll
    while dragging); with the 3D switch on and no scroll, the depth equals the smaller
    in-plane side, centred on the slice, so a nodule gets a cube-like box in one drag.
    """

    name, title = "box", "Bounding box"

    def finish(self, start: PlaneEvent, end: PlaneEvent) -> None:
        plane = start.plane
        if abs(end.row - start.row) < 1 and abs(end.col - start.col) < 1:
            return  # a click, not a box
        s0, s1 = start.slice_index, end.slice_index
        three_d = (self.ctx.box_3d or s0 != s1) and plane.shape[0] > 1
        if three_d and s0 == s1:
            pr, pc = plane.pixel_mm
            side_mm = min(abs(end.row - start.row) * pr, abs(end.col - start.col) * pc)
            half = int(round(side_mm / plane.slice_mm / 2))
            s0, s1 = plane.clamp_slice(s0 - half), plane.clamp_slice(s0 + half)
        lo, hi = _voxel_box(plane, start.rc, end.rc, s0, s1)
        box_id = self.ctx.sink.add_box(lo, hi, self.ctx.label, 3 if three_d else 2)
        self.ctx.changed = [box_id]

    def preview(self) -> list[Preview]:
        if self.start is None or self.current is None:
            return []
        text = self._size_text()
        if self.current.slice_index != self.start.slice_index:
            text += f", slices {self.start.slice_index}–{self.current.slice_index}"
        return [
            Preview(
                "rect",
                self.start.plane.name,
                self.current.slice_index,
                (self.start.rc, self.current.rc),
                text,
            )
        ]


class RoiTool(_DragTool):
    """Ellipse or rectangle region of interest; its statistics are drawn beside it."""

    def __init__(self, ctx, shape: str = "ellipse") -> None:
        super().__init__(ctx)
        if shape not in ("ellipse", "rect"):
            raise ValueError(f"an ROI is an 'ellipse' or a 'rect', not {shape!r}")
        self.shape = shape
        self.name = f"roi_{shape}"
        self.title = "Ellipse ROI" if shape == "ellipse" else "Rectangle ROI"

    def finish(self, start: PlaneEvent, end: PlaneEvent) -> None:
        if abs(end.row - start.row) < 1 or abs(end.col - start.col) < 1:
            return
        lo, hi = _voxel_box(start.plane, start.rc, end.rc, start.slice_index, start.slice_index)
        roi_id = self.ctx.sink.add_roi(self.shape, lo, hi, start.plane, self.ctx.label)
        self.ctx.changed = [roi_id]

    def preview(self) -> list[Preview]:
        if self.start is None or self.current is None:
            return []
        kind = "ellipse" if self.shape == "ellipse" else "rect"
        return [
            Preview(
                kind,
                self.start.plane.name,
                self.start.slice_index,
                (self.start.rc, self.current.rc),
                self._size_text(),
            )
        ]


class RulerTool(_DragTool):
    """A distance between two points on a slice: millimetres when the image is calibrated
    (saying so when at the detector), pixels when it is not."""

    name, title = "ruler", "Ruler"

    def finish(self, start: PlaneEvent, end: PlaneEvent) -> None:
        if start.plane.distance_mm(start.rc, end.rc) <= 0:
            return
        end_on_start_slice = start.plane.to_volume(end.row, end.col, start.slice_index)
        ruler_id = self.ctx.sink.add_ruler(start.zyx, end_on_start_slice, self.ctx.label)
        self.ctx.changed = [ruler_id]

    def preview(self) -> list[Preview]:
        if self.start is None or self.current is None:
            return []
        text = self.start.plane.distance_text(self.start.rc, self.current.rc)
        return [
            Preview(
                "line",
                self.start.plane.name,
                self.start.slice_index,
                (self.start.rc, self.current.rc),
                text,
            )
        ]


class PointTool(Tool):
    """A single landmark per click."""

    name, title = "point", "Point"

    def press(self, ev: PlaneEvent) -> bool:
        if not ev.plane.contains(ev.row, ev.col):
            return False
        point_id = self.ctx.sink.add_point(np.rint(ev.zyx), self.ctx.label)
        self.ctx.changed = [point_id]
        return True


class PolygonTool(Tool):
    """Polygon by clicks (close on the first vertex, a double click or Return) or freehand by drag.

    With ``to_mask`` the closed outline is filled into the label map instead of being kept
    as a polygon annotation.
    """

    name, title = "polygon", "Polygon / freehand"
    #: a drag longer than this many pixels is a freehand outline
    freehand_px = 3.0

    def __init__(self, ctx, to_mask: bool = False) -> None:
        super().__init__(ctx)
        self.to_mask = to_mask
        if to_mask:
            self.name, self.title = "polygon_fill", "Outline into mask"
        self.vertices: list[tuple[float, float]] = []
        self.plane: Plane | None = None
        self.slice_index = 0
        self.hover_rc: tuple[float, float] | None = None
        self._dragging = False
        self._dragged = 0.0

    @property
    def busy(self) -> bool:
        return bool(self.vertices)

    def cancel(self) -> None:
        self.vertices, self.plane, self.hover_rc = [], None, None
        self._dragging, self._dragged = False, 0.0

    def _close_px(self) -> float:
        assert self.plane is not None
        return max(2.0, 0.015 * max(self.plane.size))

    def press(self, ev: PlaneEvent) -> bool:
        if self.vertices and (ev.plane != self.plane or ev.slice_index != self.slice_index):
            self.cancel()  # the slice changed under an unfinished outline: start again
        if not self.vertices:
            self.plane, self.slice_index = ev.plane, ev.slice_index
            self.vertices = [ev.rc]
            self._dragging, self._dragged = True, 0.0
            return True
        first = self.vertices[0]
        near_first = np.hypot(ev.row - first[0], ev.col - first[1]) <= self._close_px()
        if ev.double or (near_first and len(self.vertices) >= 3):
            self.finish()
            return True
        self.vertices.append(ev.rc)
        self._dragging, self._dragged = True, 0.0
        return True

    def move(self, ev: PlaneEvent) -> bool:
        self.hover_rc = ev.rc
        if not self._dragging or not self.vertices:
            return bool(self.vertices)
        last = self.vertices[-1]
        step = float(np.hypot(ev.row - last[0], ev.col - last[1]))
        if step >= 1.0:
            self.vertices.append(ev.rc)
            self._dragged += step
        return True

    def hover(self, ev: PlaneEvent) -> None:
        if self.vertices:
            self.hover_rc = ev.rc

    def release(self, ev: PlaneEvent) -> bool:
        if not self._dragging:
            return False
        self._dragging = False
        if self._dragged >= self.freehand_px and len(self.vertices) >= 3:
            self.finish()
        return True

    def key(self, key: str) -> bool:
        if key in ("Return", "Enter") and len(self.vertices) >= 3:
            self.finish()
            return True
        if key == "Backspace" and self.vertices:
            self.vertices.pop()
            if not self.vertices:
                self.cancel()
            return True
        return super().key(key)

    def finish(self) -> None:
        plane, pts = self.plane, np.asarray(self.vertices, dtype=float)
        slice_index = self.slice_index
        self.cancel()
        if plane is None or len(pts) < 3:
            return
        if self.to_mask:
            inside = polygon_mask(plane, pts)
            if not inside.any():
                return
            region3, mask3 = plane.embed(inside, slice_index)
            sink = self.ctx.sink
            sink.begin_stroke()
            sink.paint(region3, mask3, self.ctx.label)  # type: ignore[arg-type]
            sink.end_stroke()
            return
        poly_id = self.ctx.sink.add_polygon(
            plane.points_to_volume(pts, slice_index), self.ctx.label, plane, slice_index
        )
        self.ctx.changed = [poly_id] if poly_id else []  # "": filled into the mask

    def preview(self) -> list[Preview]:
        if not self.vertices or self.plane is None:
            return []
        pts = list(self.vertices)
        if self.hover_rc is not None and not self._dragging:
            pts.append(self.hover_rc)
        return [Preview("polyline", self.plane.name, self.slice_index, tuple(pts))]
