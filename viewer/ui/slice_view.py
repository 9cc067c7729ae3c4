"""SliceView: one plane of the open volume on pyqtgraph, with W/L, scroll, zoom, pan and overlays.

The scene is in millimetres (image top-left at 0, 0) so the locked aspect ratio shows
true anatomy whatever the pixel or slice spacing. Mouse: wheel scrolls, ctrl-wheel zooms,
right-drag windows, middle-drag pans, left-drag does the current ``left_mode``.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QVBoxLayout, QWidget

from viewer.ui.layers import Layer
from viewer.ui.overlays import BoxOverlay, RasterOverlay
from viewer.ui.planes import Plane
from viewer.ui.state import ViewerState
from viewer.ui.view_text import ViewText

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

LEFT_MODES = ("crosshair", "window", "zoom", "pan")
#: Modalities whose single images are cross-sections with a real patient orientation.
SECTIONAL_MODALITIES = ("CT", "MR", "PT", "NM")
_GREY = np.arange(256, dtype=np.uint8)


class _SliceViewBox(pg.ViewBox):
    """A ViewBox that hands wheel and drag events to its SliceView first."""

    def __init__(self, owner: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.owner = owner

    def wheelEvent(self, ev, axis=None):  # noqa: N802 (Qt override)
        self.owner.handle_wheel(ev)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        if not self.owner.handle_drag(ev):
            super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton and self.owner.left_mode == "crosshair":
            ev.accept()
            self.owner.move_cursor_to(self.mapSceneToView(ev.scenePos()))
        else:
            ev.ignore()


class SliceView(QWidget):
    """One plane ("axial", "coronal", "sagittal") of ``state``'s volume."""

    #: (z, y, x) voxel under the mouse, or None when it leaves the image.
    hovered = Signal(object)
    #: This view was clicked/scrolled: it becomes the active view.
    activated = Signal(str)

    def __init__(self, state: ViewerState, plane: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.plane = plane
        self.left_mode = "crosshair"
        self.show_crosshair = True
        self.text_visible = True
        self._shown_index: int | None = None
        self._hover_scene: QPointF | None = None
        self._fitted = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)

        self.graphics = pg.GraphicsView(self, background="k")
        self.view_box = _SliceViewBox(self)
        self.graphics.setCentralItem(self.view_box)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image)
        pen = pg.mkPen((80, 200, 255, 160), width=1)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self.v_line, self.h_line):
            line.setZValue(30)
            self.view_box.addItem(line, ignoreBounds=True)
        self.overlays: dict[str, RasterOverlay | BoxOverlay] = {}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

        self.text = ViewText(self.graphics)
        self.corner, self.letters = self.text.corner, self.text.letters
        self.scale_bar = self.text.scale_bar

        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.view_box.sigRangeChanged.connect(self._range_changed)
        state.volume_changed.connect(self._volume_changed)
        state.data_updated.connect(self._data_updated)
        state.cursor_moved.connect(self._cursor_moved)
        state.window_changed.connect(self._window_changed)
        state.layers.subscribe(self._layer_event)
        self._volume_changed()

    # ---- geometry ------------------------------------------------------------------------
    @property
    def geometry_(self) -> Plane | None:
        return self.state.planes.get(self.plane)

    def index(self) -> int:
        return self.state.slice_index(self.plane) if self.geometry_ else 0

    def image_rect(self) -> QRectF:
        g = self.geometry_
        return QRectF(0.0, 0.0, g.width_mm, g.height_mm) if g else QRectF(0, 0, 1, 1)

    def fit(self) -> None:
        """Fit the whole slice in the view (and keep it fitted on resize until zoomed)."""
        self.view_box.setRange(self.image_rect(), padding=0.02)
        self._fitted = True

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel along the columns."""
        g = self.geometry_
        px = self.view_box.viewPixelSize()[0]
        return float(g.col_spacing / px) if g and px > 0 else 1.0

    def zoom_by(self, factor: float, centre: QPointF | None = None) -> None:
        self._fitted = False
        self.view_box.scaleBy((1.0 / factor, 1.0 / factor), center=centre)

    # ---- drawing -------------------------------------------------------------------------
    def _volume_changed(self) -> None:
        g = self.geometry_
        self._shown_index = None
        self.setEnabled(g is not None)
        for overlay in list(self.overlays):
            self._remove_overlay(overlay)
        if g is None:
            self.image.clear()
            self.text.clear()
            return
        vol = self.state.volume
        # A projection image (CR/DX/MG...) carries no patient orientation in its geometry: the
        # identity direction it gets would print wrong letters, so show none.
        known = not vol.is_2d or vol.modality in SECTIONAL_MODALITIES  # type: ignore[union-attr]
        self.text.set_letters(g.edge_letters() if known else None)
        self._draw_image(force=True)
        self.image.setRect(self.image_rect())
        self.fit()
        self._cursor_moved()
        self.text.place()

    def _draw_image(self, force: bool = False) -> None:
        g, vol = self.geometry_, self.state.volume
        if g is None or vol is None:
            return
        index = self.index()
        if not force and index == self._shown_index:
            return
        self._shown_index = index
        data = g.slice_of(vol.array, index)
        if vol.is_rgb:
            levels = (0, 255) if data.dtype == np.uint8 else (float(data.min()), float(data.max()))
            self.image.setImage(data, autoLevels=False, levels=levels, lut=None)
        else:
            lut = _GREY[::-1] if self.state.invert else _GREY
            self.image.setImage(data, autoLevels=False, levels=self.state.levels(), lut=lut)
        for overlay in self.overlays.values():
            overlay.refresh(g, index)

    def _data_updated(self) -> None:
        self._draw_image(force=True)

    def _window_changed(self) -> None:
        if self.geometry_ is None or self.state.is_rgb:
            self._update_text()
            return
        self.image.setLevels(self.state.levels())
        self.image.setLookupTable(_GREY[::-1] if self.state.invert else _GREY)
        self._update_text()

    def _cursor_moved(self) -> None:
        g = self.geometry_
        if g is None:
            return
        shown = self._shown_index
        self._draw_image()
        if shown != self._shown_index and self._hover_scene is not None and self.underMouse():
            # The slice changed under a still mouse (wheel, keys, cine): refresh the value.
            self._mouse_moved(self._hover_scene)
        _, row, col = g.from_voxel(self.state.cursor)
        x, y = g.pixel_to_scene(row, col)
        self.v_line.setPos(x)
        self.h_line.setPos(y)
        show = self.show_crosshair and not self.state.volume.is_2d  # type: ignore[union-attr]
        self.v_line.setVisible(show)
        self.h_line.setVisible(show)
        self._update_text()

    def set_crosshair_visible(self, visible: bool) -> None:
        self.show_crosshair = visible
        self._cursor_moved()

    def set_text_visible(self, visible: bool) -> None:
        self.text_visible = visible
        self.text.set_visible(visible)

    def _update_text(self) -> None:
        g, vol = self.geometry_, self.state.volume
        if g is not None and vol is not None:
            self.text.update(g, vol, self.state, self.plane, self.index(), self.zoom_factor())

    def _range_changed(self, *_: object) -> None:
        self.scale_bar.set_mm_per_pixel(self.view_box.viewPixelSize()[0])
        self._update_text()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.text.place()
        if self._fitted:
            self.fit()

    # ---- overlays ------------------------------------------------------------------------
    def _layer_event(self, event: str, layer: Layer) -> None:
        if event == "removed":
            self._remove_overlay(layer.name)
            return
        g = self.geometry_
        if g is None:
            return
        if event == "added" or layer.name not in self.overlays:
            self._remove_overlay(layer.name)
            if layer.kind == "boxes":
                overlay: RasterOverlay | BoxOverlay = BoxOverlay(layer, self.view_box)
            else:
                overlay = RasterOverlay(layer)
                self.view_box.addItem(overlay, ignoreBounds=True)
            self.overlays[layer.name] = overlay
        overlay = self.overlays[layer.name]
        if isinstance(overlay, RasterOverlay):
            overlay.layer_changed()
        overlay.refresh(g, self.index())

    def _remove_overlay(self, name: str) -> None:
        overlay = self.overlays.pop(name, None)
        if isinstance(overlay, BoxOverlay):
            overlay.clear()
        elif overlay is not None:
            self.view_box.removeItem(overlay)

    # ---- input ---------------------------------------------------------------------------
    def scene_to_voxel(self, pos: QPointF) -> np.ndarray | None:
        """View (mm) position -> (z, y, x) voxel indices on this view's slice, None outside."""
        g = self.geometry_
        if g is None:
            return None
        row, col = g.scene_to_pixel(pos.x(), pos.y())
        if not (-0.5 <= row < g.n_rows - 0.5 and -0.5 <= col < g.n_cols - 0.5):
            return None
        return g.to_voxel(self.index(), row, col)

    def move_cursor_to(self, pos: QPointF) -> None:
        zyx = self.scene_to_voxel(pos)
        if zyx is not None:
            self.activated.emit(self.plane)
            self.state.set_cursor(zyx)

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self.geometry_ is None:
            return
        self._hover_scene = scene_pos
        self.hovered.emit(self.scene_to_voxel(self.view_box.mapSceneToView(scene_pos)))

    def handle_wheel(self, ev) -> None:
        if self.geometry_ is None:
            return
        ev.accept()
        self.activated.emit(self.plane)
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            centre = self.view_box.mapSceneToView(ev.scenePos())
            self.zoom_by(1.15 if delta > 0 else 1 / 1.15, centre)
        elif delta:
            # Wheel away from the user goes to the next slice, like most PACS viewers.
            self.state.step_slice(self.plane, 1 if delta > 0 else -1)

    def handle_drag(self, ev) -> bool:
        """Right-drag windows; left-drag follows ``left_mode``. False: default (pan)."""
        button = ev.button()
        mode = "window" if button == Qt.MouseButton.RightButton else None
        if button == Qt.MouseButton.LeftButton:
            mode = self.left_mode
        if mode in (None, "pan"):
            self._fitted = False
            return False
        ev.accept()
        self.activated.emit(self.plane)
        delta = ev.screenPos() - ev.lastScreenPos()
        if mode == "window":
            if not self.state.is_rgb:
                # Sensitivity follows the current width so fine and coarse windows both work.
                step = max(self.state.width, 10.0) / 250.0
                self.state.set_window(
                    self.state.center - delta.y() * step, self.state.width + delta.x() * step
                )
        elif mode == "zoom":
            centre = self.view_box.mapSceneToView(ev.buttonDownScenePos())
            self.zoom_by(float(np.exp(-delta.y() * 0.01)), centre)
        else:  # crosshair
            self.move_cursor_to(self.view_box.mapSceneToView(ev.scenePos()))
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        g = self.geometry_
        if g is None:
            super().keyPressEvent(event)
            return
        page = max(1, g.n_slices // 10)
        key = event.key()
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_PageUp: page,
            Qt.Key.Key_PageDown: -page,
        }
        if key in steps:
            self.state.step_slice(self.plane, steps[key])
        elif key == Qt.Key.Key_Home:
            self.state.set_slice(self.plane, 0)
        elif key == Qt.Key.Key_End:
            self.state.set_slice(self.plane, g.n_slices - 1)
        else:
            super().keyPressEvent(event)
            return
        event.accept()
