"""Series browser: every series found in the opened folder; double-click one to read it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHeaderView,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from viewer.study.scan import SeriesInfo

#: Full column names (header tooltips and the header's right-click menu).
COLUMNS = ("Patient", "Date", "Modality", "Description", "Images", "Size", "Series number")
#: Header texts: short, because the dock is about 260 px wide.
HEADERS = ("Patient", "Date", "Mod.", "Description", "Imgs", "Size", "#")
#: Shown until the user turns others on from the header's right-click menu.
DEFAULT_SHOWN = frozenset({"Patient", "Date", "Modality", "Description", "Images"})
SERIES_NUMBER = COLUMNS.index("Series number")


def _size_text(info: SeriesInfo) -> str:
    rows, cols = info.rows or 0, info.cols or 0
    return f"{cols}×{rows}" if rows and cols else ""


def _date_text(value: str | None) -> str:
    s = str(value or "")
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else s


def row_tooltip(info: SeriesInfo) -> str:
    """Every field of a series, one per line: hidden or cut columns are still readable."""
    name, pid = info.patient_name or "", info.patient_id or ""
    fields = [
        ("Patient", f"{name} ({pid})" if name and pid else name or pid),
        ("Study date", _date_text(info.study_date)),
        ("Study", info.study_description or ""),
        ("Modality", info.modality or ""),
        ("Series", info.description or ""),
        ("Series number", str(info.series_number or "")),
        ("Images", str(info.n_images or "")),
        ("Size", _size_text(info)),
    ]
    lines = [f"{label}: {value}" for label, value in fields if value]
    problems = list(info.problems)
    if info.kind == "non-image":
        lines.append("Not an image series")
    lines.extend(f"⚠ {p}" for p in problems)
    return "\n".join(lines)


class SeriesBrowser(QWidget):
    """A flat, sortable table of series; non-image series are greyed out with their reason."""

    series_activated = Signal(object)
    #: the shown columns' full names, after the user turned one on or off
    columns_changed = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("series_tree")
        self.tree.setHeaderLabels(list(HEADERS))
        for col, full in enumerate(COLUMNS):
            self.tree.headerItem().setToolTip(
                col, f"{full}\nRight-click the header to choose columns"
            )
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSortingEnabled(True)
        # Series number order from the start: otherwise an empty list shows Patient sorted.
        self.tree.sortByColumn(SERIES_NUMBER, Qt.SortOrder.AscendingOrder)
        self.tree.setUniformRowHeights(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._size_columns()
        header = self.tree.header()
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._show_column_menu)
        self.column_menu: QMenu | None = None
        self.tree.itemActivated.connect(self._activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.series: list[SeriesInfo] = []

    def _size_columns(self) -> None:
        # Fixed widths from the font, not ResizeToContents: seven content-wide columns made
        # the narrow dock scroll sideways. Description takes what is left.
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        text, head = self.tree.fontMetrics(), header.fontMetrics()
        pad = 8  # cell margins; a cut value is still whole in the row's tooltip
        widths = {
            "Patient": head.horizontalAdvance("Patient") + pad,
            "Date": text.horizontalAdvance("0000-00-00") + pad,
            "Modality": max(text.horizontalAdvance("MR"), head.horizontalAdvance("Mod.")) + pad,
            "Images": max(text.horizontalAdvance("999"), head.horizontalAdvance("Imgs")) + pad,
            "Size": text.horizontalAdvance("512×512") + pad,
            "Series number": head.horizontalAdvance("99") + pad,
        }
        for col, name in enumerate(COLUMNS):
            if name == "Description":
                header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
            else:
                header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(col, widths[name])
            self.tree.setColumnHidden(col, name not in DEFAULT_SHOWN)

    def set_column_shown(self, name: str, shown: bool) -> None:
        """Show or hide a column by its full name; the last shown column cannot be hidden."""
        col = COLUMNS.index(name)
        if not shown and sum(not self.tree.isColumnHidden(c) for c in range(len(COLUMNS))) <= 1:
            return
        if self.tree.isColumnHidden(col) == shown:
            self.tree.setColumnHidden(col, not shown)
            self.columns_changed.emit(self.shown_columns())

    def set_shown_columns(self, names: Iterable[str]) -> None:
        """Show exactly these columns (a saved choice); unknown names are ignored and an
        empty or unusable choice keeps the default columns."""
        wanted = {n for n in names if n in COLUMNS}
        if not wanted:
            return
        for col, name in enumerate(COLUMNS):
            self.tree.setColumnHidden(col, name not in wanted)

    def shown_columns(self) -> list[str]:
        return [n for c, n in enumerate(COLUMNS) if not self.tree.isColumnHidden(c)]

    def _show_column_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        for col, name in enumerate(COLUMNS):
            act = menu.addAction(name)
            act.setCheckable(True)
            act.setChecked(not self.tree.isColumnHidden(col))
            act.toggled.connect(lambda on, n=name: self.set_column_shown(n, on))
        self.column_menu = menu
        # popup, not exec: the event loop keeps running (and tests can drive the menu).
        menu.popup(self.tree.header().mapToGlobal(pos))

    def set_series(self, series: list[SeriesInfo]) -> None:
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        self.series = list(series)
        for i, info in enumerate(self.series):
            item = QTreeWidgetItem(
                [
                    info.patient_name or info.patient_id or "",
                    _date_text(info.study_date),
                    info.modality or "",
                    info.description or "",
                    "",
                    _size_text(info),
                    "",
                ]
            )
            # Numbers sort as numbers, not text.
            item.setData(4, Qt.ItemDataRole.DisplayRole, int(info.n_images or 0))
            number = info.series_number
            if number is not None:
                item.setData(6, Qt.ItemDataRole.DisplayRole, int(number))
            item.setData(0, Qt.ItemDataRole.UserRole, i)
            tip = row_tooltip(info)
            for col in range(len(COLUMNS)):
                item.setToolTip(col, tip)
            if info.kind == "non-image" or info.problems:
                item.setText(3, "⚠ " + item.text(3))
            if info.kind == "non-image":
                for col in range(len(COLUMNS)):
                    item.setForeground(col, QBrush(QColor(128, 128, 128)))
            self.tree.addTopLevelItem(item)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(SERIES_NUMBER, Qt.SortOrder.AscendingOrder)
        if self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))

    def item_for(self, info: SeriesInfo) -> QTreeWidgetItem | None:
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            if self.series[item.data(0, Qt.ItemDataRole.UserRole)] is info:
                return item
        return None

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        self.series_activated.emit(self.series[item.data(0, Qt.ItemDataRole.UserRole)])

    def first_image_series(self) -> SeriesInfo | None:
        """The series to open automatically: the one with the most images."""
        images = [s for s in self.series if s.kind != "non-image"]
        return max(images, key=lambda s: s.n_images or 0) if images else None
