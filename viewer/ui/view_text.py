"""The text a slice view prints over its image: patient and series in the top corners, slice
position and size, window/level and zoom at the bottom, orientation letters at the edges, and
a scale bar. Kept out of ``SliceView`` so the view only draws the image and forwards input.

Honest labels: an image without a patient orientation (ultrasound, secondary capture, a stack
of projection images) gets no letters, no plane name and no millimetre position, only
"Frame i/N"; an image without calibrated spacing gets a scale bar in pixels. The patient's
name, ID and date are shown on every pane at any size (elided, never hidden) and never over
the top orientation letter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsDropShadowEffect, QLabel, QWidget

from viewer.study.facts import frame_time_ms, has_patient_orientation, volume_label
from viewer.study.volume import Volume
from viewer.ui.calibration import Calibration
from viewer.ui.oblique import ObliqueSlice
from viewer.ui.planes import Plane
from viewer.ui.scale_bar import ScaleBar
from viewer.ui.state import ViewerState

MARGIN = 6
#: the gap kept between a top corner's text and the top orientation letter
LETTER_GAP = 6


def person_name(value: object) -> str:
    """A DICOM person name for reading: "DOE^JOHN^^DR" -> "DOE, JOHN"."""
    text = str(value or "").strip()
    if "^" not in text:
        return text
    parts = [p.strip() for p in text.split("^")]
    family, given = parts[0], (parts[1] if len(parts) > 1 else "")
    return f"{family}, {given}" if family and given else family or given


def study_date(value: object) -> str:
    """ "20240131" -> "2024-01-31" (other forms as they are)."""
    text = str(value or "").strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


@dataclass(frozen=True)
class SliceText:
    """What the bottom-left corner says about the slice shown."""

    #: which slice, and where (one line each, so a narrow pane elides neither)
    position: tuple[str, ...]
    slab: str
    size: str

    def text(self) -> str:
        return "\n".join(s for s in (*self.position, self.slab, self.size) if s)


def slice_text(
    g: Plane,
    vol: Volume,
    state: ViewerState,
    index: int,
    oblique: ObliqueSlice | None = None,
) -> SliceText:
    """Position, slab and size of the slice a view shows, in the patient's coordinates (the
    same LPS the status bar reads) or as frames where the image has no patient orientation."""
    slab = state.slab.label
    if oblique is not None:
        x, y, z = state.cursor_patient()
        depth = oblique.depth_of(state.cursor_patient())
        step = oblique.slice_step()
        n = int(np.floor((oblique.t1 - oblique.t0) / step)) + 1
        i = int(np.clip(round((depth - oblique.t0) / step), 0, n - 1)) + 1
        return SliceText(
            (f"Oblique {i}/{n}", f"LPS {x:.1f}, {y:.1f}, {z:.1f} mm"),
            slab,
            f"{oblique.cols}×{oblique.rows}",
        )
    size = f"{g.n_cols}×{g.n_rows}"
    if vol.is_2d:
        return SliceText((), "", size)
    if not has_patient_orientation(vol):
        ms = frame_time_ms(vol)
        timing = f"{ms:g} ms/frame" if ms else ""
        return SliceText((f"Frame {index + 1}/{g.n_slices}", timing), "", size)
    zyx = state.cursor.copy()
    zyx[g.normal_axis] = index
    lps = np.asarray(vol.index_to_patient(zyx), dtype=float)
    k = int(np.argmax(np.abs(np.asarray(g.normal))))
    position = (f"Slice {index + 1}/{g.n_slices}", f"LPS {'xyz'[k]} {lps[k]:.1f} mm")
    return SliceText(position, slab, size)


class ViewText:
    """Labels placed over ``graphics`` (a pyqtgraph GraphicsView)."""

    def __init__(self, graphics: QWidget) -> None:
        self.graphics = graphics
        self.visible = True
        self.corner = {key: self._label("corner") for key in ("tl", "tr", "bl", "br")}
        self.letters = {key: self._label("letter") for key in ("top", "bottom", "left", "right")}
        self.scale_bar = ScaleBar(graphics)
        #: full texts of the corners beside the top and bottom letters; shown elided to fit
        self._lines: dict[str, list[str]] = {"tl": [], "tr": [], "bl": [], "br": []}
        #: What the corners were last laid out for (see ``_layout_key``).
        self._placed: tuple | None = None

    def _label(self, role: str) -> QLabel:
        label = QLabel(self.graphics)
        label.setObjectName(f"view_{role}")
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.setStyleSheet(
            "color: #f0e6a0; background: transparent; font-size: 11px;"
            if role == "corner"
            else "color: #ffb347; background: transparent; font-size: 14px; font-weight: bold;"
        )
        # A crisp dark shadow one pixel down and right, so the text reads over bone and
        # contrast as over air (as Horos and RadiAnt draw it); light text alone vanishes there.
        halo = QGraphicsDropShadowEffect(label)
        halo.setOffset(1.0, 1.0)
        halo.setBlurRadius(2.0)
        halo.setColor(QColor(0, 0, 0, 255))
        label.setGraphicsEffect(halo)
        return label

    def _labels(self) -> tuple[QLabel, ...]:
        return (*self.corner.values(), *self.letters.values())

    def clear(self) -> None:
        for label in self._labels():
            label.setText("")
        self._lines = {"tl": [], "tr": [], "bl": [], "br": []}
        self.scale_bar.clear()

    def set_letters(self, letters: dict[str, str] | None) -> None:
        """Edge letters, or none (an image without patient orientation)."""
        for key, label in self.letters.items():
            label.setText(letters[key] if letters else "")
        self.place()

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        for label in self._labels():
            label.setVisible(visible)
        self.scale_bar.setVisible(visible)
        self.place()

    def set_scale(
        self, vol: Volume | None, scene_per_screen_px: float, mm_per_image_px: float
    ) -> None:
        """The scale bar for a view whose scene is in mm: mm when the image is calibrated,
        image pixels when it is not; none without an image or a usable zoom."""
        if vol is None or not (scene_per_screen_px > 0 and mm_per_image_px > 0):
            self.scale_bar.clear()
            self.scale_bar.setToolTip("")
            self.place()
            return
        cal = Calibration.of(vol)
        units = cal.scale_per_screen_pixel(scene_per_screen_px, mm_per_image_px)
        # A quarter of the pane at most, so a small pane keeps room for its corner texts.
        target = min(90.0, 0.25 * self.graphics.width())
        self.scale_bar.set_scale(units, cal.unit, cal.qualifier, target)
        self.scale_bar.setToolTip(cal.note)
        self.place()

    def update(
        self,
        g: Plane,
        vol: Volume,
        state: ViewerState,
        plane: str,
        index: int,
        zoom: float,
        oblique: ObliqueSlice | None = None,
    ) -> None:
        meta = vol.meta
        patient = (
            person_name(meta.get("patient_name", "")),
            str(meta.get("patient_id", "") or ""),
            study_date(meta.get("study_date", "")),
        )
        self._lines["tl"] = [s for s in patient if s]
        oriented = has_patient_orientation(vol) and not vol.is_2d
        if oblique is not None:
            plane_name = f"Oblique ({plane.title()})"
        else:
            plane_name = plane.title() if oriented else ""
        series = (vol.description, vol.modality, plane_name, volume_label(vol) or "")
        self._lines["tr"] = [s for s in series if s]
        self._lines["bl"] = slice_text(g, vol, state, index, oblique).text().split("\n")
        wl = "RGB" if vol.is_rgb else f"W {state.width:.0f}  L {state.center:.0f}"
        if state.invert and not vol.is_rgb:
            wl += "  inv"
        self._lines["br"] = [wl, f"Zoom {zoom:.2f}×"]
        if self._layout_key() != self._placed:  # scrolling a plane whose text stays: no relayout
            self.place()

    def _layout_key(self) -> tuple:
        """Everything the corners' layout depends on: texts, letters, pane size, visibility."""
        return (
            self.graphics.width(),
            self.graphics.height(),
            self.visible,
            tuple(tuple(self._lines[k]) for k in ("tl", "tr", "bl", "br")),
            tuple(label.text() for label in self.letters.values()),
        )

    def _variants(self, key: str) -> list[list[str]]:
        """The corner's text from fullest to most compact: a low pane joins lines (the
        patient's name, ID and date stay) or drops the least needed (size, zoom) first."""
        lines = self._lines[key]
        if key in ("tl", "tr"):
            return [lines, [lines[0], "  ".join(lines[1:])], ["  ".join(lines)]] if lines else [[]]
        if key == "bl":
            size_dropped = lines[:-1] if len(lines) > 1 else lines
            return [lines, size_dropped, size_dropped[:1] + size_dropped[2:], lines[:1]]
        return [lines, lines[:1]]

    def _fit(self, key: str, width: int, lines: list[str]) -> None:
        """Show ``lines`` in corner ``key`` elided to ``width`` pixels a line (never hidden)."""
        label = self.corner[key]
        metrics = label.fontMetrics()
        shown = [
            metrics.elidedText(line, Qt.TextElideMode.ElideRight, max(width, 12))
            for line in lines
            if line
        ]
        label.setText("\n".join(shown))
        label.adjustSize()

    def _fit_beside_letters(self, key: str, width: int, band: tuple[int, int] | None) -> None:
        """Fit corner ``key`` in ``width`` and clear of the side letter's rows ``band``."""
        h, m = self.graphics.height(), MARGIN
        variants = self._variants(key)
        for lines in variants:
            self._fit(key, width, lines)
            height = self.corner[key].height()
            if band is None:
                return
            top, bottom = (m, m + height) if key in ("tl", "tr") else (h - m - height, h - m)
            if bottom <= band[0] or top >= band[1]:
                return

    def place(self) -> None:
        self._placed = self._layout_key()
        w, h, m = self.graphics.width(), self.graphics.height(), MARGIN
        c, lt = self.corner, self.letters
        for label in self._labels():
            label.adjustSize()
        # The corners share the width left beside the top and bottom letters, and the rows
        # above and below the side letters, so none covers a letter: text is elided or
        # joined, never hidden.
        for key, edge, side in (
            ("tl", "top", "left"),
            ("tr", "top", "right"),
            ("bl", "bottom", "left"),
            ("br", "bottom", "right"),
        ):
            letter_w = lt[edge].width() if lt[edge].text() else 0
            room = (w - letter_w) // 2 - m - (LETTER_GAP if letter_w else 0)
            if key == "bl" and not letter_w:
                room = w - c["br"].width() - 3 * m
            band = None
            if lt[side].text():
                y0 = (h - lt[side].height()) // 2
                band = (y0, y0 + lt[side].height())
            self._fit_beside_letters(key, room, band)
        for key in ("tl", "tr"):
            c[key].setVisible(self.visible)
        c["tl"].move(m, m)
        c["tr"].move(w - c["tr"].width() - m, m)
        c["bl"].move(m, h - c["bl"].height() - m)
        c["br"].move(w - c["br"].width() - m, h - c["br"].height() - m)
        lt["top"].move((w - lt["top"].width()) // 2, m)
        lt["bottom"].move((w - lt["bottom"].width()) // 2, h - lt["bottom"].height() - m)
        lt["left"].move(m, (h - lt["left"].height()) // 2)
        lt["right"].move(w - lt["right"].width() - m, (h - lt["right"].height()) // 2)
        bar_y = h - c["br"].height() - self.scale_bar.height() - m
        self.scale_bar.move(w - self.scale_bar.width() - m, bar_y)
        # The scale bar gives way to the right letter and the bottom-left text in a small pane
        # (it is the least needed).
        right, bl = lt["right"], c["bl"]
        clear = not right.text() or bar_y >= right.y() + right.height()
        beside = (
            self.scale_bar.x() >= bl.x() + bl.width() or bar_y + self.scale_bar.height() <= bl.y()
        )
        self.scale_bar.setVisible(self.visible and clear and beside)
