"""A scale bar painted over a slice view: a round length in millimetres, or in image pixels
when the image states no calibration (never "mm" without one)."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget


def nice_length(units_per_pixel: float, target_px: float = 90.0) -> float:
    """The 1-2-5 x 10^k length (in the bar's unit) closest below ``target_px`` screen pixels."""
    if units_per_pixel <= 0 or not math.isfinite(units_per_pixel):
        return 0.0
    raw = units_per_pixel * target_px
    power = 10.0 ** math.floor(math.log10(raw))
    for step in (5.0, 2.0, 1.0):
        if step * power <= raw:
            return step * power
    return power


class ScaleBar(QWidget):
    """Draws a horizontal bar ``length`` units long with its label; transparent to the mouse.
    The widget grows to fit its label, so the text is never clipped."""

    HEIGHT = 30

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.length = 0.0
        self.length_px = 0.0
        self.unit = "mm"
        self.qualifier = ""
        self.setFixedSize(130, self.HEIGHT)

    @property
    def length_mm(self) -> float:
        """The bar's length in mm, 0 when the bar is in pixels."""
        return self.length if self.unit == "mm" else 0.0

    @property
    def label(self) -> str:
        return f"{self.length:g} {self.unit}{self.qualifier}" if self.length_px > 0 else ""

    def set_scale(
        self,
        units_per_pixel: float,
        unit: str = "mm",
        qualifier: str = "",
        target_px: float = 90.0,
    ) -> None:
        """``units_per_pixel``: bar units (mm or image pixels) per screen pixel; the bar is
        the round length closest below ``target_px`` screen pixels."""
        self.unit, self.qualifier = unit, qualifier
        self.length = nice_length(units_per_pixel, target_px)
        self.length_px = self.length / units_per_pixel if self.length > 0 else 0.0
        text_w = self.fontMetrics().horizontalAdvance(self.label) + 8
        self.setFixedSize(int(max(text_w, self.length_px + 6)), self.HEIGHT)
        self.update()

    def clear(self) -> None:
        """No bar and no label (the view shows no image)."""
        self.set_scale(0.0)

    def paintEvent(self, event) -> None:  # noqa: N802
        if self.length_px <= 0 or self.length <= 0:
            return
        p = QPainter(self)
        pen = QPen(QColor(240, 230, 160))
        pen.setWidth(2)
        p.setPen(pen)
        right = self.width() - 2
        left = int(right - self.length_px)
        y = self.height() - 6
        p.drawLine(left, y, right, y)
        p.drawLine(left, y - 5, left, y)
        p.drawLine(right, y - 5, right, y)
        # The label spans the whole widget (right-aligned over the bar), so a short bar never
        # clips it ("20 mr").
        p.drawText(
            0,
            0,
            right,
            y - 6,
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
            self.label,
        )
        p.end()
