"""Persistent pyqtgraph items that draw one overlay layer (labels, heat map, boxes) on a plane.

Every item lives in the SliceView's scene, whose units are millimetres with the image's
top-left corner at (0, 0); each item places itself with the plane's spacing so one voxel
of the overlay covers exactly one voxel of the image on every plane.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from viewer.ui.layers import BoxItem, Layer
from viewer.ui.oblique import ObliqueSlice
from viewer.ui.planes import Plane

# (position, r, g, b) anchors for the heat-map colour maps; interpolated to 256 entries.
_HEAT_ANCHORS: dict[str, list[tuple[float, int, int, int]]] = {
    "hot": [(0.0, 80, 0, 0), (0.35, 230, 30, 0), (0.7, 255, 200, 0), (1.0, 255, 255, 230)],
    "jet": [(0.0, 0, 0, 160), (0.35, 0, 200, 255), (0.65, 255, 230, 0), (1.0, 200, 0, 0)],
}


def heat_lut(name: str) -> np.ndarray:
    """(256, 3) uint8 colour table for a heat-map colour map name."""
    if name not in _HEAT_ANCHORS:
        raise ValueError(f"unknown colour map {name!r}; known: {sorted(_HEAT_ANCHORS)}")
    anchors = np.asarray(_HEAT_ANCHORS[name], dtype=float)
    t = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(t, anchors[:, 0], anchors[:, i]) for i in (1, 2, 3)], -1).astype(
        np.uint8
    )


def label_outline(labels: np.ndarray) -> np.ndarray:
    """Labels kept only where a 4-neighbour differs (the region's boundary), else 0."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return np.where(edge, labels, 0).astype(labels.dtype)


def heat_rgba(heat: np.ndarray, colour_map: str, threshold: float) -> np.ndarray:
    """(rows, cols, 4) RGBA of a 2D heat slice in [0, 1]; below ``threshold`` is transparent."""
    h = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0)
    h = np.clip(h, 0.0, 1.0)
    idx = (h * 255).astype(np.uint8)
    rgba = np.empty(h.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = heat_lut(colour_map)[idx]
    rgba[..., 3] = np.where(h >= threshold, 255, 0)
    return rgba


def box_rect_on_plane(box: BoxItem, geom: Plane, index: int) -> QRectF | None:
    """Scene rectangle (mm) of ``box`` on slice ``index`` of a plane, or None if not cut."""
    n = geom.normal_axis
    if not (box.lo_zyx[n] - 0.5 <= index <= box.hi_zyx[n] + 0.5):
        return None
    _, r0, c0 = geom.from_voxel(box.lo_zyx)
    _, r1, c1 = geom.from_voxel(box.hi_zyx)
    rlo, rhi = sorted((r0, r1))
    clo, chi = sorted((c0, c1))
    # Outer voxel edges: a pixel's centre (row + 0.5) * spacing, its edges +- half a pixel.
    x0, y0 = clo * geom.col_spacing, rlo * geom.row_spacing
    x1, y1 = (chi + 1) * geom.col_spacing, (rhi + 1) * geom.row_spacing
    return QRectF(x0, y0, x1 - x0, y1 - y0)


class RasterOverlay(pg.ImageItem):
    """A label map or heat map drawn as an RGBA image over the slice."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(axisOrder="row-major")
        self.layer = layer
        self.setZValue(10)
        self._lut = layer.label_lut() if layer.kind == "labels" else None

    def refresh(self, geom: Plane, index: int) -> None:
        layer = self.layer
        arr = layer.data
        assert isinstance(arr, np.ndarray)
        self.setVisible(layer.visible)
        self.setOpacity(layer.opacity)
        if not layer.visible:
            return
        if arr.shape[:3] != geom.volume_shape:
            self.setVisible(False)  # a layer for another series: never draw it misaligned
            return
        sl = geom.slice_of(arr, index)
        if layer.kind == "labels":
            self._show_labels(sl)
        else:
            self.setImage(
                heat_rgba(sl, layer.colour_map, layer.threshold),
                autoLevels=False,
                levels=(0, 255),
                lut=None,
            )
        self.setRect(QRectF(0.0, 0.0, geom.width_mm, geom.height_mm))

    def _show_labels(self, labels: np.ndarray) -> None:
        """The label slice itself with the layer's RGBA table as its colour table: Qt draws
        it as an indexed image, with no per-pixel pass in Python (a 512×512 RGBA slice cost
        ~3 ms a view at every scroll step)."""
        if self._lut is None:
            self._lut = self.layer.label_lut()
        lab = label_outline(labels) if self.layer.outline else labels
        self.setImage(np.ascontiguousarray(lab), autoLevels=False, levels=None, lut=self._lut)

    def drawn_rgba(self) -> np.ndarray | None:
        """(rows, cols, 4) RGBA of what this overlay draws now, or None before its first slice."""
        if self.image is None:
            return None
        if self.layer.kind == "labels" and self.image.ndim == 2:
            lut = self._lut if self._lut is not None else self.layer.label_lut()
            return lut[self.image]
        return self.image

    def refresh_oblique(self, oblique: ObliqueSlice, depth: float) -> None:
        """Draw the layer on a tilted plane: labels resampled nearest-neighbour (no invented
        classes), heat maps linearly."""
        layer = self.layer
        arr = layer.data
        assert isinstance(arr, np.ndarray)
        self.setVisible(layer.visible)
        self.setOpacity(layer.opacity)
        if not layer.visible:
            return
        if arr.shape[:3] != oblique.grid.shape or arr.ndim != 3:
            self.setVisible(False)
            return
        if layer.kind == "labels":
            self._show_labels(oblique.sample(arr, depth, order=0))
        else:
            rgba = heat_rgba(oblique.sample(arr, depth, order=1), layer.colour_map, layer.threshold)
            self.setImage(rgba, autoLevels=False, levels=(0, 255), lut=None)
        self.setRect(QRectF(0.0, 0.0, oblique.width_mm, oblique.height_mm))

    def layer_changed(self) -> None:
        self._lut = None


class BoxOverlay:
    """Rectangles with 'label score' captions for the boxes a plane cuts through."""

    def __init__(self, layer: Layer, view_box: pg.ViewBox) -> None:
        self.layer = layer
        self.view_box = view_box
        self.items: list[object] = []

    def clear(self) -> None:
        for item in self.items:
            self.view_box.removeItem(item)
        self.items = []

    def refresh(self, geom: Plane, index: int) -> None:
        self.clear()
        if not self.layer.visible:
            return
        for box in self.layer.data:
            assert isinstance(box, BoxItem)
            rect = box_rect_on_plane(box, geom, index)
            if rect is None:
                continue
            colour = QColor(*box.colour)
            colour.setAlphaF(max(self.layer.opacity, 0.25))
            rect_item = QGraphicsRectItem(rect)
            pen = QPen(colour)
            pen.setCosmetic(True)  # stays 2 screen pixels wide at any zoom
            pen.setWidthF(2.0)
            rect_item.setPen(pen)
            rect_item.setBrush(Qt.BrushStyle.NoBrush)
            rect_item.setZValue(20)
            self.view_box.addItem(rect_item, ignoreBounds=True)
            self.items.append(rect_item)
            caption = box.label + (f" {box.score:.2f}" if box.score is not None else "")
            if caption.strip():
                # A translucent dark plate keeps the caption legible over bright or same-colour pixels.
                text = pg.TextItem(
                    caption, color=colour, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150)
                )
                text.setPos(rect.left(), rect.top())
                text.setZValue(21)
                self.view_box.addItem(text, ignoreBounds=True)
                self.items.append(text)

    @property
    def rects(self) -> list[QRectF]:
        """Scene rectangles currently drawn (for tests and hit-testing)."""
        return [i.rect() for i in self.items if isinstance(i, QGraphicsRectItem)]
