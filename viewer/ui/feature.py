"""How a feature (Analyze, annotation, training; later PACS, batch) plugs into the main window.

The window builds one ``WindowServices`` and hands it to each feature. A feature adds its
actions to named menus and tool bars, its docks, shows status messages, runs background work
under the window's one progress bar and Cancel, and reads the open volume, through it; it
never sets the window's attributes or reaches into its private state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QToolBar

from viewer.study.volume import Volume
from viewer.ui.activity import Activity, ActivityBar
from viewer.ui.state import ViewerState
from viewer.ui.workers import Task, TaskContext

if TYPE_CHECKING:
    from viewer.ui.settings import Settings
    from viewer.ui.viewer_area import ViewerArea

#: Top-level menus in the order they appear; a menu not listed goes before Help.
MENU_ORDER = ("File", "Edit", "View", "Window", "AI", "Tools", "Help")


class Feature(Protocol):
    """What the window asks of a feature it hosts (built with a ``WindowServices``)."""

    def shutdown(self, timeout_ms: int) -> object:
        """Stop what the feature runs in the background (bounded wait): the window closes."""


F = TypeVar("F", bound=Feature)


class WindowServices(QObject):
    """The window as its features see it: menus, tool bars, docks, status, work, the volume."""

    #: the open volume changed (another series, or closed)
    series_changed = Signal()
    #: all slices of the open volume are in (emitted by the window's loader)
    series_loaded = Signal(object)

    def __init__(
        self,
        window: QMainWindow,
        state: ViewerState,
        settings: Settings | None = None,
        area: ViewerArea | None = None,
    ) -> None:
        super().__init__(window)
        self.window, self.state, self.settings, self.area = window, state, settings, area
        self.activity = ActivityBar(window)
        self.actions: dict[str, QAction] = {}
        self._docks: dict[str, QDockWidget] = {}
        #: set once the window laid its docks out: only docks added later are tabbed here
        #: (tabbing earlier, then again in the default layout, leaves Qt's old tab bars drawn)
        self.laid_out = False
        self._toolbars: dict[str, QToolBar] = {}
        self._features: list[Feature] = []
        self._loading: Task | None = None
        state.volume_changed.connect(self.series_changed)

    # ---- the volume ----------------------------------------------------------------------
    @property
    def volume(self) -> Volume | None:
        return self.state.volume

    def loading(self) -> bool:
        """True while the window's loader is still filling the open volume's slices."""
        return self._loading is not None and self._loading in self.activity.tasks

    def set_loading(self, task: Task | None) -> None:
        self._loading = task

    # ---- menus, tool bars, docks ---------------------------------------------------------
    def menu(self, title: str) -> QMenu:
        """The top-level menu called ``title`` ("File", "&Tools"...), made on first use."""
        plain = title.replace("&", "")
        bar = self.window.menuBar()
        for action in bar.actions():
            if action.menu() is not None and action.text().replace("&", "") == plain:
                return action.menu()  # type: ignore[return-value]
        menu = QMenu(title if "&" in title else f"&{title}", self.window)
        rank = MENU_ORDER.index(plain) if plain in MENU_ORDER else MENU_ORDER.index("Help")
        before = next(
            (
                a
                for a in bar.actions()
                if a.text().replace("&", "") in MENU_ORDER
                and MENU_ORDER.index(a.text().replace("&", "")) > rank
            ),
            None,
        )
        if before is not None:
            bar.insertMenu(before, menu)
        else:
            bar.addMenu(menu)
        return menu

    def add_action(self, menu: str, action: QAction, name: str = "", before: str = "") -> QAction:
        """Put ``action`` in ``menu`` (before the named action ``before``, if given) and make
        its shortcut work window-wide; ``name`` lists it in ``actions``."""
        target = self.menu(menu)
        anchor = self.actions.get(before) if before else None
        if anchor is not None:
            target.insertAction(anchor, action)
        else:
            target.addAction(action)
        self.window.addAction(action)
        if name:
            self.actions[name] = action
        return action

    def toolbar(self, name: str, title: str = "") -> QToolBar:
        """The tool bar called ``name``, made (at the top) on first use."""
        bar = self._toolbars.get(name)
        if bar is None:
            bar = QToolBar(title or name, self.window)
            bar.setObjectName(f"{name}_toolbar")
            self.add_toolbar(name, bar)
        return bar

    def add_toolbar(self, name: str, bar: QToolBar) -> QToolBar:
        self._toolbars[name] = bar
        self.window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        return bar

    @property
    def docks(self) -> Mapping[str, QDockWidget]:
        return dict(self._docks)

    def add_dock(
        self,
        key: str,
        dock: QDockWidget,
        area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
        beside: str = "",
        restore: bool = False,
    ) -> QDockWidget:
        """Add ``dock`` (tabbed beside the dock ``beside`` when both share an area).
        ``restore``: a dock made after the window restored its layout gets its saved place."""
        if not (restore and self.window.restoreDockWidget(dock)):
            self.window.addDockWidget(area, dock)
            other = self._docks.get(beside) if self.laid_out else None
            if other is not None and self.window.dockWidgetArea(other) == area:
                self.window.tabifyDockWidget(other, dock)
        self._docks[key] = dock
        return dock

    # ---- feedback and background work ----------------------------------------------------
    def show_message(self, text: str, ms: int = 8000) -> None:
        self.window.statusBar().showMessage(text, ms)

    def begin(self, label: str, cancel: Callable[[], None]) -> Activity:
        """Show a job run elsewhere (e.g. a thread pool) in the one progress bar; Cancel
        calls ``cancel``. Call ``end()`` on the answer when it stops."""
        return self.activity.begin(label, cancel)

    def run(
        self,
        fn: Callable[[TaskContext], Any],
        label: str,
        on_success: Callable[[Any], None],
        on_partial: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        wanted: Callable[[Task], bool] | None = None,
    ) -> Task:
        """Run ``fn`` on a worker thread under the one progress bar; the callbacks run on the
        main thread, and only while ``wanted(task)`` (default: not cancelled)."""
        return self.activity.run(fn, label, on_success, on_partial, on_failed, wanted)

    def cancel_all(self) -> None:
        self.activity.cancel_all()

    def wait_idle(self, ms: int = 10_000) -> None:
        self.activity.wait_idle(ms)

    # ---- features ------------------------------------------------------------------------
    def register(self, feature: F) -> F:
        """Host ``feature``: the window's close will call its ``shutdown``."""
        self._features.append(feature)
        return feature

    def shutdown(self, timeout_ms: int) -> None:
        """Stop every registered feature's background work (for the window's closeEvent)."""
        for feature in self._features:
            feature.shutdown(timeout_ms)
