"""The annotation tool bar: one checkable action per tool (with its shortcut) and the label class.

Built from ``TOOL_TABLE`` so the bar, the shortcuts and the Help > Shortcuts list agree.
Checking a tool emits ``tool_selected(name)``; unchecking it emits ``tool_selected(None)``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import QComboBox, QLabel, QToolBar, QWidget

from viewer.ui.tools import TOOL_TABLE

#: short button texts; the full title and shortcut are in the tooltip
SHORT = {
    "select": "Select",
    "box": "Box",
    "polygon": "Polygon",
    "polygon_fill": "Fill",
    "brush": "Brush",
    "eraser": "Eraser",
    "threshold_brush": "Thresh.",
    "point": "Point",
    "ruler": "Ruler",
    "roi_ellipse": "Ellipse",
    "roi_rect": "Rect",
    "click_segment": "Click",
    "island": "Island",
    "prompt": "Prompt",
}


def colour_icon(colour: str, size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(colour))
    return QIcon(pix)


class AnnotationToolBar(QToolBar):
    tool_selected = Signal(object)
    #: the label class index chosen in the combo box
    label_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Annotation", parent)
        self.setObjectName("annotation_toolbar")
        self.group = QActionGroup(self)
        self.group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.slots: dict[str, QAction] = {}
        for name, title, shortcut, _, _ in TOOL_TABLE:
            action = QAction(SHORT.get(name, title), self)
            action.setObjectName(f"tool_{name}")
            action.setCheckable(True)
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setToolTip(f"{title} ({shortcut})")
            action.setStatusTip(title)
            action.setData(shortcut)
            action.toggled.connect(lambda on, n=name: self._toggled(n, on))
            self.group.addAction(action)
            self.addAction(action)
            self.slots[name] = action
        self.addSeparator()
        self.addWidget(QLabel(" Label "))
        self.label_combo = QComboBox(self)
        self.label_combo.setObjectName("label_combo")
        self.label_combo.setMinimumContentsLength(10)
        self.label_combo.setToolTip("Label class of new annotations")
        self.label_combo.activated.connect(
            lambda i: self.label_selected.emit(int(self.label_combo.itemData(i)))
        )
        self.addWidget(self.label_combo)
        self._syncing = False

    def _toggled(self, name: str, on: bool) -> None:
        if self._syncing:
            return
        if on:
            self.tool_selected.emit(name)
        elif self.group.checkedAction() is None:
            self.tool_selected.emit(None)

    def set_active(self, name: str | None) -> None:
        """Show ``name`` as the checked tool without emitting ``tool_selected``."""
        self._syncing = True
        try:
            for key, action in self.slots.items():
                action.setChecked(key == name)
        finally:
            self._syncing = False

    def set_label_classes(self, classes, current: int | None) -> None:
        """Fill the combo box from a LabelSet (index, name, colour) and select ``current``."""
        self.label_combo.clear()
        for c in classes:
            self.label_combo.addItem(colour_icon(c.color), f"{c.index} {c.name}", c.index)
            if c.index == current:
                self.label_combo.setCurrentIndex(self.label_combo.count() - 1)
