"""Models dock and Tools > Train model… in the main window, wired to Analyze when present.

``TrainingFeature(window)`` adds a **Models** dock (``ModelsPanel``), a **Tools** menu with
"Train model…" and a toggle for the dock, and connects: a published model -> rescan; the
listed models -> the Train dialog's base-model choices and Analyze's model menu; "Use for
Analyze" -> the Analyze model menu (kept across series while the model suits the series).
Call ``shutdown()`` from the window's closeEvent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow

from viewer.ui.panels.models import ModelsPanel
from viewer.ui.train_dialog import TrainDialog


def suits(card: Any, volume: Any) -> bool:
    """Whether Analyze can run ``card`` on ``volume`` (modality and dimensionality)."""
    mods = {str(m).upper() for m in getattr(card, "modalities", ())}
    modality = str(getattr(volume, "modality", "")).upper()
    dims = 2 if getattr(volume, "is_2d", False) else 3
    return bool(mods & {modality, "ANY", "OT"}) and getattr(card, "spatial_dims", dims) == dims


class TrainingFeature(QObject):
    def __init__(self, window: QMainWindow, scan_now: bool = True) -> None:
        super().__init__(window)
        self.window = window
        self.pinned: Any = None  # the card chosen with "Use for Analyze"
        self.dialog: TrainDialog | None = None

        self.panel = ModelsPanel(window, scan_now=scan_now)
        self.dock = QDockWidget("Models", window)
        self.dock.setObjectName("dock_models")
        self.dock.setWidget(self.panel)
        docks = getattr(window, "docks", None)
        # Created after the window restored its layout: restore this dock's saved place,
        # else put it as a tab beside the Layers / DICOM tags panels.
        if not window.restoreDockWidget(self.dock):
            window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            beside = docks.get("tags") if isinstance(docks, dict) else None
            if beside is not None and window.dockWidgetArea(beside) == window.dockWidgetArea(
                self.dock
            ):
                window.tabifyDockWidget(beside, self.dock)
        if isinstance(docks, dict):
            docks["models"] = self.dock

        self.train_action = QAction("&Train model…", window)
        self.train_action.setShortcut(QKeySequence("Ctrl+Shift+T"))
        self.train_action.setToolTip("Train or fine-tune a model on an exported dataset (offline)")
        self.train_action.triggered.connect(lambda *_: self.open_dialog())
        window.addAction(self.train_action)
        tools = window.menuBar().addMenu("&Tools")
        tools.addAction(self.train_action)
        models_toggle = self.dock.toggleViewAction()
        models_toggle.setText("&Models panel")
        tools.addAction(models_toggle)
        self.tools_menu = tools

        self.panel.analyze_model_chosen.connect(self.use_for_analyze)
        self.panel.models_listed.connect(self._refresh_analyze_menu)
        state = getattr(window, "state", None)
        if state is not None:
            # Connected after Analyze's own handler, which picks the best model per series.
            state.volume_changed.connect(self._reapply_pin)

    def open_dialog(self) -> TrainDialog:
        """Show the Train dialog (created once, so a running job survives closing it)."""
        if self.dialog is None:
            self.dialog = TrainDialog(self.window)
            self.dialog.model_published.connect(self._published)
            self.panel.models_listed.connect(self.dialog.set_base_models)
            self.dialog.set_base_models(self.panel.entries)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _published(self, path: Any) -> None:
        # The trainer publishes into user_models_dir()/<card id>.
        self.panel.rescan(select=Path(path).name)
        status = getattr(self.window, "statusBar", None)
        if status is not None:
            status().showMessage(f"New model installed: {Path(path).name}", 8000)

    def use_for_analyze(self, card: Any) -> None:
        self.pinned = card
        menu = self._analyze_menu()
        if menu is not None:
            menu.choose(card)
        status = getattr(self.window, "statusBar", None)
        if status is not None:
            status().showMessage(f"Analyze will use {getattr(card, 'name', card)}", 6000)

    def _analyze_menu(self) -> Any:
        analyze = getattr(self.window, "analyze", None)
        return getattr(analyze, "menu", None)

    def _refresh_analyze_menu(self, entries: list[Any]) -> None:
        """A model published or removed while a series is open shows in Analyze's menu now."""
        menu = self._analyze_menu()
        volume = getattr(getattr(self.window, "state", None), "volume", None)
        if menu is None or volume is None:
            return  # Analyze lists the models itself when the next series opens
        menu.set_models([e.card for e in entries if e.usable])  # keeps the current choice

    def _reapply_pin(self) -> None:
        volume = getattr(getattr(self.window, "state", None), "volume", None)
        menu = self._analyze_menu()
        if self.pinned is not None and volume is not None and menu is not None:
            if suits(self.pinned, volume):
                menu.choose(self.pinned)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop a running training job (bounded wait) and the models listing worker."""
        if self.dialog is not None:
            self.dialog.runner.shutdown(timeout_ms)
        self.panel.wait_idle(timeout_ms)
