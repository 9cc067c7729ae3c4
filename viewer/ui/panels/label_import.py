"""Import… in the annotations panel: a label file (DICOM-SEG, RTSTRUCT, NIfTI/NRRD/MHA label
map, annotations.json) read on a worker and put into the open series' document on the main
thread as one undo step; one line under the label classes says how it went."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton

from radlens_core.errors import UserError
from viewer.labels.model import LabelError


class LabelImporter(QObject):
    """The Import… button and its status line for an AnnotationsPanel (``panel.ctrl`` is the
    annotation controller: its ``document`` and ``state.volume`` are the open series')."""

    #: a label import ended: (imported, the sentence shown)
    import_finished = Signal(bool, str)

    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.panel = panel
        self.button = QPushButton("Import…")
        self.button.setObjectName("import_labels")
        self.button.setToolTip(
            "Import labels onto this series: DICOM-SEG (binary, fractional, labelmap), "
            "RTSTRUCT, a NIfTI/NRRD label map or an annotations.json; one undo step"
        )
        self.button.clicked.connect(self._ask_import)
        self.status = QLabel("")
        self.status.setObjectName("import_status")
        self.status.setWordWrap(True)
        self.status.hide()
        self._import_task = None

    @property
    def doc(self):
        return self.panel.ctrl.document

    def _ask_import(self) -> None:
        from viewer.labels.imports import LABEL_FILE_FILTER

        path, _ = QFileDialog.getOpenFileName(self.panel, "Import labels", "", LABEL_FILE_FILTER)
        if path:
            self.import_file(path)

    def import_file(self, path) -> bool:
        """Import a label file onto the open series: read on a worker (a large SEG takes
        seconds), put into the document on this thread as one undo step if the same series
        is still open. The outcome, or why not, is shown under the label classes and sent
        as ``import_finished``. False when nothing started."""
        from viewer.labels.imports import prepare_label_import
        from viewer.ui.workers import Task

        volume, doc = self.panel.ctrl.state.volume, self.doc
        if doc is None or volume is None:
            self._import_said("Open a series before importing labels.", False)
            return False
        if self._import_task is not None:
            return False
        self.button.setEnabled(False)
        self._import_said(f"Reading {Path(path).name}…", True)
        task = Task(lambda ctx: prepare_label_import(path, volume), self)

        def done(apply) -> None:
            if self.doc is not doc:  # another series was opened meanwhile
                self._import_said("Not imported: another series was opened meanwhile.", False)
                return
            try:
                message = apply(doc)
            except (UserError, LabelError) as exc:
                self._import_said(f"Not imported: {exc}", False)
                return
            self.panel.reload()
            self._import_said(message, True)

        def finished() -> None:
            self._import_task = None  # the Task must outlive its thread
            self.button.setEnabled(True)

        task.succeeded.connect(done)
        task.failed.connect(lambda message: self._import_said(f"Not imported: {message}", False))
        task.finished.connect(finished)
        self._import_task = task
        task.start()
        return True

    def _import_said(self, message: str, ok: bool) -> None:
        self.status.setText(message)
        self.status.setStyleSheet("" if ok else "color: #e57373;")
        self.status.show()
        if not message.startswith("Reading "):
            self.import_finished.emit(ok, message)
