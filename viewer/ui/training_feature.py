"""Models dock, File > Import model… and Tools > Train model…, wired to Analyze's model menu.

``TrainingFeature(services, analyze)`` plugs in through the window's ``WindowServices``
(viewer.ui.feature): a **Models** dock (``ModelsPanel``), a **Tools** menu with "Train model…"
and a toggle for the dock, and connects: a published model -> rescan; the listed models ->
the Train dialog's base-model choices and Analyze's model menu; "Use for Analyze" -> the
Analyze model menu (kept across series while the model suits the series). The window calls
``shutdown()`` when it closes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog

from viewer.ui.activity import Activity
from viewer.ui.feature import WindowServices
from viewer.ui.panels.models import ModelEntry, ModelsPanel
from viewer.ui.train_dialog import TrainDialog
from viewer.ui.train_runner import EpochProgress
from viewer.ui.workers import Task, TaskContext

if TYPE_CHECKING:
    from inference.card import ModelCard
    from viewer.ui.analyze_feature import AnalyzeFeature


class TrainingFeature(QObject):
    """The training feature (a ``viewer.ui.feature.Feature``)."""

    def __init__(
        self,
        services: WindowServices,
        analyze: AnalyzeFeature | None = None,
        scan_now: bool = True,
    ) -> None:
        super().__init__(services.window)
        self.services = services
        self.window = window = services.window
        self.analyze = analyze
        self.analyze_menu = analyze.menu if analyze is not None else None
        self.pinned: ModelCard | None = None  # the card chosen with "Use for Analyze"
        self.dialog: TrainDialog | None = None
        self._activity: Activity | None = None

        self.panel = ModelsPanel(window, scan_now=scan_now)
        self.dock = QDockWidget("Models", window)
        self.dock.setObjectName("dock_models")
        self.dock.setWidget(self.panel)
        # Made after the window laid out its own docks: a saved place wins, else a tab
        # beside the DICOM tags panel.
        services.add_dock("models", self.dock, beside="tags", restore=True)

        self.train_action = QAction("&Train model…", window)
        self.train_action.setShortcut(QKeySequence("Ctrl+Shift+T"))
        self.train_action.setToolTip("Train or fine-tune a model on an exported dataset (offline)")
        self.train_action.triggered.connect(lambda *_: self.open_dialog())
        services.add_action("Tools", self.train_action, "train")
        self.import_action = QAction("&Import model…", window)
        self.import_action.setToolTip(
            "Import an nnU-Net v2 trained-model folder or a MONAI bundle as a model package"
        )
        self.import_action.triggered.connect(lambda *_: self.choose_import())
        services.add_action("File", self.import_action, "import_model")
        file_menu = services.menu("File")
        quit_action = next(
            (a for a in file_menu.actions() if a.text().replace("&", "") == "Quit"), None
        )
        if quit_action is not None:  # the window's own Quit stays last
            file_menu.removeAction(self.import_action)
            file_menu.insertAction(quit_action, self.import_action)
        models_toggle = self.dock.toggleViewAction()
        models_toggle.setText("&Models panel")
        self.tools_menu = services.menu("&Tools")
        self.tools_menu.addAction(models_toggle)

        self.panel.analyze_model_chosen.connect(self.use_for_analyze)
        self.panel.models_listed.connect(self._refresh_analyze_menu)
        # Connected after Analyze's own handler, which picks the best model per series.
        services.series_changed.connect(self._reapply_pin)

    def open_dialog(self) -> TrainDialog:
        """Show the Train dialog (created once, so a running job survives closing it)."""
        if self.dialog is None:
            self.dialog = dialog = TrainDialog(self.window)
            dialog.model_published.connect(self._published)
            # The run also shows in the window's progress bar, whose Cancel stops it (the
            # dialog may be hidden while the model trains).
            dialog.runner.started_running.connect(self._training_started)
            dialog.runner.epoch_finished.connect(self._training_progressed)
            dialog.runner.run_finished.connect(lambda _outcome: self._training_ended())
            self.panel.models_listed.connect(self.dialog.set_base_models)
            self.dialog.set_base_models(self.panel.entries)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _training_started(self) -> None:
        self._training_ended()
        if self.dialog is not None:
            self._activity = self.services.begin("Training: starting", self.dialog.stop)

    def _training_progressed(self, p: EpochProgress) -> None:
        if self._activity is not None:
            sentence = f"Training: epoch {p.epoch}/{p.epochs}, {p.metric} {p.value:.3f}"
            self._activity.progress(p.epoch / max(1, p.epochs), sentence)

    def _training_ended(self) -> None:
        if self._activity is not None:
            self._activity.end()
            self._activity = None

    def _published(self, path: str) -> None:
        # The trainer publishes into user_models_dir()/<card id>.
        self.panel.rescan(select=Path(path).name)
        self.services.show_message(f"New model installed: {Path(path).name}", 8000)

    def choose_import(self) -> Task | None:
        folder = QFileDialog.getExistingDirectory(
            self.window, "Import a model (nnU-Net v2 trained-model folder or MONAI bundle)"
        )
        return self.import_model(Path(folder)) if folder else None

    def import_model(self, folder: Path) -> Task:
        """Import ``folder`` on a worker under the one progress bar (Cancel stops it; the
        package is written atomically), then rescan and select the new model."""
        from viewer.commands.models import import_model

        def work(ctx: TaskContext) -> str:
            def progress(fraction: float, sentence: str) -> None:
                ctx.check()
                ctx.progress(fraction, sentence)

            return import_model(folder, progress=progress)

        def failed(message: str) -> None:
            self.services.show_message(f"Model not imported: {message}", 15000)

        return self.services.run(
            work, f"Importing model from {folder.name}", self._imported, on_failed=failed
        )

    def _imported(self, model_id: str) -> None:
        self.panel.rescan(select=model_id)
        self.services.show_message(f"Model imported: {model_id}", 8000)

    def use_for_analyze(self, card: ModelCard) -> None:
        self.pinned = card
        if self.analyze_menu is not None:
            self.analyze_menu.choose(card)
        self.services.show_message(f"Analyze will use {card.name}", 6000)

    def _refresh_analyze_menu(self, _entries: list[ModelEntry]) -> None:
        """A model published, removed or changed on disk while a series is open: Analyze asks
        the registry again (admitted, hash-verified models only; the user's pick is kept)."""
        if self.analyze is None or self.services.volume is None:
            return  # Analyze lists the models itself when the next series opens
        self.analyze.refresh_models(keep_choice=True)

    def _reapply_pin(self) -> None:
        """The pinned model stays Analyze's choice on each series its card admits."""
        volume, analyze = self.services.volume, self.analyze
        if self.pinned is not None and volume is not None and analyze is not None:
            choice = analyze.offer.choice(self.pinned.id)
            if choice is not None and choice.admitted:
                analyze.menu.choose(choice.card)

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop a running training job (bounded wait) and the models listing worker."""
        if self.dialog is not None:
            self.dialog.runner.shutdown(timeout_ms)
        self.panel.wait_idle(timeout_ms)
