"""The text a slice view prints over its image: patient and series in the top corners, slice
position and size, window/level and zoom at the bottom, orientation letters at the edges, and
a scale bar. Kept out of ``SliceView`` so the view only draws the image and forwards input."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

from viewer.study.volume import Volume
from viewer.ui.planes import Plane
from viewer.ui.scale_bar import ScaleBar
from viewer.ui.state import ViewerState

#: Narrower views drop the top corners (they would collide); the essentials stay.
ROOMY_WIDTH = 380


class ViewText:
    """Labels placed over ``graphics`` (a pyqtgraph GraphicsView)."""

    def __init__(self, graphics: QWidget) -> None:
        self.graphics = graphics
        self.visible = True
        self.corner = {key: self._label("corner") for key in ("tl", "tr", "bl", "br")}
        self.letters = {key: self._label("letter") for key in ("top", "bottom", "left", "right")}
        self.scale_bar = ScaleBar(graphics)

    def _label(self, role: str) -> QLabel:
        label = QLabel(self.graphics)
        label.setObjectName(f"view_{role}")
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.setStyleSheet(
            "color: #f0e6a0; background: transparent; font-size: 11px;"
            if role == "corner"
            else "color: #ffb347; background: transparent; font-size: 14px; font-weight: bold;"
        )
        return label

    def _labels(self) -> tuple[QLabel, ...]:
        return (*self.corner.values(), *self.letters.values())

    def clear(self) -> None:
        for label in self._labels():
            label.setText("")

    def set_letters(self, letters: dict[str, str] | None) -> None:
        """Edge letters, or none (a projection image has no patient orientation)."""
        for key, label in self.letters.items():
            label.setText(letters[key] if letters else "")

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        for label in self._labels():
            label.setVisible(visible)
        self.scale_bar.setVisible(visible)
        self.place()

    def update(
        self, g: Plane, vol: Volume, state: ViewerState, plane: str, index: int, zoom: float
    ) -> None:
        meta = vol.meta
        patient = (meta.get("patient_name", ""), meta.get("patient_id", ""))
        self.corner["tl"].setText(
            "\n".join(s for s in (*map(str, patient), str(meta.get("study_date", ""))) if s)
        )
        series = (vol.description, vol.modality, "" if vol.is_2d else plane.title())
        self.corner["tr"].setText("\n".join(s for s in series if s))
        zyx = state.cursor.copy()
        zyx[g.normal_axis] = index
        pos_mm = float(np.asarray(vol.index_to_patient(zyx)) @ np.asarray(g.normal))
        slice_text = "" if vol.is_2d else f"Slice {index + 1}/{g.n_slices}  {pos_mm:.1f} mm\n"
        self.corner["bl"].setText(f"{slice_text}{g.n_cols}×{g.n_rows}")
        wl = "RGB" if vol.is_rgb else f"W {state.width:.0f}  L {state.center:.0f}"
        if state.invert and not vol.is_rgb:
            wl += "  inv"
        self.corner["br"].setText(f"{wl}\nZoom {zoom:.2f}×")
        for label in self.corner.values():
            label.adjustSize()
        self.place()

    def place(self) -> None:
        w, h, m = self.graphics.width(), self.graphics.height(), 6
        c = self.corner
        for label in self._labels():
            label.adjustSize()
        roomy = w >= ROOMY_WIDTH
        for key in ("tl", "tr"):
            c[key].setVisible(self.visible and roomy)
        c["tl"].move(m, m)
        c["tr"].move(w - c["tr"].width() - m, m)
        c["bl"].move(m, h - c["bl"].height() - m)
        c["br"].move(w - c["br"].width() - m, h - c["br"].height() - m)
        lt = self.letters
        lt["top"].move((w - lt["top"].width()) // 2, m)
        lt["bottom"].move((w - lt["bottom"].width()) // 2, h - lt["bottom"].height() - m)
        lt["left"].move(m, (h - lt["left"].height()) // 2)
        lt["right"].move(w - lt["right"].width() - m, (h - lt["right"].height()) // 2)
        self.scale_bar.move(w - self.scale_bar.width() - m, h - c["br"].height() - 40)
