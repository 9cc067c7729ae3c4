"""Mouse and keys of a slice view: click and drag move the crosshair, Ctrl+drag turns it
(oblique MPR), right-drag windows, the wheel and arrow keys scroll, Ctrl+wheel zooms.

A mixin of ``viewer.ui.slice_view.SliceView`` (placed before QWidget so its Qt overrides
win), kept apart so the view module holds only drawing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QKeyEvent

from viewer.ui.crosshair import drag_turn

if TYPE_CHECKING:
    from viewer.ui.slice_view import SliceView


class ViewInput:
    """Input handlers of a SliceView (``self`` is the view)."""

    # ---- input ---------------------------------------------------------------------------
    def scene_to_voxel(self: SliceView, pos: QPointF) -> np.ndarray | None:
        """View (mm) position -> (z, y, x) voxel indices on this view's slice, None outside."""
        g, ob, vol = self.plane_geometry, self.oblique, self.state.volume
        if g is None or vol is None:
            return None
        if ob is not None:
            lps = ob.patient_of(pos.x(), pos.y(), self._depth(ob))
            zyx = np.asarray(vol.patient_to_index(lps), dtype=float)
            inside = np.all(zyx >= -0.5) and np.all(zyx < np.asarray(vol.shape) - 0.5)
            return zyx if inside else None
        row, col = g.scene_to_pixel(pos.x(), pos.y())
        if not (-0.5 <= row < g.n_rows - 0.5 and -0.5 <= col < g.n_cols - 0.5):
            return None
        return g.to_voxel(self.index(), row, col)

    def move_cursor_to(self: SliceView, pos: QPointF) -> None:
        zyx = self.scene_to_voxel(pos)
        if zyx is not None:
            self.activated.emit(self.plane)
            self.state.set_cursor(zyx)

    def _mouse_moved(self: SliceView, scene_pos: QPointF) -> None:
        if self.plane_geometry is None:
            return
        self._hover_scene = scene_pos
        self.hovered.emit(self.scene_to_voxel(self.view_box.mapSceneToView(scene_pos)))

    def handle_wheel(self: SliceView, ev) -> None:
        if self.plane_geometry is None:
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

    def handle_drag(self: SliceView, ev) -> bool:
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
        rotating = ev.modifiers() & Qt.KeyboardModifier.ControlModifier
        if mode == "crosshair" and rotating and self.state.can_rotate:
            # Ctrl+drag turns the linked crosshair about its centre: the other planes tilt.
            self.state.rotate(
                self.plane,
                drag_turn(
                    self.cursor_scene(),
                    self.view_box.mapSceneToView(ev.lastScenePos()),
                    self.view_box.mapSceneToView(ev.scenePos()),
                ),
            )
            return True
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

    def n_slices(self: SliceView) -> int:
        """Slices this view scrolls through (along its tilted normal while oblique)."""
        ob, g = self.oblique, self.plane_geometry
        if ob is not None:
            return int(np.floor((ob.t1 - ob.t0) / ob.slice_step())) + 1
        return g.n_slices if g is not None else 0

    def keyPressEvent(self: SliceView, event: QKeyEvent) -> None:  # noqa: N802
        g = self.plane_geometry
        if g is None:
            super().keyPressEvent(event)
            return
        n = self.n_slices()
        page = max(1, n // 10)
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
        elif key in (Qt.Key.Key_Home, Qt.Key.Key_End) and self.oblique is not None:
            self.state.step_slice(self.plane, n if key == Qt.Key.Key_End else -n)
        elif key == Qt.Key.Key_Home:
            self.state.set_slice(self.plane, 0)
        elif key == Qt.Key.Key_End:
            self.state.set_slice(self.plane, g.n_slices - 1)
        else:
            super().keyPressEvent(event)
            return
        event.accept()
