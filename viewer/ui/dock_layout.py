"""The main window's default dock layout, and restoring a saved one once every dock exists.

Default: the series browser in a ~260 px column on the left, every right-hand panel
(Layers, Findings, Annotations, Models, DICOM tags) as tabs of one ~340 px column on the
right, the views taking the rest. A saved layout is restored with ``restoreState`` only
after all docks have been created (a dock added later would not get its place back).
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabBar, QTabWidget

#: width of the series browser on the left
SERIES_WIDTH = 260
#: width of the one right-hand column of tabbed panels
RIGHT_WIDTH = 350
#: tab order of the right column, first tab first; docks missing from a window are skipped
RIGHT_TABS = ("layers", "findings", "annotations", "segment_editor", "models", "tags")
#: docks tabbed behind the series browser in the left column (sources of series)
LEFT_TABS = ("pacs",)
#: the tab shown when the window first opens
FIRST_TAB = "layers"
#: the window's size when no geometry was saved (shrunk to fit a smaller screen)
WINDOW_SIZE = QSize(1400, 900)


Docks = Mapping[str, QDockWidget]


def apply_default_layout(window: QMainWindow, docks: Docks) -> None:
    """Series on the left; the right-hand panels tabified into one column; sizes as above."""
    right = [docks[name] for name in RIGHT_TABS if name in docks]
    right += [
        d
        for name, d in docks.items()
        if name not in RIGHT_TABS and name != "series" and name not in LEFT_TABS
    ]
    series = docks.get("series")
    if series is not None:
        series.setFloating(False)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, series)
        for name in LEFT_TABS:
            if name in docks:
                docks[name].setFloating(False)
                window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, docks[name])
                window.tabifyDockWidget(series, docks[name])
        series.raise_()
    for dock in right:
        dock.setFloating(False)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    for dock in right[1:]:
        window.tabifyDockWidget(right[0], dock)
    resize_default_docks(window, docks)
    if FIRST_TAB in docks:
        docks[FIRST_TAB].raise_()


def show_full_tab_titles(window: QMainWindow, docks: Docks | None = None) -> None:
    """Dock tabs show whole titles ("Annotations", not "Annotati..."); scroll arrows appear
    should a narrowed column not hold them all. With ``docks``: a tab bar Qt left behind from
    an earlier grouping (its tabs are no group of docks now) is hidden, not drawn over a panel."""
    groups = set()
    for dock in (docks or {}).values():
        if not dock.isHidden() and not dock.isFloating():
            group = [dock, *window.tabifiedDockWidgets(dock)]
            groups.add(frozenset(d.windowTitle() for d in group))
    same_group: dict[frozenset[str], list[QTabBar]] = {}
    for bar in window.findChildren(QTabBar):
        if bar.parent() is window:  # the tab bars QMainWindow makes for tabified docks
            bar.setElideMode(Qt.TextElideMode.ElideNone)
            bar.setUsesScrollButtons(True)
            titles = frozenset(bar.tabText(i) for i in range(bar.count()))
            if docks is not None and titles not in groups:
                bar.hide()
            elif docks is not None and not bar.isHidden():
                same_group.setdefault(titles, []).append(bar)
    for bars in same_group.values():
        if len(bars) > 1:
            _hide_stale_twins(bars, docks or {})


def _hide_stale_twins(bars: list[QTabBar], docks: Docks) -> None:
    """Several bars with one group's tabs (Qt may leave the old one after re-tabbing): the
    bar Qt lays out follows each raised dock's tab; a left-over bar does not, and is hidden."""
    by_title = {d.windowTitle(): d for d in docks.values()}
    shown = bars[0].tabText(bars[0].currentIndex())
    live = list(bars)
    for i in range(bars[0].count()):
        dock = by_title.get(bars[0].tabText(i))
        if dock is not None:
            dock.raise_()
            live = [b for b in live if b.tabText(b.currentIndex()) == bars[0].tabText(i)]
    if live:
        for bar in bars:
            if bar not in live:
                bar.hide()
    if shown in by_title:
        by_title[shown].raise_()


def resize_default_docks(window: QMainWindow, docks: Docks) -> None:
    """Give the two dock columns their default widths (again once the window is shown:
    before that Qt may keep the docks' size hints)."""
    widgets, widths = [], []
    if "series" in docks:
        widgets.append(docks["series"])
        widths.append(SERIES_WIDTH)
    right = next((docks[n] for n in RIGHT_TABS if n in docks), None)
    if right is not None:
        widgets.append(right)
        widths.append(RIGHT_WIDTH)
    if widgets:
        window.resizeDocks(widgets, widths, Qt.Orientation.Horizontal)


def fit_default_size(window: QMainWindow) -> None:
    """Size a window that has no saved geometry: WINDOW_SIZE, never more than its screen.

    The docks are first added one under another and only then tabbed; that stack (over
    1000 px tall) grows the window, and a later resize before the layout settles is lost.
    """
    window.layout().activate()  # settle the tabbed layout so its smaller minimum applies
    size = WINDOW_SIZE
    screen = window.screen()
    if screen is not None:
        size = size.boundedTo(screen.availableGeometry().size())
    window.resize(size.expandedTo(window.minimumSizeHint()))


def restore_layout(window: QMainWindow, docks: Docks, state: QByteArray | None) -> bool:
    """Restore a saved dock layout (call when every dock exists); False: the default was laid."""
    # Tabs on top of the column read as a tabbed panel (not saved in the state: set always).
    window.setTabPosition(Qt.DockWidgetArea.RightDockWidgetArea, QTabWidget.TabPosition.North)
    window.setTabPosition(Qt.DockWidgetArea.LeftDockWidgetArea, QTabWidget.TabPosition.North)
    restored = state is not None and not state.isEmpty() and window.restoreState(state)
    if not restored:
        apply_default_layout(window, docks)
    show_full_tab_titles(window, docks)
    return restored
