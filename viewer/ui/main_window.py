"""The main window (~410 lines: the hub features register with): browser, views, panels, loading."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.study.volume import Volume
from viewer.ui import actions as ui_actions
from viewer.ui.analyze_feature import AnalyzeFeature
from viewer.ui.dock_layout import (
    apply_default_layout,
    fit_default_size,
    resize_default_docks,
    restore_layout,
    show_full_tab_titles,
)
from viewer.ui.feature import WindowServices
from viewer.ui.loading import (
    FirstSlice,
    SeriesSoFar,
    SlicesArrived,
    image_file_task,
    is_image_file,
    scan_task,
    series_task,
)
from viewer.ui.pacs_feature import PacsFeature
from viewer.ui.panels.layers_panel import LayersPanel
from viewer.ui.panels.problems import ProblemsDialog
from viewer.ui.panels.series_browser import SeriesBrowser
from viewer.ui.panels.tags_panel import TagsPanel
from viewer.ui.readout import POINT_HINT, START_HINT, CursorReadout
from viewer.ui.result_banner import IntendedUseBanner
from viewer.ui.save_status import SaveStatusFeature
from viewer.ui.settings import Settings
from viewer.ui.state import ViewerState
from viewer.ui.theme import icon
from viewer.ui.tools.annotation_bar import AnnotationToolBar
from viewer.ui.tools.install import Annotations
from viewer.ui.training_feature import TrainingFeature
from viewer.ui.viewer_area import ViewerArea
from viewer.ui.workers import Task, TaskContext

if TYPE_CHECKING:
    from viewer.study.scan import ScanResult, SeriesInfo, SkippedFile


class MainWindow(QMainWindow):
    """The viewer's frame. Features plug in through ``self.services`` (viewer.ui.feature)."""

    scan_finished = Signal(object)
    series_loaded = Signal(object)
    load_failed = Signal(str)

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("RadLens")
        self.setWindowIcon(icon("app"))
        self.resize(1400, 900)
        self.settings = settings or Settings()
        self.state = ViewerState(self)
        self.area = ViewerArea(self.state, self)
        # The views sit under a slot for the AI intended-use banner (added with Analyze).
        central = QWidget(self)
        self.central_layout = QVBoxLayout(central)
        self.central_layout.setContentsMargins(0, 0, 0, 0)
        self.central_layout.setSpacing(0)
        self.central_layout.addWidget(self.area, 1)
        self.setCentralWidget(central)
        self.hover_label = QLabel(START_HINT)
        self.statusBar().addWidget(self.hover_label, 1)
        self.services = services = WindowServices(self, self.state, self.settings, self.area)
        self.series_loaded.connect(services.series_loaded)
        self.browser = SeriesBrowser(self)
        self.browser.series_activated.connect(self.open_series)
        # Volumes of a multi-volume series: each loads once (the browser's cache), then is shown
        # from the cache when stepped or played to.
        self.series_loaded.connect(self.browser.remember)
        self.browser.volume_activated.connect(self._volume_from_cache)
        self.browser.set_shown_columns(str(self.settings.get("series/columns", "")).split(","))
        self.browser.columns_changed.connect(
            lambda names: self.settings.set("series/columns", ",".join(names))
        )
        self.layers_panel = LayersPanel(self.state.layers, self)
        self.tags_panel = TagsPanel(self)
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        services.add_dock("series", self._dock("Series", self.browser), left)
        services.add_dock("layers", self._dock("Layers", self.layers_panel), right)
        services.add_dock("tags", self._dock("DICOM tags", self.tags_panel), right)

        self._scan: Task | None = None
        self._load: Task | None = None
        self.scan_result: ScanResult | None = None
        self.current_series: SeriesInfo | None = None
        self.last_error = ""
        self.error_box: QMessageBox | None = None
        self.controls = ui_actions.build(self, services)
        self.action_map = services.actions
        self.setAcceptDrops(True)

        self.readout = CursorReadout(
            self.state, self.area, self.hover_label, self.tags_panel, self.docks["tags"]
        )

        # Features, in the order they shut down when the window closes.
        self.annotations = services.register(Annotations(services))
        self.saving = services.register(SaveStatusFeature(services, self.annotations.controller))
        self.analyze = services.register(AnalyzeFeature(services))
        self.annotations.connect_analyze(self.analyze)  # model results become proposals
        self.training = services.register(TrainingFeature(services, self.analyze))
        self.pacs = services.register(PacsFeature(services, open_path=self.open_path))
        self.banner = IntendedUseBanner(self.analyze, self)
        self.central_layout.insertWidget(0, self.banner)
        self._restore()  # last: every dock exists, so a saved layout puts each one back
        self._complete_panels_menu()

    @property
    def docks(self) -> Mapping[str, QDockWidget]:
        return self.services.docks

    @property
    def annotation_bar(self) -> AnnotationToolBar:
        return self.annotations.bar

    @property
    def tasks(self) -> list[Task]:
        """The background tasks running under the window's progress bar."""
        return self.services.activity.tasks

    @property
    def progress(self) -> QProgressBar:
        return self.services.activity.progress

    @property
    def cancel_button(self) -> QPushButton:
        return self.services.activity.cancel_button

    def _dock(self, title: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        return dock

    def _restore(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._default_layout = not restore_layout(self, self.docks, state)
        self.services.laid_out = True
        if geometry is None:
            fit_default_size(self)
        self.area.set_layout(str(self.settings.get("view/layout", "single")))
        self.area.set_text_visible(bool(self.settings.get("view/show_text", True)))

    def _complete_panels_menu(self) -> None:
        """View > Panels: a toggle for every dock, and a way back to the default layout."""
        menu = self.controls.panels_menu
        listed = set(menu.actions())
        for dock in self.docks.values():
            if dock.toggleViewAction() not in listed:
                menu.addAction(dock.toggleViewAction())
        menu.addSeparator()
        action = menu.addAction("&Reset panel layout")
        action.triggered.connect(lambda *_: self.reset_layout())
        self.action_map["reset_layout"] = action

    def reset_layout(self) -> None:
        """Put every panel back in its default place and size (View > Panels). Each dock
        leaves the layout first: re-tabbing docks still grouped made Qt draw a second bar
        of the same group over the first."""
        for dock in self.docks.values():
            self.removeDockWidget(dock)
        for dock in self.docks.values():
            dock.show()
        apply_default_layout(self, self.docks)
        show_full_tab_titles(self, self.docks)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._default_layout:
            # Dock widths only take once the window has its real size.
            self._default_layout = False
            QTimer.singleShot(0, self, lambda: resize_default_docks(self, self.docks))

    # ---- opening -------------------------------------------------------------------------
    def open_path(self, path: str | Path, open_first: bool = False) -> None:
        """Scan a folder (series appear in the browser as each of its folders is scanned) or
        open one NIfTI/NRRD/MHA file. ``open_first``: show the first loadable series as soon
        as it is found, while the scan goes on (else only a folder's only series opens)."""
        path = Path(path).expanduser()
        if open_first:
            self._open_first_after_scan = True
        if is_image_file(path):
            self._start_load(image_file_task(path), f"Reading {path.name}", None)
        elif path.is_dir() or path.is_file():
            if path.is_dir():
                self.settings.add_recent(path)
                ui_actions.refresh_recent(self, self.controls)
            self.cancel_work()
            self.browser.set_series([])
            self._opened_during_scan = None
            self._scanning = True
            self._scan = self._run(
                scan_task(path), f"Scanning {path}", self._scan_done, self._scan_partial
            )
        else:
            self.show_error(f"Cannot open {path}: no such folder or file.")

    def open_demo(self) -> None:
        try:
            from viewer.study.demo import demo_series_dir

            folder = demo_series_dir()
        except Exception as exc:  # noqa: BLE001 - the demo failing must leave the window usable
            self.show_error(f"The demo study could not be prepared: {exc}")
            return
        self._open_first_after_scan = True
        self.open_path(folder)

    _open_first_after_scan = False
    #: A series opened while the scan ran: its final listing may hold more files.
    _opened_during_scan: SeriesInfo | None = None
    _scanning = False

    def _scan_partial(self, obj: Any) -> None:
        if not isinstance(obj, SeriesSoFar):
            return
        self.browser.set_series(list(obj.series))
        shown = self._opened_during_scan
        if shown is not None:  # the row of the series on screen stays the selected one
            self._select_row(
                next((s for s in obj.series if s.series_uid == shown.series_uid), None)
            )
        elif self._open_first_after_scan:
            first = next((s for s in obj.series if s.kind != "non-image" and s.loadable), None)
            if first is not None:
                self.open_series(first)
                self._select_row(first)

    def _select_row(self, info: SeriesInfo | None) -> None:
        item = self.browser.item_for(info) if info is not None else None
        if item is not None:
            self.browser.tree.setCurrentItem(item)

    def _reopen_after_scan(self, early: SeriesInfo, series: list[SeriesInfo]) -> None:
        """A series opened before the scan ended: kept when the scan found no more of it,
        loaded again (complete) when a later folder held more of its files."""
        final = next((s for s in series if s.series_uid == early.series_uid), None)
        if final is None:  # split into parts or volumes once all its files were seen
            base = early.series_uid.split("#")[0]
            final = next((s for s in series if s.series_uid.split("#")[0] == base), None)
        if final is None:
            return
        self._select_row(final)
        if final.series_uid == early.series_uid and list(final.files) == list(early.files):
            self.current_series = final
        else:
            self.open_series(final)

    def _scan_done(self, result: ScanResult) -> None:
        self.scan_result = result
        early, self._opened_during_scan = self._opened_during_scan, None
        self._scanning = False
        series, skipped = list(result.series), list(result.skipped)
        self.browser.set_series(series)
        self.action_map["problems"].setEnabled(bool(skipped))
        msg = f"Found {len(series)} series"
        if skipped:
            msg += f"; {len(skipped)} file(s) skipped (Help > Problems lists them)"
        self.statusBar().showMessage(msg, 10000)
        if not series and not skipped:
            self.show_error("No DICOM series or images were found in this folder.")
        elif not series:
            self.show_error(
                f"No readable series in this folder: {len(skipped)} file(s) were skipped.",
                details=skipped,
            )
        self.scan_finished.emit(result)
        image_series = [s for s in series if s.kind != "non-image"]
        if early is not None:
            self._reopen_after_scan(early, series)
        elif self._open_first_after_scan or len(image_series) == 1:
            first = self.browser.first_image_series()
            if first is not None:
                self.open_series(first)
        self._open_first_after_scan = False

    def open_series(self, info: SeriesInfo) -> None:
        self.current_series = info
        if self._scanning:
            self._opened_during_scan = info
        name = info.description or info.series_uid or "series"
        self._start_load(series_task(info), f"Loading {name}", info)

    def _volume_from_cache(self, volume: Volume) -> None:
        if self._load is not None:
            self._load.cancel()
            self._load = None
        self.current_series = self.browser.current
        self._loaded(volume)

    def _start_load(
        self, fn: Callable[[TaskContext], Any], label: str, info: SeriesInfo | None
    ) -> None:
        if self._load is not None:
            self._load.cancel()
        self._load = task = self._run(fn, label, self._loaded, self._partial)
        self.services.set_loading(task)
        if info is not None:  # superseded as it ended (result queued): not shown, but cached
            task.succeeded.connect(lambda v: task is self._load or self.browser.keep(v, info))

    def _partial(self, obj: Any) -> None:
        if isinstance(obj, FirstSlice):
            self.state.set_volume(obj.volume, first_slice=obj.index)
            self.area.set_active_plane(self.area.active_plane)
            # Keys scroll at once, without a click into the image first.
            self.area.active_view.setFocus()
        elif isinstance(obj, SlicesArrived):
            self.state.data_updated.emit()

    def _loaded(self, volume: Volume) -> None:
        if volume is not self.state.volume:
            self.state.set_volume(volume)
        else:
            self.state.data_updated.emit()
        self.setWindowTitle(f"RadLens - {volume.description or volume.modality}")
        # The start-up hint ("Open a folder to begin") must not come back once a series is shown.
        self.hover_label.setText(POINT_HINT)
        ui_actions.refresh_presets(self, self.controls)
        for warning in volume.warnings:
            self.statusBar().showMessage(f"Warning: {warning}", 10000)
        self.series_loaded.emit(volume)

    # ---- tasks ---------------------------------------------------------------------------
    def _run(
        self,
        fn: Callable[[TaskContext], Any],
        label: str,
        on_success: Callable[[Any], None],
        on_partial: Callable[[Any], None] | None = None,
    ) -> Task:
        def wanted(task: Task) -> bool:
            # Drop late signals of a superseded or cancelled scan or load.
            return task in (self._scan, self._load) and not task.cancelled()

        return self.services.run(fn, label, on_success, on_partial, self._task_failed, wanted)

    def _task_failed(self, message: str) -> None:
        self.show_error(message)
        self.load_failed.emit(message)

    def cancel_work(self) -> None:
        """Cancel every background job (the status bar's Cancel does the same)."""
        self.services.cancel_all()

    def wait_idle(self, ms: int = 10000) -> None:
        self.services.wait_idle(ms)

    # ---- feedback ------------------------------------------------------------------------
    def show_error(self, message: str, details: list[SkippedFile] | None = None) -> None:
        """Say what went wrong without blocking (a modal box would freeze scripted use)."""
        self.last_error = message
        self.statusBar().showMessage(message, 15000)
        if self.error_box is not None:
            self.error_box.close()  # one message at a time, the latest
        box = QMessageBox(QMessageBox.Icon.Warning, "RadLens", message, parent=self)
        if details:
            from viewer.ui.panels.problems import problem_rows

            box.setDetailedText("\n".join(f"{p}: {r}" for p, r in problem_rows(details)))
        box.setModal(False)
        box.show()
        self.error_box = box

    def show_problems(self) -> ProblemsDialog | None:
        skipped = list(self.scan_result.skipped) if self.scan_result is not None else []
        if not skipped:
            return None
        dialog = ProblemsDialog(skipped, self)
        dialog.show()
        return dialog

    # ---- window events -------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_path(urls[0].toLocalFile())
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.cancel_work()
        self.services.shutdown(10_000)  # each feature stops its background work (bounded)
        self.area.set_cine(False)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.set("view/layout", self.area.layout_name)
        self.wait_idle(5000)
        super().closeEvent(event)
