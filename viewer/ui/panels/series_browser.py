"""Series browser: every series found in the opened folder; double-click one to read it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

COLUMNS = ("Patient", "Study date", "Modality", "Description", "Images", "Size", "#")


def _size_text(info: Any) -> str:
    rows, cols = getattr(info, "rows", 0) or 0, getattr(info, "cols", 0) or 0
    return f"{cols}×{rows}" if rows and cols else ""


def _date_text(value: Any) -> str:
    s = str(value or "")
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else s


class SeriesBrowser(QWidget):
    """A flat, sortable table of series; non-image series are greyed out with their reason."""

    series_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("series_tree")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSortingEnabled(True)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemActivated.connect(self._activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.series: list[Any] = []

    def set_series(self, series: list[Any]) -> None:
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        self.series = list(series)
        for i, info in enumerate(self.series):
            item = QTreeWidgetItem(
                [
                    str(getattr(info, "patient_name", "") or getattr(info, "patient_id", "")),
                    _date_text(getattr(info, "study_date", "")),
                    str(getattr(info, "modality", "")),
                    str(getattr(info, "description", "")),
                    "",
                    _size_text(info),
                    "",
                ]
            )
            # Numbers sort as numbers, not text.
            item.setData(4, Qt.ItemDataRole.DisplayRole, int(getattr(info, "n_images", 0) or 0))
            number = getattr(info, "series_number", None)
            if number is not None:
                item.setData(6, Qt.ItemDataRole.DisplayRole, int(number))
            item.setData(0, Qt.ItemDataRole.UserRole, i)
            problems = list(getattr(info, "problems", []) or [])
            if getattr(info, "kind", "dicom") == "non-image" or problems:
                item.setToolTip(3, "\n".join(problems) or "not an image series")
                item.setText(3, "⚠ " + item.text(3))
            if getattr(info, "kind", "dicom") == "non-image":
                for col in range(len(COLUMNS)):
                    item.setForeground(col, QBrush(QColor(128, 128, 128)))
            self.tree.addTopLevelItem(item)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(6, Qt.SortOrder.AscendingOrder)
        if self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))

    def item_for(self, info: Any) -> QTreeWidgetItem | None:
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            if self.series[item.data(0, Qt.ItemDataRole.UserRole)] is info:
                return item
        return None

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        self.series_activated.emit(self.series[item.data(0, Qt.ItemDataRole.UserRole)])

    def first_image_series(self) -> Any | None:
        """The series to open automatically: the one with the most images."""
        images = [s for s in self.series if getattr(s, "kind", "dicom") != "non-image"]
        return max(images, key=lambda s: getattr(s, "n_images", 0) or 0) if images else None
