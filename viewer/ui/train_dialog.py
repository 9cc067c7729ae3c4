"""The Train dialog: choose a dataset, task, base model and epochs; watch the run live.

The form becomes a ``radlens train`` command line (``build_args``) that ``TrainRunner`` runs
as a child process; each epoch line moves the progress bar and the loss/metric plot, every
line goes to the log. On success with Publish checked the trainer installs the package in
the user model folder and ``model_published`` tells the Models panel to rescan.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.ui.panels.models import ModelEntry
from viewer.ui.train_progress import TrainProgressView
from viewer.ui.train_runner import (
    DEVICES,
    EpochProgress,
    RunOutcome,
    TrainFormError,
    TrainRequest,
    TrainRunner,
    build_args,
)

if TYPE_CHECKING:
    from inference.card import ModelCard

__all__ = ["TrainDialog", "TrainFormError", "TrainRequest", "build_args"]

TASKS = ("segmentation", "detection", "classification")
NEW_MODEL = "(new model)"


def _folder_row(edit: QLineEdit, browse: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(browse)
    return row


class TrainDialog(QDialog):
    """Modeless: training goes on while the user reads images; closing it only hides it."""

    training_finished = Signal(object)  # RunOutcome
    model_published = Signal(object)  # Path of the installed package

    def __init__(self, parent: QWidget | None = None, runner: TrainRunner | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setModal(False)
        self.runner = runner or TrainRunner(self)
        self.history: list[EpochProgress] = []

        self.dataset_edit = QLineEdit(self)
        self.dataset_edit.setPlaceholderText("folder of exported cases (or imagesTr/ + labelsTr/)")
        self.dataset_edit.editingFinished.connect(self._suggest_out)
        browse_ds = QPushButton("Browse…", self)
        browse_ds.clicked.connect(lambda: self._browse(self.dataset_edit, "Dataset folder"))
        self.task_combo = QComboBox(self)
        self.task_combo.addItems(TASKS)
        self.task_combo.currentTextChanged.connect(lambda _t: self._suggest_out())
        self.task_combo.currentTextChanged.connect(lambda _t: self._refresh_base())
        self._base_entries: list[ModelEntry | ModelCard] = []
        self.base_combo = QComboBox(self)
        self.base_combo.setEditable(True)  # a package folder can be typed too
        self.base_combo.addItem(NEW_MODEL)
        self.base_combo.setToolTip("Fine-tune an installed model (--from), or train a new one")
        self.epochs_spin = QSpinBox(self)
        self.epochs_spin.setRange(1, 100_000)
        self.epochs_spin.setValue(10)
        self.out_edit = QLineEdit(self)
        self.out_edit.setPlaceholderText("new folder for the model package")
        self.out_edit.setToolTip("The folder name becomes the model id unless one is given")
        browse_out = QPushButton("Browse…", self)
        browse_out.clicked.connect(lambda: self._browse(self.out_edit, "Output folder"))
        self.publish_check = QCheckBox("Publish to my models when done", self)
        self.publish_check.setChecked(True)
        self.resume_check = QCheckBox("Resume the run in the output folder", self)

        self.steps_spin = QSpinBox(self)
        self.steps_spin.setRange(0, 1_000_000)
        self.steps_spin.setSpecialValueText("one per case")
        self.batch_spin = QSpinBox(self)
        self.batch_spin.setRange(0, 1024)
        self.batch_spin.setSpecialValueText("task default")
        self.batch_spin.setValue(0)
        self.patch_edit = QLineEdit(self)
        self.patch_edit.setPlaceholderText("x y [z], new models only")
        self.id_edit = QLineEdit(self)
        self.id_edit.setPlaceholderText("default: output folder name (fine-tune: BASE-finetuned)")
        self.name_edit = QLineEdit(self)
        self.name_edit.setPlaceholderText("shown in the viewer (default from the dataset)")
        self.version_edit = QLineEdit("0.1.0", self)
        self.version_edit.setToolTip(
            "Publishing refuses a second package with the same id and version"
        )
        self.device_combo = QComboBox(self)
        self.device_combo.addItems(DEVICES)
        self.device_combo.setToolTip("auto: the CUDA GPU when there is one, else the CPU")
        self.threads_spin = QSpinBox(self)
        self.threads_spin.setRange(0, 256)
        self.threads_spin.setSpecialValueText("automatic")

        form = QFormLayout()
        form.addRow("Dataset", _folder_row(self.dataset_edit, browse_ds))
        form.addRow("Task", self.task_combo)
        form.addRow("Base model", self.base_combo)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Output", _folder_row(self.out_edit, browse_out))
        form.addRow("", self.publish_check)
        form.addRow("", self.resume_check)
        advanced = QGroupBox("Advanced", self)
        adv = QFormLayout(advanced)
        adv.addRow("Model id", self.id_edit)
        adv.addRow("Model name", self.name_edit)
        adv.addRow("Version", self.version_edit)
        adv.addRow("Steps per epoch", self.steps_spin)
        adv.addRow("Batch size", self.batch_spin)
        adv.addRow("Patch size", self.patch_edit)
        adv.addRow("Device", self.device_combo)
        adv.addRow("CPU threads", self.threads_spin)

        self.start_button = QPushButton("Start", self)
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Stop after the current step, keeping the best epoch")
        self.stop_button.clicked.connect(self.stop)
        close_button = QPushButton("Close", self)
        close_button.setToolTip("Hide this window; a run goes on in the background")
        close_button.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)
        left = QVBoxLayout()
        left.addLayout(form)
        left.addWidget(advanced)
        left.addStretch(1)
        left.addLayout(buttons)

        self.live = TrainProgressView(self)
        self.progress, self.status, self.log = self.live.progress, self.live.status, self.live.log
        self.metric_curve = self.live.metric_curve

        layout = QHBoxLayout(self)
        left_box = QWidget(self)
        left_box.setLayout(left)
        left_box.setFixedWidth(400)
        layout.addWidget(left_box)
        layout.addWidget(self.live, 1)
        self.resize(1100, 620)

        self._form_widgets: list[QWidget] = [
            self.dataset_edit,
            browse_ds,
            self.task_combo,
            self.base_combo,
            self.epochs_spin,
            self.out_edit,
            browse_out,
            self.publish_check,
            self.resume_check,
            advanced,
        ]
        self.runner.line_received.connect(self._append)
        self.runner.epoch_finished.connect(self._epoch)
        self.runner.run_finished.connect(self._finished)
        self._set_running(False)

    # ---- form ----------------------------------------------------------------------------
    def _browse(self, edit: QLineEdit, title: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, title, edit.text())
        if folder:
            edit.setText(folder)
            edit.setModified(True)  # a chosen output folder is never replaced by a suggestion
            self._suggest_out()

    def _suggest_out(self) -> None:
        """Offer ``<user data>/training/<dataset>-<task>`` until the user types a folder."""
        text = self.dataset_edit.text().strip()
        if not text or self.out_edit.isModified():
            return
        from radlens_core.paths import user_data_dir

        name = f"{Path(text).name}-{self.task_combo.currentText()}".lower()
        self.out_edit.setText(str(user_data_dir() / "training" / name))

    def set_base_models(self, entries: Sequence[ModelEntry | ModelCard]) -> None:
        """Offer the usable installed models (ModelEntry or ModelCard) as --from choices."""
        self._base_entries = list(entries)
        self._refresh_base()

    def _refresh_base(self) -> None:
        """Only models of the chosen task can be fine-tuned for it; a typed folder is kept."""
        current = self.base_combo.currentText()
        task = self.task_combo.currentText()
        self.base_combo.clear()
        self.base_combo.addItem(NEW_MODEL)
        for entry in self._base_entries:
            if isinstance(entry, ModelEntry):
                card = entry.card if entry.usable else None
            else:
                card = entry
            if card is None or card.task != task:
                continue
            # The folder, not the id: an id may exist both shipped and in the user folder.
            self.base_combo.addItem(f"{card.id}@{card.version}", str(card.path))
            tip = f"{card.name}\n{card.path}"
            self.base_combo.setItemData(
                self.base_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        index = self.base_combo.findText(current)
        self.base_combo.setCurrentIndex(max(0, index))
        if index < 0 and current and current != NEW_MODEL and "@" not in current:
            self.base_combo.setEditText(current)

    def set_request(self, req: TrainRequest) -> None:
        """Fill the form (scripted use and tests)."""
        self.dataset_edit.setText(str(req.dataset))
        self.task_combo.setCurrentText(req.task)
        self.out_edit.setText(str(req.out))
        self.out_edit.setModified(True)
        self.epochs_spin.setValue(req.epochs)
        self.base_combo.setEditText(req.from_model or NEW_MODEL)
        self.publish_check.setChecked(req.publish)
        self.resume_check.setChecked(req.resume)
        self.steps_spin.setValue(req.steps_per_epoch or 0)
        self.batch_spin.setValue(req.batch_size or 0)
        self.patch_edit.setText(" ".join(map(str, req.patch)) if req.patch else "")
        self.threads_spin.setValue(req.threads or 0)
        self.id_edit.setText(req.model_id or "")
        self.device_combo.setCurrentText(req.device)
        self.name_edit.setText(req.name or "")
        self.version_edit.setText(req.version)

    def request(self) -> TrainRequest:
        """The form as a request; TrainFormError names the field that is wrong."""
        # Absolute: the stop file must land where the child writes, whatever the cwd.
        dataset = Path(self.dataset_edit.text().strip()).expanduser().absolute()
        if not self.dataset_edit.text().strip() or not dataset.is_dir():
            raise TrainFormError(f"Dataset: {dataset} is not a folder.")
        out_text = self.out_edit.text().strip()
        if not out_text:
            raise TrainFormError("Output: choose a folder for the model package.")
        out = Path(out_text).expanduser().absolute()
        if out.resolve() == dataset.resolve() or dataset.resolve() in out.resolve().parents:
            raise TrainFormError("Output: must not be inside the dataset (sources stay untouched).")
        patch = None
        if self.patch_edit.text().strip():
            try:
                patch = tuple(int(v) for v in self.patch_edit.text().replace(",", " ").split())
            except ValueError:
                raise TrainFormError("Patch size: whole numbers, e.g. 64 64 32.") from None
            if len(patch) not in (2, 3) or min(patch) < 1:
                raise TrainFormError("Patch size: 2 or 3 positive numbers (x y [z]).")
        base = self.base_combo.currentText().strip()
        index = self.base_combo.findText(base)  # typed text may differ from the current item
        data = self.base_combo.itemData(index) if index >= 0 else None
        from_model = None if base in ("", NEW_MODEL) else str(data or base)
        return TrainRequest(
            dataset=dataset,
            task=self.task_combo.currentText(),
            out=out,
            epochs=self.epochs_spin.value(),
            from_model=from_model,
            publish=self.publish_check.isChecked(),
            resume=self.resume_check.isChecked(),
            steps_per_epoch=self.steps_spin.value() or None,
            batch_size=self.batch_spin.value() or None,
            patch=patch,
            threads=self.threads_spin.value() or None,
            name=self.name_edit.text().strip() or None,
            model_id=self.id_edit.text().strip() or None,
            device=self.device_combo.currentText(),
            version=self.version_edit.text().strip() or "0.1.0",
        )

    # ---- running -------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the trainer for the form's request; False (with the reason shown) if refused."""
        if self.runner.running:
            return False
        try:
            req = self.request()
        except TrainFormError as exc:
            self._say(str(exc), error=True)
            return False
        self.history = []
        self.live.reset()
        self._say(f"Starting: {req.task} on {req.dataset.name}…")
        self._set_running(True)
        self.runner.start(build_args(req), req.out)
        return True

    def stop(self) -> None:
        if self.runner.running:
            self._say("Stopping after the current step; the best epoch so far is kept…")
            self.stop_button.setEnabled(False)
            self.runner.stop()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in self._form_widgets:
            w.setEnabled(not running)

    def _say(self, text: str, error: bool = False) -> None:
        self.live.say(text, error)

    def _append(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _epoch(self, p: EpochProgress) -> None:
        self.history.append(p)
        self.live.show_epochs(self.history)
        self._say(
            f"Epoch {p.epoch}/{p.epochs}: loss {p.loss:.4f}, {p.metric} {p.value:.4f} "
            f"(best {p.best:.4f} at epoch {p.best_epoch})"
        )

    def _finished(self, outcome: RunOutcome) -> None:
        self._set_running(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        if outcome.ok:
            kept = f"best epoch {outcome.best_epoch}"
            if outcome.stopped:
                text = f"Stopped ({outcome.stopped}); {kept} kept in {outcome.package}."
            else:
                text = f"Finished: {kept}, package in {outcome.package}."
            if outcome.published is not None:
                text += " Published: listed in the Models panel."
            self._say(text)
        elif outcome.stopped in ("terminated", "killed"):
            self._say(f"The trainer was {outcome.stopped}. {outcome.error}".strip(), error=True)
        else:
            self._say(f"Training failed: {outcome.error}", error=True)
        self.training_finished.emit(outcome)
        if outcome.published is not None:
            self.model_published.emit(outcome.published)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        # Closing hides: a run keeps going and the window can be reopened from Tools.
        event.ignore()
        self.hide()
