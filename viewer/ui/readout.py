"""What the cursor points at: the status bar's value / voxel / LPS line, and the DICOM tags
of the slice under the cursor (read a moment after the cursor stops, not per wheel step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QDockWidget, QLabel

from viewer.study.facts import has_patient_orientation
from viewer.ui.panels.tags_panel import TagsPanel
from viewer.ui.state import ViewerState
from viewer.ui.viewer_area import ViewerArea

#: Shown until the first series is open.
START_HINT = "Open a folder to begin (File > Open folder, or drop it here)."
#: Shown once a series is open, until the pointer is over an image.
POINT_HINT = "Point at the image to read its value, voxel and position."


def format_value(value: Any, modality: str) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "RGB " + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    unit = " HU" if modality == "CT" else ""
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


class CursorReadout(QObject):
    """Keeps ``label`` and ``tags`` (shown in ``tags_dock``) in step with the cursor."""

    def __init__(
        self,
        state: ViewerState,
        area: ViewerArea,
        label: QLabel,
        tags: TagsPanel,
        tags_dock: QDockWidget,
    ) -> None:
        super().__init__(label)
        self.state, self.label, self.tags, self.tags_dock = state, label, tags, tags_dock
        for view in area.views.values():
            view.hovered.connect(self._hovered)
        self._tags_timer = QTimer(self)
        self._tags_timer.setSingleShot(True)
        self._tags_timer.setInterval(120)  # reading a header per wheel step would stutter
        self._tags_timer.timeout.connect(self._show_tags)
        state.cursor_moved.connect(self._tags_timer.start)
        tags_dock.visibilityChanged.connect(lambda _v: self._tags_timer.start())

    def _hovered(self, zyx: np.ndarray | None) -> None:
        vol = self.state.volume
        if zyx is None or vol is None:
            self.label.setText("")
            return
        idx = np.rint(zyx).astype(int)
        value = format_value(self.state.value_at(idx), vol.modality)
        if not has_patient_orientation(vol):
            # No patient orientation: a pixel and a frame, never a position in the patient.
            frame = f"   frame {idx[0] + 1}/{vol.shape[0]}" if vol.shape[0] > 1 else ""
            self.label.setText(f"{value}   pixel (x {idx[2]}, y {idx[1]}){frame}")
            return
        x, y, z = vol.index_to_patient(idx)
        self.label.setText(
            f"{value}   voxel (x {idx[2]}, y {idx[1]}, z {idx[0]})   "
            f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        )

    def _show_tags(self) -> None:
        vol = self.state.volume
        if vol is None or not self.tags_dock.isVisible():
            return
        files = vol.meta.get("source_files") or []
        z = int(round(self.state.cursor[0]))
        path = files[z] if 0 <= z < len(files) else None
        self.tags.show_file(Path(path) if path else None)
