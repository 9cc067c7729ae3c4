"""The main window: series browser, viewer area, panels, status bar; scanning and loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
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
from viewer.ui.dock_layout import (
    apply_default_layout,
    fit_default_size,
    resize_default_docks,
    restore_layout,
)
from viewer.ui.loading import (
    FirstSlice,
    SlicesArrived,
    image_file_task,
    is_image_file,
    scan_task,
    series_task,
)
from viewer.ui.panels.layers_panel import LayersPanel
from viewer.ui.panels.problems import ProblemsDialog
from viewer.ui.panels.series_browser import SeriesBrowser
from viewer.ui.panels.tags_panel import TagsPanel
from viewer.ui.result_banner import IntendedUseBanner
from viewer.ui.settings import Settings
from viewer.ui.state import ViewerState
from viewer.ui.theme import icon
from viewer.ui.tools.annotation_bar import AnnotationToolBar
from viewer.ui.viewer_area import ViewerArea
from viewer.ui.workers import Task


def format_value(value: Any, modality: str) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "RGB " + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    unit = " HU" if modality == "CT" else ""
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


class MainWindow(QMainWindow):
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
        self.browser = SeriesBrowser(self)
        self.browser.series_activated.connect(self.open_series)
        self.browser.set_shown_columns(str(self.settings.get("series/columns", "")).split(","))
        self.browser.columns_changed.connect(
            lambda names: self.settings.set("series/columns", ",".join(names))
        )
        self.layers_panel = LayersPanel(self.state.layers, self)
        self.tags_panel = TagsPanel(self)
        self.docks = {
            "series": self._dock("Series", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            "layers": self._dock(
                "Layers", self.layers_panel, Qt.DockWidgetArea.RightDockWidgetArea
            ),
            "tags": self._dock(
                "DICOM tags", self.tags_panel, Qt.DockWidgetArea.RightDockWidgetArea
            ),
        }
        self.annotation_bar = AnnotationToolBar(self)
        self.hover_label = QLabel("Open a folder to begin (File > Open folder, or drop it here).")
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_work)
        bar = self.statusBar()
        bar.addWidget(self.hover_label, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self._set_busy(False)

        self.tasks: list[Task] = []
        self._scan: Task | None = None
        self._load: Task | None = None
        self.scan_result: Any = None
        self.current_series: Any = None
        self.last_error = ""
        self.error_box: QMessageBox | None = None
        self.action_map = ui_actions.build(self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.annotation_bar)
        # -- annotation (branch annotate): tools, panel, Edit menu, File > Export labels --
        from viewer.ui.tools.install import install_annotations

        self.annotations = install_annotations(self)
        # -- end annotation --
        self.setAcceptDrops(True)

        for view in self.area.views.values():
            view.hovered.connect(self._hovered)
        self._tags_timer = QTimer(self)
        self._tags_timer.setSingleShot(True)
        self._tags_timer.setInterval(120)  # reading a header per wheel step would stutter
        self._tags_timer.timeout.connect(self._show_tags)
        self.state.cursor_moved.connect(self._tags_timer.start)
        self.docks["tags"].visibilityChanged.connect(lambda _v: self._tags_timer.start())
        # ---- Analyze (owned by viewer/ui/analyze_feature.py) ----
        from viewer.ui.analyze_feature import AnalyzeFeature

        self.analyze = AnalyzeFeature(self, self.state, toolbar=self.main_toolbar)
        self.docks["findings"] = self.analyze.dock
        # ---- end Analyze ----
        # -- annotation (branch annotate): model results become proposed annotations --
        self.annotations.connect_analyze(self.analyze)
        # ---- Models dock + Tools > Train model… (owned by viewer/ui/training_feature.py) ----
        from viewer.ui.training_feature import TrainingFeature

        self.training = TrainingFeature(self)
        # ---- end Models/training ----
        self.banner = IntendedUseBanner(self.analyze, self)
        self.central_layout.insertWidget(0, self.banner)
        # Choosing an annotation tool shows its settings and list (Findings rises on Analyze).
        self.annotations.controller.tool_changed.connect(
            lambda name: self.docks["annotations"].raise_() if name else None
        )
        self._restore()  # last: every dock exists, so a saved layout puts each one back
        self._complete_panels_menu()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _restore(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._default_layout = not restore_layout(self, state)
        if geometry is None:
            fit_default_size(self)
        self.area.set_layout(str(self.settings.get("view/layout", "single")))
        self.area.set_text_visible(bool(self.settings.get("view/show_text", True)))

    def _complete_panels_menu(self) -> None:
        """View > Panels: a toggle for every dock, and a way back to the default layout."""
        menu = self.panels_menu
        listed = set(menu.actions())
        for dock in self.docks.values():
            if dock.toggleViewAction() not in listed:
                menu.addAction(dock.toggleViewAction())
        menu.addSeparator()
        action = menu.addAction("&Reset panel layout")
        action.triggered.connect(lambda *_: self.reset_layout())
        self.action_map["reset_layout"] = action

    def reset_layout(self) -> None:
        """Put every panel back in its default place and size (View > Panels)."""
        for dock in self.docks.values():
            dock.show()
        apply_default_layout(self)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._default_layout:
            # Dock widths only take once the window has its real size.
            self._default_layout = False
            QTimer.singleShot(0, self, lambda: resize_default_docks(self))

    # ---- opening -------------------------------------------------------------------------
    def open_path(self, path: str | Path) -> None:
        """Scan a folder (series appear in the browser) or open one NIfTI/NRRD/MHA file."""
        path = Path(path).expanduser()
        if is_image_file(path):
            self._start_load(image_file_task(path), f"Reading {path.name}", None)
        elif path.is_dir() or path.is_file():
            if path.is_dir():
                self.settings.add_recent(path)
                ui_actions.refresh_recent(self)
            self.cancel_work()
            self.browser.set_series([])
            self._scan = self._run(
                scan_task(path), f"Scanning {path}", self._scan_done, lambda _: None
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

    def _scan_done(self, result: Any) -> None:
        self.scan_result = result
        series = list(getattr(result, "series", []))
        skipped = list(getattr(result, "skipped", []))
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
        image_series = [s for s in series if getattr(s, "kind", "dicom") != "non-image"]
        if self._open_first_after_scan or len(image_series) == 1:
            first = self.browser.first_image_series()
            if first is not None:
                self.open_series(first)
        self._open_first_after_scan = False

    def open_series(self, info: Any) -> None:
        self.current_series = info
        name = getattr(info, "description", "") or getattr(info, "series_uid", "series")
        self._start_load(series_task(info), f"Loading {name}", info)

    def _start_load(self, fn: Callable[[Any], Any], label: str, info: Any) -> None:
        if self._load is not None:
            self._load.cancel()
        self._load = self._run(fn, label, self._loaded, self._partial)

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
        self.hover_label.setText("Point at the image to read its value, voxel and position.")
        ui_actions.refresh_presets(self)
        for warning in volume.warnings:
            self.statusBar().showMessage(f"Warning: {warning}", 10000)
        self.series_loaded.emit(volume)

    # ---- tasks ---------------------------------------------------------------------------
    def _run(
        self,
        fn: Callable[[Any], Any],
        label: str,
        on_success: Callable[[Any], None],
        on_partial: Callable[[Any], None],
    ) -> Task:
        task = Task(fn, self)

        def wanted() -> bool:
            # Drop late signals of a superseded or cancelled task (no longer wanted).
            return task in (self._scan, self._load) and not task.cancelled()

        task.partial.connect(lambda obj: on_partial(obj) if wanted() else None)
        task.succeeded.connect(lambda res: on_success(res) if wanted() else None)
        task.failed.connect(lambda msg: self._task_failed(msg) if wanted() else None)
        task.was_cancelled.connect(lambda: self.statusBar().showMessage("Cancelled", 4000))
        task.progressed.connect(self._progressed)
        task.finished.connect(lambda: self._task_finished(task))
        self.tasks.append(task)
        self._set_busy(True, label)
        task.start()
        return task

    def _task_failed(self, message: str) -> None:
        self.show_error(message)
        self.load_failed.emit(message)

    def _progressed(self, fraction: float, sentence: str) -> None:
        self.progress.setValue(int(np.clip(fraction, 0, 1) * 1000))
        if sentence:
            self.progress.setFormat(sentence[:40] + " %p%")
            self.progress.setToolTip(sentence)

    def _task_finished(self, task: Task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        task.deleteLater()
        self._set_busy(bool(self.tasks))

    def _set_busy(self, busy: bool, label: str = "") -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat(f"{label[:40]} %p%")

    def cancel_work(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    def wait_idle(self, ms: int = 10000) -> None:
        for task in list(self.tasks):
            task.wait(ms)

    # ---- feedback ------------------------------------------------------------------------
    def show_error(self, message: str, details: list[Any] | None = None) -> None:
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
        skipped = list(getattr(self.scan_result, "skipped", []) or [])
        if not skipped:
            return None
        dialog = ProblemsDialog(skipped, self)
        dialog.show()
        return dialog

    def _hovered(self, zyx: Any) -> None:
        vol = self.state.volume
        if zyx is None or vol is None:
            self.hover_label.setText("")
            return
        idx = np.rint(zyx).astype(int)
        value = format_value(self.state.value_at(idx), vol.modality)
        x, y, z = vol.index_to_patient(idx)
        self.hover_label.setText(
            f"{value}   voxel (x {idx[2]}, y {idx[1]}, z {idx[0]})   "
            f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        )

    def _show_tags(self) -> None:
        vol = self.state.volume
        if vol is None or not self.docks["tags"].isVisible():
            return
        files = vol.meta.get("source_files") or []
        z = int(round(self.state.cursor[0]))
        path = files[z] if 0 <= z < len(files) else None
        self.tags_panel.show_file(Path(path) if path else None)

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
        self.analyze.shutdown(5000)  # Analyze: cancel a running model, wait (bounded)
        self.training.shutdown(10000)  # Training: stop a running trainer, wait (bounded)
        self.area.set_cine(False)
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.set("view/layout", self.area.layout_name)
        self.wait_idle(5000)
        super().closeEvent(event)
