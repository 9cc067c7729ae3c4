"""Qt items that draw annotations and tool previews on one SliceView (scene units: mm).

Vector annotations are few, so each refresh rebuilds this view's items; the mask is a
raster layer drawn by ``viewer.ui.overlays`` and refreshed slice by slice elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
)

from viewer.labels.model import (
    Annotation,
    Box,
    LabelError,
    LabelSet,
    Point,
    Polygon,
    RoiEllipse,
    RoiRect,
    Ruler,
)
from viewer.labels.planar import cut_segments
from viewer.labels.stats import RoiStats, roi_stats
from viewer.study.volume import Volume
from viewer.ui.calibration import Calibration
from viewer.ui.tools.base import Preview
from viewer.ui.tools.planes import Plane

#: pen style per review status: a proposal is dashed until someone decides
STATUS_STYLE = {
    "proposed": Qt.PenStyle.DashLine,
    "accepted": Qt.PenStyle.SolidLine,
    "edited": Qt.PenStyle.SolidLine,
    "rejected": Qt.PenStyle.DotLine,
}
PREVIEW_COLOUR = QColor(255, 255, 255)
HANDLE_MM_PX = 7.0  # handle squares, in screen pixels


def format_stats(stats: RoiStats, unit: str = "HU", cal: Calibration | None = None) -> str:
    """The caption beside an ROI: mean ± SD, range, area (in pixels without calibrated
    spacing) and volume (only with spacing in the patient)."""
    if stats.voxels == 0:
        return "empty ROI"
    cal = cal or Calibration()
    area = cal.area_text(stats.voxels, stats.area_mm2 / stats.voxels)
    volume = f"  {stats.volume_ml:.3f} mL" if cal.source == "patient" else ""
    return (
        f"{stats.mean:.1f} ± {stats.sd:.1f} {unit}\n"
        f"min {stats.min:.0f}  max {stats.max:.0f}\n"
        f"{area}{volume}"
    )


class ViewDrawing:
    """The annotation and preview items of one view; ``scene_of`` maps voxel (z, y, x) to mm."""

    def __init__(self, view) -> None:  # view: viewer.ui.slice_view.SliceView
        self.view = view
        self.items: list[QGraphicsItem] = []
        self.preview_items: list[QGraphicsItem] = []
        self._stats: dict[Annotation, str] = {}

    # ---- mapping --------------------------------------------------------------------------
    def scene_of(self, zyx: Iterable[float]) -> QPointF:
        g = self.view.geometry_
        _, row, col = g.from_voxel(np.asarray(list(zyx), dtype=float))
        x, y = g.pixel_to_scene(row, col)
        return QPointF(x, y)

    def _on_slice(self, zyx: Iterable[float], index: int) -> bool:
        return abs(float(list(zyx)[self.view.geometry_.normal_axis]) - index) <= 0.5

    def _add(self, item: QGraphicsItem, z: float = 25, preview: bool = False) -> QGraphicsItem:
        item.setZValue(z)
        self.view.view_box.addItem(item, ignoreBounds=True)
        (self.preview_items if preview else self.items).append(item)
        return item

    @staticmethod
    def _pen(colour: QColor, width: float = 2.0, style=Qt.PenStyle.SolidLine) -> QPen:
        pen = QPen(colour)
        pen.setCosmetic(True)  # the same screen width at any zoom
        pen.setWidthF(width)
        pen.setStyle(style)
        return pen

    def _text(self, text: str, at: QPointF, colour: QColor, anchor=(0, 1), preview=False) -> None:
        item = pg.TextItem(text, color=colour, anchor=anchor, fill=pg.mkBrush(0, 0, 0, 150))
        item.setPos(at)
        self._add(item, 27, preview)

    def clear(self) -> None:
        for item in self.items:
            self.view.view_box.removeItem(item)
        self.items = []

    def clear_preview(self) -> None:
        for item in self.preview_items:
            self.view.view_box.removeItem(item)
        self.preview_items = []

    # ---- annotations ----------------------------------------------------------------------
    def refresh(
        self,
        annotations: Iterable[Annotation],
        label_set: LabelSet,
        volume: Volume | None,
        selected: str | None,
    ) -> None:
        self.clear()
        g = self.view.geometry_
        if g is None:
            return
        index = self.view.index()
        for a in annotations:
            colour = QColor(label_set.get(a.label).color if a.label in label_set else "#ffffff")
            if a.status == "rejected":
                colour = QColor(150, 150, 150)
            name = label_set.get(a.label).name if a.label in label_set else str(a.label)
            if isinstance(a, Box):
                self._box(a, index, colour, name, a.id == selected)
            elif isinstance(a, RoiRect):  # RoiEllipse is a RoiRect too
                self._roi(a, index, colour, volume)
            elif isinstance(a, Polygon):
                self._polygon(a, index, colour)
            elif isinstance(a, Point):
                if self._on_slice(a.zyx, index):
                    p = self.scene_of(a.zyx)
                    r = 0.8 * max(g.row_spacing, g.col_spacing)
                    dot = QGraphicsEllipseItem(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
                    dot.setPen(self._pen(colour))
                    dot.setBrush(QBrush(colour))
                    self._add(dot)
            elif isinstance(a, Ruler):
                if self._on_slice(a.start, index) and self._on_slice(a.end, index):
                    p, q = self.scene_of(a.start), self.scene_of(a.end)
                    self._add(QGraphicsLineItem(p.x(), p.y(), q.x(), q.y())).setPen(
                        self._pen(colour)
                    )
                    text = Calibration.of(volume).ruler_text(a.start, a.end)
                    self._text(text, q, colour, anchor=(0, 0))

    def _box(self, a: Box, index: int, colour: QColor, name: str, selected: bool) -> None:
        lo, hi = a.bounds_zyx()
        n = self.view.geometry_.normal_axis
        if not (lo[n] - 0.5 <= index <= hi[n] + 0.5):
            return
        rect = self.voxel_rect(lo, hi)
        item = QGraphicsRectItem(rect)
        item.setPen(self._pen(colour, 3.0 if selected else 2.0, STATUS_STYLE[a.status]))
        self._add(item)
        score = f" {a.score:.2f}" if a.score is not None else ""
        who = f" {a.status}" if a.from_model else ""
        self._text(f"{name}{score}{who}", rect.topLeft(), colour)
        if selected:
            self._handles(rect, colour)

    def voxel_rect(self, lo: Iterable[float], hi: Iterable[float]) -> QRectF:
        """Scene rectangle around voxels lo..hi inclusive (outer pixel edges) on this plane."""
        g = self.view.geometry_
        _, r0, c0 = g.from_voxel(np.asarray(list(lo), dtype=float))
        _, r1, c1 = g.from_voxel(np.asarray(list(hi), dtype=float))
        rlo, rhi = sorted((r0, r1))
        clo, chi = sorted((c0, c1))
        return QRectF(
            clo * g.col_spacing,
            rlo * g.row_spacing,
            (chi - clo + 1) * g.col_spacing,
            (rhi - rlo + 1) * g.row_spacing,
        )

    def _handles(self, rect: QRectF, colour: QColor) -> None:
        px = self.view.view_box.viewPixelSize()
        w, h = HANDLE_MM_PX * px[0], HANDLE_MM_PX * px[1]
        for corner in (rect.topLeft(), rect.topRight(), rect.bottomLeft(), rect.bottomRight()):
            handle = QGraphicsRectItem(QRectF(corner.x() - w / 2, corner.y() - h / 2, w, h))
            handle.setPen(self._pen(colour, 1.0))
            handle.setBrush(QBrush(colour))
            self._add(handle, 26)

    def _planar_here(self, a: Polygon | RoiRect, index: int, colour: QColor) -> bool:
        """True when ``a`` lies on this view's slice; on another plane, draw where this
        view's slice cuts it (a line) and return False."""
        n = self.view.geometry_.normal_axis
        if n == a.axis:
            return a.z == index
        for p, q in cut_segments(a, n, index):
            s, t = self.scene_of(p), self.scene_of(q)
            line = QGraphicsLineItem(s.x(), s.y(), t.x(), t.y())
            self._add(line).setPen(self._pen(colour, 2.0, STATUS_STYLE[a.status]))  # type: ignore[attr-defined]
        return False

    def _polygon(self, a: Polygon, index: int, colour: QColor) -> None:
        if not self._planar_here(a, index, colour):
            return
        path = QPainterPath()
        for i, zyx in enumerate(a.points()):
            p = self.scene_of(zyx)
            path.moveTo(p) if i == 0 else path.lineTo(p)
        path.closeSubpath()
        item = QGraphicsPathItem(path)
        item.setPen(self._pen(colour, 2.0, STATUS_STYLE[a.status]))
        self._add(item)

    def _roi(self, a: RoiRect, index: int, colour: QColor, volume: Volume | None) -> None:
        if not self._planar_here(a, index, colour):
            return
        rect = self.voxel_rect(*a.points())
        item = QGraphicsEllipseItem(rect) if isinstance(a, RoiEllipse) else QGraphicsRectItem(rect)
        item.setPen(self._pen(colour))
        self._add(item)
        if volume is not None and not volume.is_rgb:
            if a not in self._stats:
                try:
                    unit = "HU" if volume.modality == "CT" else ""
                    self._stats[a] = format_stats(
                        roi_stats(volume, a), unit, Calibration.of(volume)
                    )
                except LabelError as exc:
                    self._stats[a] = str(exc)
            # Beside the ROI, on the side with more room, so the numbers are not cut off.
            left = rect.center().x() > self.view.geometry_.width_mm / 2
            at = rect.topLeft() if left else rect.topRight()
            self._text(self._stats[a], at, colour, anchor=(1, 0) if left else (0, 0))

    # ---- previews -------------------------------------------------------------------------
    def show_preview(self, previews: Iterable[Preview], plane: Plane) -> None:
        self.clear_preview()
        g = self.view.geometry_
        if g is None:
            return
        pen = self._pen(PREVIEW_COLOUR, 1.5, Qt.PenStyle.DashLine)
        for pv in previews:
            pts = [self.scene_of(plane.to_volume(r, c, pv.slice_index)) for r, c in pv.points_rc]
            if not pts:
                continue
            if pv.kind in ("rect", "ellipse") and len(pts) == 2:
                rect = QRectF(pts[0], pts[1]).normalized()
                cls = QGraphicsEllipseItem if pv.kind == "ellipse" else QGraphicsRectItem
                self._add(cls(rect), 28, True).setPen(pen)  # type: ignore[attr-defined]
            elif pv.kind in ("polyline", "polygon"):
                path = QPainterPath(pts[0])
                for p in pts[1:]:
                    path.lineTo(p)
                if pv.kind == "polygon":
                    path.closeSubpath()
                self._add(QGraphicsPathItem(path), 28, True).setPen(pen)  # type: ignore[attr-defined]
            elif pv.kind == "line" and len(pts) == 2:
                line = QGraphicsLineItem(pts[0].x(), pts[0].y(), pts[1].x(), pts[1].y())
                self._add(line, 28, True).setPen(pen)  # type: ignore[attr-defined]
            elif pv.kind == "circle":
                # radius_rc is in the tool plane's rows/cols, which are the screen's rows/cols.
                rx, ry = pv.radius_rc[1] * g.col_spacing, pv.radius_rc[0] * g.row_spacing
                c = pts[0]
                circle = QGraphicsEllipseItem(QRectF(c.x() - rx, c.y() - ry, 2 * rx, 2 * ry))
                self._add(circle, 28, True).setPen(self._pen(PREVIEW_COLOUR, 1.5))  # type: ignore[attr-defined]
            if pv.text:
                self._text(pv.text, pts[-1], PREVIEW_COLOUR, anchor=(0, 0), preview=True)
