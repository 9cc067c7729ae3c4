"""The main window's default dock layout, and restoring a saved one once every dock exists.

Default: the series browser in a ~260 px column on the left, every right-hand panel
(Layers, Findings, Annotations, Models, DICOM tags) as tabs of one ~340 px column on the
right, the views taking the rest. A saved layout is restored with ``restoreState`` only
after all docks have been created (a dock added later would not get its place back).
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabBar, QTabWidget

#: width of the series browser on the left
SERIES_WIDTH = 260
#: width of the one right-hand column of tabbed panels
RIGHT_WIDTH = 350
#: tab order of the right column, first tab first; docks missing from a window are skipped
RIGHT_TABS = ("layers", "findings", "annotations", "models", "tags")
#: the tab shown when the window first opens
FIRST_TAB = "layers"


def _docks(window: QMainWindow) -> dict[str, QDockWidget]:
    return dict(getattr(window, "docks", {}) or {})


def apply_default_layout(window: QMainWindow) -> None:
    """Series on the left; the right-hand panels tabified into one column; sizes as above."""
    docks = _docks(window)
    right = [docks[name] for name in RIGHT_TABS if name in docks]
    right += [d for name, d in docks.items() if name not in RIGHT_TABS and name != "series"]
    series = docks.get("series")
    if series is not None:
        series.setFloating(False)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, series)
    for dock in right:
        dock.setFloating(False)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    for dock in right[1:]:
        window.tabifyDockWidget(right[0], dock)
    resize_default_docks(window)
    if FIRST_TAB in docks:
        docks[FIRST_TAB].raise_()


def show_full_tab_titles(window: QMainWindow) -> None:
    """Dock tabs show whole titles ("Annotations", not "Annotati..."); scroll arrows appear
    should a narrowed column not hold them all."""
    for bar in window.findChildren(QTabBar):
        if bar.parent() is window:  # the tab bars QMainWindow makes for tabified docks
            bar.setElideMode(Qt.TextElideMode.ElideNone)
            bar.setUsesScrollButtons(True)


def resize_default_docks(window: QMainWindow) -> None:
    """Give the two dock columns their default widths (again once the window is shown:
    before that Qt may keep the docks' size hints)."""
    docks = _docks(window)
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


def restore_layout(window: QMainWindow, state: QByteArray | None) -> bool:
    """Restore a saved dock layout (call when every dock exists); False: the default was laid."""
    # Tabs on top of the column read as a tabbed panel (not saved in the state: set always).
    window.setTabPosition(Qt.DockWidgetArea.RightDockWidgetArea, QTabWidget.TabPosition.North)
    window.setTabPosition(Qt.DockWidgetArea.LeftDockWidgetArea, QTabWidget.TabPosition.North)
    restored = state is not None and not state.isEmpty() and window.restoreState(state)
    if not restored:
        apply_default_layout(window)
    show_full_tab_titles(window)
    return restored
