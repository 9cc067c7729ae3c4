"""The central area: one SliceView per plane, laid out single, 1x3 or 2x2, plus cine."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from viewer.study.facts import has_patient_orientation
from viewer.ui.calibration import Calibration
from viewer.ui.planes import PLANES
from viewer.ui.slice_view import SliceView
from viewer.ui.state import ViewerState

LAYOUTS = ("single", "1x3", "2x2")


class ViewerArea(QWidget):
    """Owns the three views; ``active_plane`` is the one keys, cine and tools act on."""

    active_plane_changed = Signal(str)
    layout_changed = Signal(str)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.views: dict[str, SliceView] = {p: SliceView(state, p, self) for p in PLANES}
        self.info_cell = QLabel(self)
        self.info_cell.setObjectName("info_cell")
        self.info_cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.info_cell.setWordWrap(True)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.layout_name = "single"
        self.active_plane = "axial"
        self.crosshair_wanted = True
        for view in self.views.values():
            view.activated.connect(self.set_active_plane)
        self.cine = QTimer(self)
        self.cine.timeout.connect(self._cine_step)
        self.cine_fps = 10
        state.volume_changed.connect(self._volume_changed)
        self.set_layout("single")

    @property
    def active_view(self) -> SliceView:
        return self.views[self.active_plane]

    def visible_views(self) -> list[SliceView]:
        return [v for v in self.views.values() if v.isVisibleTo(self)]

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {LAYOUTS}")
        if self.state.volume is not None and len(self.state.planes) < 3:
            # A 2D image, or frames without a patient orientation, have one plane only.
            name = "single"
        for i in reversed(range(self.grid.count())):
            self.grid.takeAt(i)
        for view in self.views.values():
            view.hide()
        self.info_cell.hide()
        self.layout_name = name
        if name == "single":
            self.grid.addWidget(self.active_view, 0, 0)
            self.active_view.show()
        elif name == "1x3":
            for col, plane in enumerate(PLANES):
                self.grid.addWidget(self.views[plane], 0, col)
                self.views[plane].show()
        else:
            cells = {"axial": (0, 0), "coronal": (0, 1), "sagittal": (1, 0)}
            for plane, (r, c) in cells.items():
                self.grid.addWidget(self.views[plane], r, c)
                self.views[plane].show()
            self.grid.addWidget(self.info_cell, 1, 1)
            self.info_cell.show()
        for r in range(2):
            self.grid.setRowStretch(r, 1 if (name == "2x2" or r == 0) else 0)
        for c in range(3):
            self.grid.setColumnStretch(c, 1 if c < {"single": 1, "1x3": 3, "2x2": 2}[name] else 0)
        self._apply_crosshair()
        self._update_info()
        self.layout_changed.emit(name)

    def set_active_plane(self, plane: str) -> None:
        if plane not in self.views:
            return
        if self.state.volume is not None and plane not in self.state.planes:
            return
        changed = plane != self.active_plane
        self.active_plane = plane
        if self.layout_name == "single" and changed:
            self.set_layout("single")
        for p, view in self.views.items():
            view.setProperty("active", p == plane)
        if changed:
            self.active_plane_changed.emit(plane)

    def _volume_changed(self) -> None:
        volume = self.state.volume
        if volume is not None and len(self.state.planes) < 3:
            self.active_plane = "axial"
            self.set_layout("single")
        self._update_info()

    def _update_info(self) -> None:
        vol = self.state.volume
        if vol is None:
            self.info_cell.setText("")
            return
        nz, ny, nx = vol.shape
        sx, sy, sz = vol.spacing
        cal = Calibration.of(vol)
        if not has_patient_orientation(vol):
            size = f"{nx}×{ny} pixels, {nz} frames" if nz > 1 else f"{nx}×{ny} pixels"
        else:
            size = f"{nx}×{ny}×{nz} voxels"
        if cal.calibrated:
            spacing = f"{sx:.2f} × {sy:.2f} × {sz:.2f} mm{cal.qualifier}"
        else:
            spacing = "no pixel spacing stated: measured in pixels"
        lines = [vol.description or vol.modality, size, spacing, *vol.warnings]
        self.info_cell.setText("\n".join(s for s in lines if s))

    # ---- cine ----------------------------------------------------------------------------
    def set_cine(self, playing: bool, fps: int | None = None) -> None:
        if fps is not None:
            self.cine_fps = max(1, int(fps))
            self.cine.setInterval(int(1000 / self.cine_fps))
        if playing and self.state.volume is not None and not self.state.volume.is_2d:
            self.cine.start(int(1000 / self.cine_fps))
        else:
            self.cine.stop()

    def _cine_step(self) -> None:
        plane = self.active_plane
        geom = self.state.planes.get(plane)
        if geom is None:
            self.cine.stop()
            return
        # Loop back to the first slice so cine plays continuously.
        self.state.set_slice(plane, (self.state.slice_index(plane) + 1) % geom.n_slices)

    # ---- applied to every view -----------------------------------------------------------
    def set_left_mode(self, mode: str) -> None:
        for view in self.views.values():
            view.left_mode = mode

    def set_text_visible(self, visible: bool) -> None:
        for view in self.views.values():
            view.set_text_visible(visible)

    def set_crosshair_visible(self, visible: bool) -> None:
        """Show the linked crosshair in the MPR layouts (a single view reads better without)."""
        self.crosshair_wanted = visible
        self._apply_crosshair()

    def _apply_crosshair(self) -> None:
        show = self.crosshair_wanted and self.layout_name != "single"
        for view in self.views.values():
            view.set_crosshair_visible(show)

    def fit_all(self) -> None:
        for view in self.views.values():
            view.fit()
