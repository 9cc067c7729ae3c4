"""SliceView: one plane of the open volume on pyqtgraph, with W/L, scroll, zoom, pan and overlays.

The scene is in millimetres (image top-left at 0, 0) so the locked aspect ratio shows
true anatomy whatever the pixel or slice spacing. Mouse: wheel scrolls, ctrl-wheel zooms,
right-drag windows, middle-drag pans, left-drag does the current ``left_mode``;
Ctrl+left-drag in crosshair mode turns the linked crosshair (oblique MPR): the other views
then show slices resampled along their tilted planes (``viewer.ui.oblique``). The state's
slab (MIP / MinIP / mean over a thickness) applies to every view, oblique or not.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from viewer.study.facts import has_patient_orientation
from viewer.ui.crosshair import Crosshair
from viewer.ui.layers import Layer
from viewer.ui.oblique import OUTSIDE, ObliqueSlice
from viewer.ui.overlays import BoxOverlay, RasterOverlay
from viewer.ui.planes import Plane
from viewer.ui.slab import slab_of
from viewer.ui.slice_image import SliceImage
from viewer.ui.state import ViewerState
from viewer.ui.view_input import ViewInput
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


class SliceView(ViewInput, QWidget):
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
        self._shown_key: tuple | None = None
        self._shown_voi = False  # whether the image shown went through the VOI LUT
        self._shown_rect = QRectF()
        self._hover_scene: QPointF | None = None
        self._fitted = False
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)

        self.graphics = pg.GraphicsView(self, background="k")
        self.view_box = _SliceViewBox(self)
        self.graphics.setCentralItem(self.view_box)
        self.image = SliceImage(axisOrder="row-major")
        self.view_box.addItem(self.image)
        self.crosshair = Crosshair(self.view_box, plane)
        self.v_line, self.h_line = self.crosshair.vertical, self.crosshair.horizontal
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
        state.oblique_changed.connect(self._oblique_changed)
        state.slab_changed.connect(self._slab_changed)
        state.layers.subscribe(self._layer_event)
        self._volume_changed()

    # ---- geometry ------------------------------------------------------------------------
    @property
    def plane_geometry(self) -> Plane | None:
        """The orthogonal plane this view is (or was, before it was tilted)."""
        return self.state.planes.get(self.plane)

    @property
    def oblique(self) -> ObliqueSlice | None:
        """The resampling geometry while this view's plane is tilted, else None."""
        return self.state.oblique_slice(self.plane)

    @property
    def geometry_(self) -> Plane | None:
        """The un-resampled plane the tools and overlays draw on; None while the view shows a
        resampled oblique slice (no tool draws on an interpolated image)."""
        g = self.plane_geometry
        return None if g is None or self.oblique is not None else g

    def index(self) -> int:
        return self.state.slice_index(self.plane) if self.plane_geometry else 0

    def image_rect(self) -> QRectF:
        ob = self.oblique
        if ob is not None:
            return QRectF(0.0, 0.0, ob.width_mm, ob.height_mm)
        g = self.plane_geometry
        return QRectF(0.0, 0.0, g.width_mm, g.height_mm) if g else QRectF(0, 0, 1, 1)

    def pixel_mm(self) -> float:
        """Scene millimetres per image pixel along the columns."""
        ob = self.oblique
        if ob is not None:
            return ob.pixel_mm
        g = self.plane_geometry
        return g.col_spacing if g is not None else 1.0

    def fit(self) -> None:
        """Fit the whole slice in the view (and keep it fitted on resize until zoomed)."""
        self.view_box.setRange(self.image_rect(), padding=0.02)
        self._fitted = True

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel along the columns."""
        px = self.view_box.viewPixelSize()[0]
        return float(self.pixel_mm() / px) if self.plane_geometry and px > 0 else 1.0

    def zoom_by(self, factor: float, centre: QPointF | None = None) -> None:
        self._fitted = False
        self.view_box.scaleBy((1.0 / factor, 1.0 / factor), center=centre)

    # ---- drawing -------------------------------------------------------------------------
    def _volume_changed(self) -> None:
        g = self.plane_geometry
        self._shown_index = self._shown_key = None
        self.setEnabled(g is not None)
        for overlay in list(self.overlays):
            self._remove_overlay(overlay)
        if g is None:  # no image on this plane (none loaded, or a 2D image off its plane)
            self.image.clear()
            self.text.clear()
            self.crosshair.hide()
            return
        self._set_letters()
        self._draw_image(force=True)
        self._shown_rect = self.image_rect()
        self.image.setRect(self._shown_rect)
        self.fit()
        self._cursor_moved()
        self.text.place()

    def orientation_known(self) -> bool:
        """Whether this image has a patient orientation: letters and plane names mean something."""
        vol = self.state.volume
        if vol is None or not has_patient_orientation(vol):
            return False
        # A projection image (CR/DX/MG...) carries no patient orientation in its geometry: the
        # identity direction it gets would print wrong letters, so show none.
        return not vol.is_2d or vol.modality in SECTIONAL_MODALITIES

    def _set_letters(self) -> None:
        g = self.plane_geometry
        if g is None or not self.orientation_known():
            self.text.set_letters(None)
            return
        ob = self.oblique
        self.text.set_letters(ob.frame.edge_letters() if ob is not None else g.edge_letters())

    def _oblique_changed(self) -> None:
        """The planes turned (or were reset): resample, re-letter and re-place this view."""
        if self.plane_geometry is None:
            return
        old = self._shown_rect
        self._set_letters()
        self._draw_image(force=True)
        rect = self.image_rect()
        self.image.setRect(rect)
        self._shown_rect = rect
        for name in list(self.overlays):
            self._refresh_overlay(self.overlays[name])
        if rect != old:
            self.fit()  # into or out of oblique: the scene changed; turning keeps it
        self._cursor_moved()
        self._range_changed()

    def _depth(self, ob: ObliqueSlice) -> float:
        return ob.depth_of(self.state.cursor_patient())

    def _draw_image(self, force: bool = False) -> None:
        g, vol = self.plane_geometry, self.state.volume
        if g is None or vol is None:
            return
        index = self.index()
        ob = self.oblique
        key = (index,) if ob is None else ("oblique", round(self._depth(ob), 4))
        if not force and key == self._shown_key:
            return
        self._shown_index, self._shown_key = index, key
        slab = self.state.slab
        if ob is not None:
            data = ob.sample_slab(vol.array, self._depth(ob), slab, background=OUTSIDE)
        elif slab.active and not vol.is_rgb:
            data = slab_of(g, vol.array, index, slab)
        else:
            data = g.slice_of(vol.array, index)
        if vol.is_rgb:
            levels = (0, 255) if data.dtype == np.uint8 else (float(data.min()), float(data.max()))
            self.image.setImage(data, autoLevels=False, levels=levels, lut=None)
        else:
            lut = _GREY[::-1] if self.state.invert else _GREY
            data = self.state.display_values(data)
            self._shown_voi = self.state.voi_lut
            self.image.setImage(data, autoLevels=False, levels=self.state.levels(), lut=lut)
        for overlay in self.overlays.values():
            self._refresh_overlay(overlay)

    def _refresh_overlay(self, overlay: RasterOverlay | BoxOverlay) -> None:
        g, ob = self.plane_geometry, self.oblique
        if g is None:
            return
        if ob is None:
            overlay.refresh(g, self.index())
        elif isinstance(overlay, RasterOverlay):
            overlay.refresh_oblique(ob, self._depth(ob))
        else:
            overlay.clear()  # boxes are drawn on the planes they were found on

    def _slab_changed(self) -> None:
        self._draw_image(force=True)
        self._update_text()

    def _data_updated(self) -> None:
        self._draw_image(force=True)

    def _window_changed(self) -> None:
        if self.plane_geometry is None or self.state.is_rgb:
            self._update_text()
            return
        if self.state.voi_lut != self._shown_voi:  # other values, not only other levels
            self._draw_image(force=True)
        self.image.setLevels(self.state.levels())
        self.image.setLookupTable(_GREY[::-1] if self.state.invert else _GREY)
        self._update_text()

    def cursor_scene(self) -> QPointF:
        """Where the cursor lies in this view's scene (mm)."""
        ob, g = self.oblique, self.plane_geometry
        if ob is not None:
            x, y, _ = ob.scene_of(self.state.cursor_patient())
            return QPointF(x, y)
        assert g is not None
        _, row, col = g.from_voxel(self.state.cursor)
        x, y = g.pixel_to_scene(row, col)
        return QPointF(x, y)

    def _cursor_moved(self) -> None:
        g = self.plane_geometry
        if g is None:
            return
        shown = self._shown_key
        self._draw_image()
        if shown != self._shown_key and self._hover_scene is not None and self.underMouse():
            # The slice changed under a still mouse (wheel, keys, cine): refresh the value.
            self._mouse_moved(self._hover_scene)
        show = self.show_crosshair and len(self.state.planes) == 3
        others = {p: self.state.frame(p) for p in self.state.planes if p != self.plane}
        own = self.state.frame(self.plane)
        self.crosshair.update(own, others, self.cursor_scene(), show)
        self._update_text()

    def set_crosshair_visible(self, visible: bool) -> None:
        self.show_crosshair = visible
        self._cursor_moved()

    def set_text_visible(self, visible: bool) -> None:
        self.text_visible = visible
        self.text.set_visible(visible)

    def _update_text(self) -> None:
        g, vol = self.plane_geometry, self.state.volume
        if g is not None and vol is not None:
            self.text.update(
                g, vol, self.state, self.plane, self.index(), self.zoom_factor(), self.oblique
            )

    def _range_changed(self, *_: object) -> None:
        vol = self.state.volume
        if vol is not None and self.plane_geometry is not None:
            self.text.set_scale(vol, self.view_box.viewPixelSize()[0], self.pixel_mm())
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
        g = self.plane_geometry
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
        self._refresh_overlay(overlay)

    def _remove_overlay(self, name: str) -> None:
        overlay = self.overlays.pop(name, None)
        if isinstance(overlay, BoxOverlay):
            overlay.clear()
        elif overlay is not None:
            self.view_box.removeItem(overlay)
