"""What every view of the open series shares: the volume, the cursor, the window, the layers."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.study.facts import apply_voi_lut, has_patient_orientation, has_voi_lut, voi_lut_window
from viewer.study.volume import Volume
from viewer.ui.layers import LayerList
from viewer.ui.oblique import Frame, ObliqueFrames, ObliqueSlice
from viewer.ui.planes import Plane, planes_for
from viewer.ui.slab import Slab

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


#: The window preset that shows the file's own VOI LUT (a non-linear window).
VOI_LUT_PRESET = "File: VOI LUT"


class ViewerState(QObject):
    """The model the SliceViews listen to; only the main thread touches it."""

    volume_changed = Signal()
    #: Slices arrived from the loader: repaint whatever shows them.
    data_updated = Signal()
    cursor_moved = Signal()
    window_changed = Signal()
    #: The linked planes were rotated (oblique MPR) or reset to orthogonal.
    oblique_changed = Signal()
    #: The slab mode or thickness changed.
    slab_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self.planes: dict[str, Plane] = {}
        self.cursor = np.zeros(3)  # (z, y, x) continuous voxel index
        self.center, self.width = 40.0, 400.0
        self.invert = False
        self.voi_lut = False  # the file's VOI LUT maps values before the window
        self.layers = LayerList()
        self.frames = ObliqueFrames()
        self.slab = Slab()
        self._oblique_cache: dict[str, tuple[bytes, ObliqueSlice]] = {}

    # ---- volume --------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, first_slice: int | None = None) -> None:
        """Show ``volume``; the cursor starts at ``first_slice`` (or the middle) of the stack."""
        self.layers.clear()
        self.volume = volume
        self.planes = planes_for(volume) if volume is not None else {}
        if volume is not None and not has_patient_orientation(volume):
            # Without a patient orientation (US, SC, XC, a CR stack...) only the frames as
            # stored mean anything: no reformatted planes.
            self.planes = {"axial": self.planes["axial"]}
        self.frames.reset()
        self._oblique_cache.clear()
        if volume is not None:
            nz, ny, nx = volume.shape
            z = nz // 2 if first_slice is None else first_slice
            self.cursor = np.array([float(z), (ny - 1) / 2.0, (nx - 1) / 2.0])
            self.invert = False
            self.voi_lut = False
            self._default_window()
        self.volume_changed.emit()
        self.window_changed.emit()
        self.oblique_changed.emit()
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
        oblique = self.oblique_slice(plane)
        if oblique is not None:
            # An oblique plane moves along its own normal, one finest voxel spacing a step.
            step = oblique.slice_step() * delta
            self.set_cursor_patient(self.cursor_patient() + step * oblique.frame.normal)
            return
        self.set_slice(plane, self.slice_index(plane) + delta)

    def cursor_patient(self) -> np.ndarray:
        """The cursor in LPS millimetres."""
        if self.volume is None:
            return np.zeros(3)
        return np.asarray(self.volume.index_to_patient(self.cursor), dtype=float)

    def set_cursor_patient(self, lps: np.ndarray) -> None:
        if self.volume is not None:
            self.set_cursor(self.volume.patient_to_index(np.asarray(lps, dtype=float)))

    # ---- oblique MPR and slabs -----------------------------------------------------------
    @property
    def can_rotate(self) -> bool:
        """Oblique MPR needs a scalar volume with a patient orientation and all three planes."""
        return self.volume is not None and not self.volume.is_rgb and len(self.planes) == 3

    def is_oblique(self, plane: str) -> bool:
        return plane in self.planes and self.frames.is_oblique(plane)

    def frame(self, plane: str) -> Frame:
        return self.frames.frame(self.planes[plane])

    def oblique_slice(self, plane: str) -> ObliqueSlice | None:
        """The resampling geometry of ``plane`` while it is oblique, else None."""
        if self.volume is None or not self.is_oblique(plane):
            return None
        key = self.frames.rotations[plane].tobytes()
        cached = self._oblique_cache.get(plane)
        if cached is None or cached[0] != key:
            cached = (key, ObliqueSlice.build(self.volume.grid, self.frame(plane)))
            self._oblique_cache[plane] = cached
        return cached[1]

    def rotate(self, about_plane: str, angle: float) -> None:
        """Tilt the other linked planes by ``angle`` radians about ``about_plane``'s line of
        sight (clockwise on its screen)."""
        if not self.can_rotate or about_plane not in self.planes or angle == 0:
            return
        self.frames.rotate(self.planes[about_plane], float(angle))
        self.oblique_changed.emit()

    def reset_oblique(self) -> None:
        if self.frames.any_oblique:
            self.frames.reset()
            self.oblique_changed.emit()

    def set_slab(self, slab: Slab) -> None:
        if slab != self.slab:
            self.slab = slab
            self.slab_changed.emit()

    # ---- window --------------------------------------------------------------------------
    def set_window(self, center: float, width: float) -> None:
        self.center, self.width = float(center), float(max(width, 1e-3))
        self.window_changed.emit()

    def _default_window(self) -> None:
        """The file's VOI LUT when it has one (what its author meant to be seen), else the
        volume's default window."""
        if self.volume is None:
            return
        window = voi_lut_window(self.volume)
        self.voi_lut = window is not None
        self.center, self.width = window or self.volume.default_window()

    def apply_preset(self, name: str) -> None:
        """Show the window preset ``name``: the VOI LUT preset maps values through the file's
        table, every other preset shows the values themselves."""
        preset = self.window_presets().get(name)
        if preset is None:
            return
        self.voi_lut = name == VOI_LUT_PRESET
        self.set_window(*preset)

    def display_values(self, data: np.ndarray) -> np.ndarray:
        """What a slice shows before the window: the VOI LUT's output when it is in use."""
        if self.voi_lut and self.volume is not None:
            mapped = apply_voi_lut(self.volume, data)
            if mapped is not None:
                return mapped
        return data

    def window_preset_name(self) -> str | None:
        """The preset whose window is the one shown, or None (a custom window)."""
        for name, (c, w) in self.window_presets().items():
            if (name == VOI_LUT_PRESET) != self.voi_lut:
                continue
            tol = 1e-4 * max(abs(w), 1.0)
            if abs(c - self.center) <= tol and abs(w - self.width) <= tol:
                return name
        return None

    def reset_window(self) -> None:
        if self.volume is not None:
            self._default_window()
            self.window_changed.emit()

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
        if has_voi_lut(self.volume):
            window = voi_lut_window(self.volume)
            assert window is not None
            out[VOI_LUT_PRESET] = window
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
