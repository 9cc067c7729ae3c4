"""The PACS feature: a **PACS** dock (search, series, Retrieve/Open/Send) and node management,
plugged in through the window's ``WindowServices``.

Every network call (echo, search, series listing, retrieve, send) runs on a worker under the
window's one progress bar, whose Cancel stops it; the panel only shows records. Retrieved data
goes to RadLens's cache (viewer.pacs.PacsCache) and opens with the window's ``open_path``.
Nothing is sent unless the user presses Send and confirms.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QDockWidget, QFileDialog, QMessageBox

from radlens_core.errors import UserError
from viewer.pacs import (
    NodeBook,
    PacsCache,
    PartialRetrieve,
    RetrieveReport,
    SeriesRecord,
    StudyQuery,
    StudyRecord,
)
from viewer.pacs.cache import uid_key
from viewer.pacs.errors import NodeConfigError
from viewer.pacs.nodes import Node
from viewer.ui.feature import WindowServices
from viewer.ui.panels.pacs import PacsPanel
from viewer.ui.panels.pacs_node import NodeDialog
from viewer.ui.workers import Task, TaskContext


class PacsFeature(QObject):
    """The PACS feature (a ``viewer.ui.feature.Feature``)."""

    def __init__(
        self,
        services: WindowServices,
        open_path: Callable[[Path], None] | None = None,
        cache: PacsCache | None = None,
        book: NodeBook | None = None,
    ) -> None:
        super().__init__(services.window)
        self.services = services
        self.window = window = services.window
        self.open_path = open_path
        self.cache = cache or PacsCache.default()
        self.panel = PacsPanel(window)
        try:
            self.book = book or NodeBook.load()
        except NodeConfigError as exc:
            self.book = NodeBook()
            self.panel.say(str(exc), error=True)
        self.task: Task | None = None
        self.report: RetrieveReport | None = None
        self.study: StudyRecord | None = None
        self._retry: Callable[[], Any] | None = None

        self.dock = QDockWidget("PACS", window)
        self.dock.setObjectName("dock_pacs")
        self.dock.setWidget(self.panel)
        # The window's default layout tabs it behind the series browser (dock_layout.LEFT_TABS).
        services.add_dock("pacs", self.dock, Qt.DockWidgetArea.LeftDockWidgetArea, restore=True)
        self.show_action = QAction("Query &PACS…", window)
        self.show_action.setToolTip("Search a PACS and retrieve studies into RadLens's cache")
        self.show_action.triggered.connect(lambda *_: self.show())
        services.add_action("File", self.show_action, "pacs")
        toggle = self.dock.toggleViewAction()
        toggle.setText("&PACS panel")
        services.menu("&Tools").addAction(toggle)

        p = self.panel
        p.add_node_requested.connect(lambda: self.edit_node(None))
        p.edit_node_requested.connect(lambda name: self.edit_node(self.book.nodes.get(name)))
        p.remove_node_requested.connect(self.remove_node)
        p.echo_requested.connect(self.echo)
        p.search_requested.connect(self.search)
        p.study_chosen.connect(self.list_series)
        p.retrieve_requested.connect(self.retrieve)
        p.open_requested.connect(self.open_retrieved)
        p.send_requested.connect(self.choose_and_send)
        p.retry_requested.connect(self.retry)
        p.set_nodes(self.book.names())

    def show(self) -> None:
        self.dock.show()
        self.dock.raise_()

    # ---- nodes -----------------------------------------------------------------------------
    def node(self) -> Node | None:
        return self.book.nodes.get(self.panel.node_name)

    def save_node(self, node: Node, old_name: str = "") -> None:
        if old_name and old_name != node.name:
            self.book.remove(old_name)
        self.book.put(node)
        self.book.save()
        self.panel.set_nodes(self.book.names(), node.name)
        self.panel.say(f"PACS node '{node.name}' saved; Echo checks that it answers.")

    def edit_node(self, node: Node | None) -> NodeDialog:
        dialog = NodeDialog(self.window, node)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.result_node is not None:
            self.save_node(dialog.result_node, node.name if node else "")
        return dialog

    def remove_node(self, name: str) -> None:
        answer = QMessageBox.question(self.window, "Remove PACS node", f"Forget '{name}'?")
        if answer == QMessageBox.StandardButton.Yes:
            self.book.remove(name)
            self.book.save()
            self.panel.set_nodes(self.book.names())

    # ---- running network work ----------------------------------------------------------------
    def _run(
        self,
        fn: Callable[[TaskContext], Any],
        label: str,
        done: Callable[[Any], None],
        retry: Callable[[], Any] | None = None,
    ) -> Task | None:
        if self.task is not None:
            self.panel.say("Wait for the running PACS request, or Cancel it.")
            return None
        self._retry = retry
        self.panel.set_busy(True)
        self.panel.say(label + "…", retry=False)

        def failed(message: str) -> None:
            self.panel.say(message, error=True, retry=retry is not None)

        task = self.services.run(fn, label, done, on_failed=failed)
        self.task = task
        task.finished.connect(lambda: self._finished(task))
        task.was_cancelled.connect(lambda: self.panel.say("Cancelled.", retry=retry is not None))
        return task

    def _finished(self, task: Task) -> None:
        if self.task is task:
            self.task = None
        self.panel.set_busy(False)

    def retry(self) -> None:
        if self._retry is not None:
            self._retry()

    # ---- echo, search, series ----------------------------------------------------------------
    def echo(self, name: str) -> Task | None:
        node = self.book.nodes.get(name)
        if node is None:
            return None

        def work(_ctx: TaskContext) -> float:
            from viewer.pacs.client import connect

            with connect(node) as client:
                return client.echo()

        def done(seconds: float) -> None:
            self.panel.say(f"PACS node '{name}' answered in {seconds * 1000:.0f} ms.")

        return self._run(work, f"Echo {name}", done, retry=lambda: self.echo(name))

    def search(self, query: StudyQuery) -> Task | None:
        node = self.node()
        if node is None:
            return None

        def work(_ctx: TaskContext) -> list[StudyRecord]:
            from viewer.pacs.client import connect

            with connect(node) as client:
                return client.find_studies(query)

        def done(studies: list[StudyRecord]) -> None:
            self.panel.set_studies(studies)
            n = len(studies)
            more = " (the first ones: narrow the search)" if n >= query.limit else ""
            self.panel.say(f"{n} stud{'y' if n == 1 else 'ies'} found on {node.name}{more}.")

        return self._run(work, f"Searching {node.name}", done, retry=lambda: self.search(query))

    def list_series(self, study: StudyRecord) -> Task | None:
        node = self.node()
        if node is None:
            return None
        self.study = study
        cache = self.cache

        def work(_ctx: TaskContext) -> tuple[list[SeriesRecord], dict[str, int]]:
            from viewer.pacs.client import connect

            with connect(node) as client:
                series = client.find_series(study.study_uid)
            cached = {
                s.series_uid: len(cache.series_files(s.study_uid, s.series_uid)) for s in series
            }
            return series, cached

        def done(answer: tuple[list[SeriesRecord], dict[str, int]]) -> None:
            if self.panel.selected_study() == study:
                self.panel.set_series(*answer)
                self.panel.say(f"{len(answer[0])} series in the study.")

        return self._run(
            work, f"Listing series on {node.name}", done, retry=lambda: self.list_series(study)
        )

    # ---- retrieve and open ---------------------------------------------------------------------
    def retrieve(self, study: StudyRecord, series: list[SeriesRecord]) -> Task | None:
        node = self.node()
        if node is None:
            return None
        cache = self.cache
        uids = [s.series_uid for s in series]

        def work(ctx: TaskContext) -> RetrieveReport | PartialRetrieve:
            from viewer.pacs.client import connect
            from viewer.pacs.retrieval import retrieve

            with connect(node) as client:
                try:
                    return retrieve(
                        client, cache, study.study_uid, uids or None, ctx.progress, ctx.cancelled
                    )
                except PartialRetrieve as partial:  # what arrived can still be opened
                    return partial

        def done(outcome: RetrieveReport | PartialRetrieve) -> None:
            again = lambda: self.retrieve(study, series)  # noqa: E731
            if isinstance(outcome, PartialRetrieve):
                self.report = outcome.report if isinstance(outcome.report, RetrieveReport) else None
                self.panel.say(str(outcome), error=True, retry=True)
                self._retry = again
            else:
                self.report = outcome
                mb = outcome.bytes_fetched / 1e6
                self.panel.say(
                    f"Retrieved {outcome.expected} images from {node.name}: {outcome.fetched} "
                    f"transferred ({mb:.1f} MB), {outcome.reused} already in the cache. "
                    "Open shows them."
                )
            self.panel.set_retrieved(self.report is not None)
            if self.panel.selected_study() == study:
                cached = {
                    s.series_uid: len(cache.series_files(s.study_uid, s.series_uid))
                    for s in self.panel.series
                }
                self.panel.set_series(self.panel.series, cached)

        what = f"{len(uids)} series" if uids else "the study"
        return self._run(
            work,
            f"Retrieving {what} from {node.name}",
            done,
            retry=lambda: self.retrieve(study, series),
        )

    def retrieved_folder(self) -> Path | None:
        """The folder Open shows: the one series retrieved, else the study's folder."""
        if self.report is None:
            return None
        folders = self.report.series_folders
        if len(folders) == 1:
            return folders[0]
        return self.cache.root / uid_key(self.report.study_uid)

    def open_retrieved(self) -> None:
        folder = self.retrieved_folder()
        if folder is not None and self.open_path is not None:
            for f in self.report.series_folders if self.report else ():
                self.cache.touch(f)
            self.open_path(folder)

    # ---- send ----------------------------------------------------------------------------------
    def choose_and_send(self) -> Task | None:
        names, _ = QFileDialog.getOpenFileNames(
            self.window,
            "Send to PACS: choose exported DICOM-SEG, SR or de-identified images",
            str(self.services.settings.get("pacs/send_folder", ""))
            if self.services.settings
            else "",
            "DICOM files (*.dcm);;All files (*)",
        )
        if not names:
            return None
        if self.services.settings is not None:
            self.services.settings.set("pacs/send_folder", str(Path(names[0]).parent))
        return self.send_files([Path(n) for n in names])

    def confirm_send(self, node: Node, files: list[Path]) -> bool:
        """Ask before anything leaves the machine (tests replace this method)."""
        answer = QMessageBox.question(
            self.window,
            "Send to PACS",
            f"Send {len(files)} file(s) to '{node.name}' ({node.address})?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def send_files(self, paths: list[Path]) -> Task | None:
        node = self.node()
        if node is None:
            self.panel.say("Choose a PACS node to send to.", error=True)
            return None
        from viewer.pacs.sending import collect_files

        try:
            files = collect_files(paths)
        except UserError as exc:
            self.panel.say(str(exc), error=True)
            return None
        if not self.confirm_send(node, files):
            return None

        def work(ctx: TaskContext):
            from viewer.pacs.client import connect
            from viewer.pacs.sending import send

            with connect(node) as client:
                return send(client, files, ctx.progress, ctx.cancelled)

        def done(report) -> None:
            text = f"Sent {report.sent} of {len(files)} file(s) to {node.name}."
            if report.failed:
                text += " Refused: " + "; ".join(report.failed[:3])
            self.panel.say(text, error=bool(report.failed))

        return self._run(
            work, f"Sending to {node.name}", done, retry=lambda: self.send_files(paths)
        )

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Cancel a running PACS request and wait (bounded) for its worker."""
        if self.task is not None:
            self.task.cancel()
            self.task.wait(timeout_ms)
