"""A millimetre scale bar painted over a slice view; its length is a round number of mm."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget


def nice_length_mm(mm_per_pixel: float, target_px: float = 90.0) -> float:
    """The 1-2-5 x 10^k millimetre length closest below ``target_px`` screen pixels."""
    if mm_per_pixel <= 0 or not math.isfinite(mm_per_pixel):
        return 0.0
    raw = mm_per_pixel * target_px
    power = 10.0 ** math.floor(math.log10(raw))
    for step in (5.0, 2.0, 1.0):
        if step * power <= raw:
            return step * power
    return power


class ScaleBar(QWidget):
    """Draws a horizontal bar ``length_mm`` long with its label; transparent to the mouse."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.length_mm = 0.0
        self.length_px = 0.0
        self.setFixedSize(130, 28)

    def set_mm_per_pixel(self, mm_per_pixel: float) -> None:
        self.length_mm = nice_length_mm(mm_per_pixel)
        self.length_px = self.length_mm / mm_per_pixel if mm_per_pixel > 0 else 0.0
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        if self.length_px <= 0:
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
        label = f"{self.length_mm:g} mm"
        p.drawText(left, 0, right - left, y - 6, Qt.AlignmentFlag.AlignCenter, label)
        p.end()
