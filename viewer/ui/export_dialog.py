"""File > Export labels…: choose a folder and formats; the export runs on a worker thread.

De-identification is on by default. An existing case folder is never replaced without a
yes from the user (``confirm_overwrite``); the writing itself is ``viewer.labels.export``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.labels.ai_labels import has_human_labels
from viewer.labels.deid import Deidentifier
from viewer.labels.dicomseg import DEFAULT_SEG_TYPE
from viewer.labels.document import Document
from viewer.labels.export import FORMATS, AiSource, ExportError, ExportResult, export_case
from viewer.study.volume import Volume
from viewer.ui.workers import Task, TaskContext

if TYPE_CHECKING:
    from viewer.ui.feature import WindowServices

FORMAT_TITLES = {
    "nifti": "NIfTI mask (.nii.gz)",
    "nrrd": "NRRD mask (.nrrd)",
    "dicom-seg": "DICOM-SEG (seg.dcm)",
    "rtstruct": "RT Structure Set (rtstruct.dcm)",
    "sr": "SR measurement report, TID 1500 (measurements.dcm)",
    "json": "Annotations JSON",
    "csv": "Annotations CSV",
    "coco": "COCO boxes (coco.json)",
}
DEFAULT_FORMATS = ("nifti", "json", "csv")
SEG_TYPE_TITLES = {
    "labelmap": "Labelmap (one frame per slice; compact, fast)",
    "binary": "Binary (one frame per label and slice; for older readers)",
}


class ExportDialog(QDialog):
    #: the export finished: the ExportResult
    export_finished = Signal(object)
    #: the export failed: a sentence naming the folder or the problem
    export_failed = Signal(str)

    def __init__(
        self,
        volume: Volume,
        document: Document,
        folder: str | Path = "",
        parent: QWidget | None = None,
        services: WindowServices | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export labels")
        self.volume, self.document = volume, document
        # In the main window the export runs under its one progress bar and Cancel.
        self.services = services
        self.task: Task | None = None
        self.result: ExportResult | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.folder_edit = QLineEdit(str(folder))
        self.folder_edit.setObjectName("export_folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        layout.addLayout(form)
        self.format_boxes: dict[str, QCheckBox] = {}
        for fmt in FORMATS:
            box = QCheckBox(FORMAT_TITLES.get(fmt, fmt))
            box.setChecked(fmt in DEFAULT_FORMATS)
            self.format_boxes[fmt] = box
            layout.addWidget(box)
            if fmt == "dicom-seg":
                self.seg_type_box = QComboBox()
                self.seg_type_box.setObjectName("seg_type")
                for key, title in SEG_TYPE_TITLES.items():
                    self.seg_type_box.addItem(title, key)
                self.seg_type_box.setCurrentIndex(list(SEG_TYPE_TITLES).index(DEFAULT_SEG_TYPE))
                self.seg_type_box.setEnabled(box.isChecked())
                box.toggled.connect(self.seg_type_box.setEnabled)
                seg_row = QFormLayout()
                seg_row.addRow("    DICOM-SEG type", self.seg_type_box)
                layout.addLayout(seg_row)
        drawn = has_human_labels(document)
        self.ai_box = QCheckBox("Export the AI results of this series (marked as AI results)")
        self.ai_box.setToolTip(
            "The label maps of the latest analysis runs instead of drawn labels; the export's "
            "report and the DICOM-SEG say they are a model's (AUTOMATIC, model id and version)"
        )
        self.ai_box.setChecked(not drawn)
        layout.addWidget(self.ai_box)
        self.deid_box = QCheckBox("De-identify (pseudonymous IDs, shifted dates, new UIDs)")
        self.deid_box.setChecked(True)
        self.image_box = QCheckBox("Include the image volume")
        # Off unless the user asks: the pixels may show names that de-identification cannot reach.
        self.burned_in_box = QCheckBox("Include images that may show burned-in text")
        self.burned_in_box.setToolTip(
            "BurnedInAnnotation YES, or a secondary capture / ultrasound / photo without the "
            "attribute: such images are left out unless this is ticked"
        )
        self.burned_in_box.setEnabled(False)
        self.image_box.toggled.connect(self.burned_in_box.setEnabled)
        layout.addWidget(self.deid_box)
        layout.addWidget(self.image_box)
        layout.addWidget(self.burned_in_box)
        self.warning_box: QMessageBox | None = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.hide()
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.start_export)
        self.buttons.rejected.connect(self._cancel)
        layout.addWidget(self.buttons)

    # ---- choices --------------------------------------------------------------------------
    def formats(self) -> list[str]:
        return [f for f, box in self.format_boxes.items() if box.isChecked()]

    def seg_type(self) -> str:
        return str(self.seg_type_box.currentData())

    def target(self) -> Path:
        """The case folder the export will create: <folder>/<case id>."""
        return Path(self.folder_edit.text()).expanduser() / Deidentifier().case_id(
            self.volume.series_uid or str(id(self.volume))
        )

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export labels to", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def confirm_overwrite(self, path: Path) -> bool:
        """Ask before replacing an earlier export (tests replace this method)."""
        answer = QMessageBox.question(
            self,
            "Replace export?",
            f"{path} already exists. Replace it with this export?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    # ---- running --------------------------------------------------------------------------
    def start_export(self) -> bool:
        """Validate the choices and start the export on a worker; False if nothing started."""
        if self.task is not None:
            return False
        folder_text = self.folder_edit.text().strip()
        if not folder_text:
            self.status.setText("Choose a folder to export to.")
            return False
        formats = self.formats()
        if not formats:
            self.status.setText("Choose at least one format.")
            return False
        overwrite = False
        target = self.target()
        if target.exists():
            if not self.confirm_overwrite(target):
                self.status.setText(f"{target} exists; nothing was written.")
                return False
            overwrite = True
        volume, document = self.volume, self.document
        deid, with_image = self.deid_box.isChecked(), self.image_box.isChecked()
        burned_in = with_image and self.burned_in_box.isChecked()
        out_dir = Path(folder_text).expanduser()
        seg_type, use_ai = self.seg_type(), self.ai_box.isChecked()
        drawn = has_human_labels(document)

        def work(ctx: TaskContext) -> ExportResult:
            ctx.progress(0.0, "Exporting labels")
            # The Document is only read here; edits stay on the main thread meanwhile
            # because the dialog is modal.
            doc, ai = document, None
            found = ai_results(volume) if use_ai else None
            if found is not None:
                doc, ai = found
            elif use_ai and drawn:  # asked for over drawn labels, and there are none
                raise ExportError(
                    "no AI results with a label map are stored for this series: analyze it "
                    "first, or untick 'Export the AI results'"
                )
            return export_case(
                volume, doc, out_dir, formats, deid, with_image, overwrite,
                include_burned_in=burned_in, seg_type=seg_type, ai=ai,
            )  # fmt: skip

        self.status.setText(f"Exporting to {target}…")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        if self.services is not None:
            self.task = self.services.run(
                work, f"Exporting to {target.name}", self._done, on_failed=self._failed
            )
            self.task.was_cancelled.connect(self._cancelled)
            self.task.finished.connect(self._task_finished)
            return True
        self.task = Task(work, self)
        self.task.succeeded.connect(self._done)
        self.task.failed.connect(self._failed)
        self.task.finished.connect(self._task_finished)
        self.progress.show()
        self.task.start()
        return True

    def _task_finished(self) -> None:
        # Dropped only now: the Task must outlive its thread (see viewer.ui.workers.Task).
        self.task = None

    def _done(self, result: ExportResult) -> None:
        self.result = result
        self.progress.hide()
        self.status.setText(f"Wrote {len(result.files)} files to {result.folder}")
        warnings = [str(w) for w in result.info.get("warnings", [])]
        if warnings:
            self.show_warnings(result.folder, warnings)
        self.export_finished.emit(result)
        self.accept()

    def show_warnings(self, folder: Path, warnings: list[str]) -> None:
        """What the export left out or flagged (export.json says it too); not modal, so
        the export finishes; tests replace this method."""
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Export warnings",
            f"The export to {folder} finished with warnings:\n\n" + "\n\n".join(warnings),
            QMessageBox.StandardButton.Ok,
            self.parentWidget(),
        )
        box.open()
        self.warning_box = box

    def _failed(self, message: str) -> None:
        self.progress.hide()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        self.status.setText(message)
        self.export_failed.emit(message)

    def _cancelled(self) -> None:
        """The window's Cancel stopped the export: the form is usable again."""
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
        self.status.setText("Export cancelled; nothing more is written.")

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task.wait(10000)
            self.task = None
        self.reject()


def ai_results(volume: Volume) -> tuple[Document, AiSource] | None:
    """(document, AiSource) of the series' stored AI label maps, or None (on the worker:
    it reads the result store)."""
    from viewer.labels.ai_labels import ai_document
    from viewer.labels.results import ResultStore

    return ai_document(
        volume.series_uid, volume.shape, ResultStore().latest_per_model(volume.series_uid)
    )
