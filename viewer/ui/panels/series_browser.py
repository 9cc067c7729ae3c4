"""Series browser: every series found in the opened folder; double-click one to read it.

Each volume of a multi-volume series (echoes, phases, b-values, a 4D NIfTI) is an entry of
its own; the play bar under the list steps through the volumes of the series shown and plays
a time series, keeping the volumes it loaded (up to a memory bound) so each loads once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import QMetaMethod, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from radlens_core.limits import max_alloc_bytes
from viewer.study.volume import Volume, VolumeCache

if TYPE_CHECKING:
    from viewer.study.scan import SeriesInfo

#: Milliseconds between volumes while a time series plays.
PLAY_INTERVAL_MS = 500

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


def description_text(info: SeriesInfo) -> str:
    """The Description cell: which volume this entry is (first: the dock is narrow and the
    volumes of one series share their description), then the series description."""
    volume = info.volume_text
    if not volume:
        return info.description or ""
    return f"{volume} · {info.description}" if info.description else volume


class _Row(QTreeWidgetItem):
    """A row that sorts numbers as numbers and the volumes of one series by their number."""

    def _key(self, col: int) -> tuple:
        value = self.data(col, Qt.ItemDataRole.DisplayRole)
        if value is None or value == "":
            first: tuple = (0, 0, "")
        elif isinstance(value, (int, float)):
            first = (1, float(value), "")
        else:
            first = (2, 0, str(value).lower())
        return (*first, self.data(1, Qt.ItemDataRole.UserRole) or 0)

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        tree = self.treeWidget()
        col = tree.sortColumn() if tree is not None else 0
        if not isinstance(other, _Row):
            return False
        return self._key(col) < other._key(col)


def row_tooltip(info: SeriesInfo) -> str:
    """Every field of a series, one per line: hidden or cut columns are still readable."""
    name, pid = info.patient_name or "", info.patient_id or ""
    fields = [
        ("Patient", f"{name} ({pid})" if name and pid else name or pid),
        ("Study date", _date_text(info.study_date)),
        ("Study", info.study_description or ""),
        ("Modality", info.modality or ""),
        ("Series", info.description or ""),
        ("Volume", info.volume_text + (" (a time series)" if info.time_series else "")),
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
    #: a volume of a multi-volume series already loaded (from the cache): show it as loaded
    volume_activated = Signal(object)
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
        self._build_play_bar(layout)
        #: Volumes of multi-volume series already loaded (``remember``), by key.
        self.cache = VolumeCache(max_alloc_bytes() // 2)
        #: The volume last asked for, and whether it has arrived (playing waits for it).
        self.current: SeriesInfo | None = None
        self._waiting = False

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
        """List ``series``. A scan reports its series as it goes: volumes loaded of a series
        whose files are the same as listed before stay cached, and the series on screen
        stays the current one (a series that changed is loaded anew)."""
        before = {s.series_uid: s.files for s in self.series}
        unchanged = {
            s.series_uid
            for s in series
            if s.series_uid in before and list(before[s.series_uid]) == list(s.files)
        }
        self.cache.retain(unchanged)
        current = self.current
        if current is None or current.series_uid not in unchanged:
            self.stop()
            self.current = None
            self._waiting = False
        else:
            self.current = next(s for s in series if s.series_uid == current.series_uid)
        self._update_play_bar()
        self.tree.setSortingEnabled(False)
        self.tree.clear()
        self.series = list(series)
        for i, info in enumerate(self.series):
            item = _Row(
                [
                    info.patient_name or info.patient_id or "",
                    _date_text(info.study_date),
                    info.modality or "",
                    description_text(info),
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
            item.setData(1, Qt.ItemDataRole.UserRole, info.volume_index)
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
        shown = self.item_for(self.current) if self.current is not None else None
        if shown is not None:
            self.tree.setCurrentItem(shown)
        elif self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))

    def item_for(self, info: SeriesInfo) -> QTreeWidgetItem | None:
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            if self.series[item.data(0, Qt.ItemDataRole.UserRole)] is info:
                return item
        return None

    def _activated(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        self.activate(self.series[item.data(0, Qt.ItemDataRole.UserRole)])

    # ---- volumes of one series: step, play, cache ---------------------------------------
    def activate(self, info: SeriesInfo) -> None:
        """Show ``info``: from the cache when its volume was loaded before and the window
        takes volumes (``volume_activated`` is connected), else by loading it."""
        self.current = info
        item = self.item_for(info)
        if item is not None and self.tree.currentItem() is not item:
            self.tree.setCurrentItem(item)  # the row follows stepping and playing
        cached = self.cache.get(info.series_uid) if info.volume_count > 1 else None
        takes_volumes = self.isSignalConnected(QMetaMethod.fromSignal(self.volume_activated))
        self._update_play_bar()
        if cached is not None and takes_volumes:
            self._waiting = False
            self.volume_activated.emit(cached)
            return
        self._waiting = True
        self.series_activated.emit(info)

    def remember(self, volume: Volume) -> None:
        """A series finished loading (connect the window's ``series_loaded``): keep it when it
        is one volume of several, and let a playing series go on."""
        if any(s.series_uid == volume.key and s.volume_count > 1 for s in self.series):
            self.cache.put(volume)
        if self.current is not None and volume.key == self.current.series_uid:
            self._waiting = False

    def keep(self, volume: Volume, info: SeriesInfo) -> None:
        """Cache ``volume``, read whole from ``info`` by a load that ended after the user had
        moved on (not shown): only while ``info`` is listed with the same files, as one volume
        of several. The current volume and playing are left as they are."""
        if info.volume_count > 1 and any(
            s.series_uid == info.series_uid and list(s.files) == list(info.files)
            for s in self.series
        ):
            self.cache.put(volume)

    def siblings(self, info: SeriesInfo | None = None) -> list[SeriesInfo]:
        """The volumes of ``info``'s series (the current one by default), in order."""
        info = info or self.current
        if info is None or info.volume_count <= 1 or not info.volume_group:
            return []
        same = [
            s
            for s in self.series
            if s.volume_group == info.volume_group and s.study_uid == info.study_uid
        ]
        return sorted(same, key=lambda s: s.volume_index)

    def step(self, delta: int) -> None:
        """Show the next (``delta`` 1) or previous (-1) volume of the current series."""
        volumes = self.siblings()
        if not volumes or self.current is None:
            return
        at = next((k for k, s in enumerate(volumes) if s.series_uid == self.current.series_uid), 0)
        self.activate(volumes[(at + delta) % len(volumes)])

    def play(self) -> None:
        """Step through the volumes of the current time series until ``stop``."""
        if self.current is None or not self.current.time_series or not self.siblings():
            self.play_button.setChecked(False)
            return
        self.play_timer.start()
        self.play_button.setChecked(True)

    def stop(self) -> None:
        self.play_timer.stop()
        self.play_button.setChecked(False)

    @property
    def playing(self) -> bool:
        return self.play_timer.isActive()

    def _tick(self) -> None:
        # The next volume only once the last one is on screen: a load is never cancelled
        # by the next one, so every volume is shown (and cached) once.
        if not self._waiting:
            self.step(1)

    def _build_play_bar(self, layout: QVBoxLayout) -> None:
        self.play_bar = QWidget(self)
        self.play_bar.setObjectName("volume_play_bar")
        row = QHBoxLayout(self.play_bar)
        row.setContentsMargins(2, 0, 2, 2)
        self.prev_button = QToolButton(self.play_bar)
        self.prev_button.setText("◀")
        self.prev_button.setToolTip("Previous volume of this series")
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.play_button = QToolButton(self.play_bar)
        self.play_button.setText("▶ Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play the volumes of this time series one after another")
        self.play_button.toggled.connect(lambda on: self.play() if on else self.stop())
        self.next_button = QToolButton(self.play_bar)
        self.next_button.setText("▶|")
        self.next_button.setToolTip("Next volume of this series")
        self.next_button.clicked.connect(lambda: self.step(1))
        self.volume_label = QLabel(self.play_bar)
        self.volume_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for widget in (self.prev_button, self.play_button, self.next_button):
            row.addWidget(widget)
        row.addWidget(self.volume_label, 1)
        layout.addWidget(self.play_bar)
        self.play_timer = QTimer(self)
        self.play_timer.setInterval(PLAY_INTERVAL_MS)
        self.play_timer.timeout.connect(self._tick)
        self.play_bar.setVisible(False)

    def _update_play_bar(self) -> None:
        info = self.current
        several = bool(self.siblings())
        self.play_bar.setVisible(several)
        if not several or info is None:
            if self.playing:
                self.stop()
            return
        self.play_button.setEnabled(info.time_series)
        self.volume_label.setText(info.volume_text)
        self.volume_label.setToolTip(info.volume_text)

    def first_image_series(self) -> SeriesInfo | None:
        """The series to open automatically: the one with the most images."""
        images = [s for s in self.series if s.kind != "non-image"]
        return max(images, key=lambda s: s.n_images or 0) if images else None
