"""What every view of the open series shares: the volume, the cursor, the window, the layers."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.study.volume import Volume
from viewer.ui.layers import LayerList
from viewer.ui.planes import Plane, planes_for

#: CT window presets: name -> (center, width) in HU.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "Lung": (-600.0, 1500.0),
    "Mediastinum": (50.0, 350.0),
    "Bone": (400.0, 1800.0),
    "Brain": (40.0, 80.0),
    "Abdomen": (40.0, 400.0),
    "Liver": (60.0, 160.0),
    "Stroke": (40.0, 40.0),
}


class ViewerState(QObject):
    """The model the SliceViews listen to; only the main thread touches it."""

    volume_changed = Signal()
    #: Slices arrived from the loader: repaint whatever shows them.
    data_updated = Signal()
    cursor_moved = Signal()
    window_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self.planes: dict[str, Plane] = {}
        self.cursor = np.zeros(3)  # (z, y, x) continuous voxel index
        self.center, self.width = 40.0, 400.0
        self.invert = False
        self.layers = LayerList()

    # ---- volume --------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, first_slice: int | None = None) -> None:
        """Show ``volume``; the cursor starts at ``first_slice`` (or the middle) of the stack."""
        self.layers.clear()
        self.volume = volume
        self.planes = planes_for(volume) if volume is not None else {}
        if volume is not None:
            nz, ny, nx = volume.shape
            z = nz // 2 if first_slice is None else first_slice
            self.cursor = np.array([float(z), (ny - 1) / 2.0, (nx - 1) / 2.0])
            self.center, self.width = volume.default_window()
            self.invert = False
        self.volume_changed.emit()
        self.window_changed.emit()
        self.cursor_moved.emit()

    @property
    def is_rgb(self) -> bool:
        return self.volume is not None and self.volume.is_rgb

    # ---- cursor --------------------------------------------------------------------------
    def set_cursor(self, zyx: np.ndarray | tuple[float, float, float]) -> None:
        if self.volume is None:
            return
        hi = np.asarray(self.volume.shape, dtype=float) - 1
        new = np.clip(np.asarray(zyx, dtype=float), 0, hi)
        if not np.array_equal(new, self.cursor):
            self.cursor = new
            self.cursor_moved.emit()

    def slice_index(self, plane: str) -> int:
        geom = self.planes[plane]
        return int(round(self.cursor[geom.normal_axis]))

    def set_slice(self, plane: str, index: int) -> None:
        geom = self.planes[plane]
        zyx = self.cursor.copy()
        zyx[geom.normal_axis] = int(np.clip(index, 0, geom.n_slices - 1))
        self.set_cursor(zyx)

    def step_slice(self, plane: str, delta: int) -> None:
        self.set_slice(plane, self.slice_index(plane) + delta)

    # ---- window --------------------------------------------------------------------------
    def set_window(self, center: float, width: float) -> None:
        self.center, self.width = float(center), float(max(width, 1e-3))
        self.window_changed.emit()

    def reset_window(self) -> None:
        if self.volume is not None:
            self.set_window(*self.volume.default_window())

    def set_invert(self, invert: bool) -> None:
        self.invert = bool(invert)
        self.window_changed.emit()

    def levels(self) -> tuple[float, float]:
        """(low, high) display levels for the current window."""
        return self.center - self.width / 2.0, self.center + self.width / 2.0

    def window_presets(self) -> dict[str, tuple[float, float]]:
        """The file's own windows first, then the CT presets for CT series."""
        out: dict[str, tuple[float, float]] = {}
        if self.volume is None:
            return out
        for i, (c, w, text) in enumerate(self.volume.windows):
            out[f"File: {text or i + 1}"] = (float(c), float(w))
        if self.volume.modality == "CT":
            out.update(CT_PRESETS)
        return out

    # ---- values --------------------------------------------------------------------------
    def value_at(self, zyx: np.ndarray | tuple[float, float, float]) -> object | None:
        """Voxel value at the nearest voxel (a tuple for RGB), or None outside the volume."""
        if self.volume is None:
            return None
        idx = np.rint(np.asarray(zyx, dtype=float)).astype(int)
        if np.any(idx < 0) or np.any(idx >= np.asarray(self.volume.shape)):
            return None
        value = self.volume.array[tuple(idx)]
        if np.ndim(value):
            return tuple(np.asarray(value).tolist())
        return value.item() if hasattr(value, "item") else value
