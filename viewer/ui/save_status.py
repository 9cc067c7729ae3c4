"""Save status: whether the open series' labels are on disk, shown the moment it changes.

A permanent status-bar label reads the label store's ``SaveStatus`` ("Labels saved",
"Saving labels…", or "Labels NOT saved …" with the sentence naming the folder). When writing
fails a (non-modal) dialog says how many edits are only in memory, where they should go and
why they are not there; it closes itself once they are saved. The store reports from its
writer thread: the report crosses to the main thread through a queued signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QMessageBox

from viewer.labels.store import LabelStore, SaveState, SaveStatus
from viewer.ui.feature import WindowServices

if TYPE_CHECKING:
    from viewer.ui.tools.controller import AnnotationController

FAILING_STYLE = "color: white; background: #b3261e; padding: 0 6px; font-weight: bold;"


class SaveStatusFeature(QObject):
    """The feature (a ``viewer.ui.feature.Feature``) that shows the label store's save state."""

    #: a SaveStatus from any thread (the store's writer); shown on the main thread
    status_reported = Signal(object)

    def __init__(self, services: WindowServices, controller: AnnotationController) -> None:
        super().__init__(services)
        self.services = services
        self.controller = controller
        self.label = QLabel("")
        self.label.setObjectName("save_status")
        services.window.statusBar().addPermanentWidget(self.label)
        self.dialog: QMessageBox | None = None
        self.store: LabelStore | None = None
        self.status_reported.connect(self.show_status, Qt.ConnectionType.QueuedConnection)
        controller.document_opened.connect(self._document_opened)

    # ---- the store ----------------------------------------------------------------------------
    def _document_opened(self) -> None:
        self.watch(self.controller.store)

    def watch(self, store: LabelStore | None) -> None:
        """Follow ``store`` (the open series' store; None: its labels are not autosaved)."""
        self._detach()
        self.store = store
        if store is None:
            self.label.setText("Labels not autosaved")
            self.label.setStyleSheet(FAILING_STYLE)
            return
        store.status_listeners.append(self._report)
        self.show_status(store.status)
        damage = store.recovery.sentence()
        if damage:
            self.services.show_message(damage, 20_000)

    def _detach(self) -> None:
        if self.store is not None and self._report in self.store.status_listeners:
            self.store.status_listeners.remove(self._report)
        self.store = None

    def _report(self, status: SaveStatus) -> None:
        self.status_reported.emit(status)  # from the writer thread: queued to the main thread

    # ---- showing ------------------------------------------------------------------------------
    def show_status(self, status: SaveStatus) -> None:
        if self.store is None or status.folder != self.store.folder:
            return  # a report of a store closed meanwhile
        failing = status.state is SaveState.FAILING
        self.label.setText(status.text)
        self.label.setToolTip(f"Labels of this series are kept in {status.folder}")
        self.label.setStyleSheet(FAILING_STYLE if failing else "")
        if failing:
            self._show_dialog(status)
        elif status.state is SaveState.SAVED and self.dialog is not None:
            self.dialog.close()
            self.dialog = None
            self.services.show_message(f"All label edits are saved in {status.folder}.")

    def _show_dialog(self, status: SaveStatus) -> None:
        text = (
            f"{status.unsaved} label edit(s) of this series are not saved yet: they should be "
            f"in {status.folder}.\n\n{status.message}"
        )
        info = (
            "RadLens tries again every second and after every edit. Free space on that disk "
            "(or make the folder writable); this message closes once the edits are saved. "
            "Quitting RadLens before then loses them."
        )
        if self.dialog is None:
            self.dialog = QMessageBox(
                QMessageBox.Icon.Critical, "Labels not saved", text, parent=self.services.window
            )
            self.dialog.setObjectName("save_status_dialog")
            self.dialog.setWindowModality(Qt.WindowModality.NonModal)
            self.dialog.setInformativeText(info)
            self.dialog.open()
        else:
            self.dialog.setText(text)

    def shutdown(self, timeout_ms: int) -> None:
        """Nothing runs in the background here; stop listening to the store."""
        self._detach()
