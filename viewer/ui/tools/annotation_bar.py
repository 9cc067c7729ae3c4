"""The annotation tool bar: one checkable slot per tool; tools plug in as they are written.

A tool is a small state machine (see DESIGN.md) registered with ``set_tool``; until then its
slot is shown disabled so the layout and shortcuts are stable for users.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QToolBar, QWidget

#: (key, label, shortcut) of each annotation tool slot, in tool-bar order.
TOOL_SLOTS: tuple[tuple[str, str, str], ...] = (
    ("box", "Box", "B"),
    ("polygon", "Polygon", "G"),
    ("brush", "Brush", "R"),
    ("eraser", "Eraser", "E"),
    ("point", "Point", "T"),
    ("ruler", "Ruler", "M"),
)


class AnnotationToolBar(QToolBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Annotation", parent)
        self.setObjectName("annotation_toolbar")
        self.group = QActionGroup(self)
        self.group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.slots: dict[str, QAction] = {}
        for key, label, shortcut in TOOL_SLOTS:
            action = QAction(label, self)
            action.setCheckable(True)
            action.setEnabled(False)
            action.setToolTip(f"{label} ({shortcut}) - not available yet")
            action.setData(shortcut)
            self.group.addAction(action)
            self.addAction(action)
            self.slots[key] = action

    def set_tool(self, key: str, activate: Callable[[bool], None]) -> QAction:
        """Enable slot ``key``; ``activate(checked)`` switches the tool on or off."""
        action = self.slots[key]
        action.setEnabled(True)
        action.setShortcut(str(action.data()))
        action.setToolTip(f"{action.text()} ({action.data()})")
        action.toggled.connect(activate)
        return action
