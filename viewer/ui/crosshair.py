"""The linked crosshair of one slice view: a line for each other plane where it cuts this
one (tilted once the planes are oblique), and the angle a Ctrl+drag turns them by."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt

from viewer.ui.oblique import Frame

#: the line of each plane, in the colours 3D Slicer gives its slice views
PLANE_COLOURS = {
    "axial": (240, 90, 90, 190),
    "coronal": (110, 200, 110, 190),
    "sagittal": (235, 215, 90, 190),
}
#: which other plane draws the vertical / horizontal line of an orthogonal view
VERTICAL_OF = {"axial": "sagittal", "coronal": "sagittal", "sagittal": "coronal"}
HORIZONTAL_OF = {"axial": "coronal", "coronal": "axial", "sagittal": "axial"}


def drag_turn(centre: QPointF, last: QPointF, now: QPointF) -> float:
    """Radians the pointer turned about ``centre`` from ``last`` to ``now`` (clockwise on a
    screen whose y goes down is positive), in (-pi, pi]."""
    a = math.atan2(last.y() - centre.y(), last.x() - centre.x())
    b = math.atan2(now.y() - centre.y(), now.x() - centre.x())
    d = b - a
    while d <= -math.pi:
        d += 2 * math.pi
    while d > math.pi:
        d -= 2 * math.pi
    return d


class Crosshair:
    """Two infinite lines in ``view_box`` (scene in mm) for the planes other than ``plane``."""

    def __init__(self, view_box: pg.ViewBox, plane: str) -> None:
        self.plane = plane
        self.lines: dict[str, pg.InfiniteLine] = {}
        for other in (VERTICAL_OF[plane], HORIZONTAL_OF[plane]):
            pen = pg.mkPen(PLANE_COLOURS[other], width=1)
            line = pg.InfiniteLine(angle=90 if other == VERTICAL_OF[plane] else 0, pen=pen)
            line.setZValue(30)
            # A press on a line is a press on the image (move or turn the crosshair): the
            # lines themselves never take the mouse.
            line.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
            line.setAcceptHoverEvents(False)
            # Nothing to cross before an image is shown: the first update() places it.
            line.setVisible(False)
            view_box.addItem(line, ignoreBounds=True)
            self.lines[other] = line

    @property
    def vertical(self) -> pg.InfiniteLine:
        return self.lines[VERTICAL_OF[self.plane]]

    @property
    def horizontal(self) -> pg.InfiniteLine:
        return self.lines[HORIZONTAL_OF[self.plane]]

    def angles(self) -> dict[str, float]:
        """Screen angle (degrees) of each line, for tests."""
        return {name: float(line.angle) for name, line in self.lines.items()}

    def hide(self) -> None:
        """No lines (the view shows no image)."""
        for line in self.lines.values():
            line.setVisible(False)

    def update(self, own: Frame, others: dict[str, Frame], centre: QPointF, visible: bool) -> None:
        """Put each line through ``centre`` along the cut of its plane with this one."""
        for name, line in self.lines.items():
            frame = others.get(name)
            angle = own.line_angle(frame.normal) if frame is not None else None
            line.setVisible(visible and angle is not None)
            if angle is None:
                continue
            if abs(float(line.angle) - angle % 180.0) > 1e-9:
                line.setAngle(angle % 180.0)  # each set re-rotates the item: only on a turn
            line.setPos(centre)
