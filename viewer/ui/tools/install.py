"""Plugs annotation into the main window: controller, tool bar, panel, Edit menu, File > Export.

``install_annotations(window)`` is the one call main_window.py makes, so the annotation
wiring stays out of the window's own code.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from viewer.labels.findings import apply_proposal, plan_result, prepare_proposal
from viewer.labels.model import LabelError
from viewer.ui.panels.annotations import AnnotationsPanel
from viewer.ui.tools.controller import AnnotationController
from viewer.ui.workers import Task

#: Label maps up to this many voxels are turned into proposals at once on the UI thread
#: (a few ms); bigger ones on a worker, so a 300x512x512 result never freezes the window.
SYNC_PROPOSAL_VOXELS = 4_000_000


def _action(window, text: str, slot, *shortcuts: str) -> QAction:
    action = QAction(text, window)
    if shortcuts:
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(lambda *_: slot())
    window.addAction(action)
    return action


class _CloseWatcher(QObject):
    """Closes the label store (final snapshot) when the window closes."""

    def __init__(self, annotations: Annotations, parent: QObject) -> None:
        super().__init__(parent)
        self.annotations = annotations
        self.controller = annotations.controller

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Close:
            self.annotations.wait_for_proposals()  # a QThread must not outlive the window
            self.controller.close()
        return False


class Annotations:
    """What ``install_annotations`` built; the window keeps it as ``window.annotations``."""

    def __init__(self, window) -> None:
        self.window = window
        self.controller = ctrl = AnnotationController(window.state, window)
        ctrl.active_view = lambda: window.area.active_view  # Fill between slices follows it
        for view in window.area.views.values():
            ctrl.attach_view(view)
        self.bar = bar = window.annotation_bar
        bar.tool_selected.connect(self.set_tool)
        bar.label_selected.connect(ctrl.set_label)
        ctrl.tool_changed.connect(bar.set_active)
        ctrl.document_opened.connect(self._refresh_labels)
        ctrl.document_changed.connect(self._refresh_labels)
        ctrl.message_posted.connect(lambda text: window.statusBar().showMessage(text, 8000))

        self.panel = AnnotationsPanel(ctrl, window)
        self.panel.class_table.itemSelectionChanged.connect(self._refresh_labels)
        self.dock = QDockWidget("Annotations", window)
        self.dock.setObjectName("dock_annotations")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        window.docks["annotations"] = self.dock

        self.actions = {
            "undo": _action(window, "&Undo", ctrl.undo, "Ctrl+Z"),
            "redo": _action(window, "&Redo", ctrl.redo, "Ctrl+Shift+Z", "Ctrl+Y"),
            "interpolate": _action(window, "&Fill between slices", ctrl.interpolate, "Ctrl+I"),
            "export": _action(window, "&Export labels…", self.show_export_dialog, "Ctrl+E"),
        }
        edit = window.menuBar().addMenu("&Edit")
        edit.addActions([self.actions["undo"], self.actions["redo"]])
        edit.addSeparator()
        edit.addAction(self.actions["interpolate"])
        file_menu = window.menuBar().actions()[0].menu()
        quit_action = window.action_map.get("quit")
        file_menu.insertAction(quit_action, self.actions["export"])
        # The window's left-button modes (Q W Z P) hand the left button back to the view.
        for name, action in window.action_map.items():
            if name.startswith("mode_"):
                action.triggered.connect(lambda *_: self.set_tool(None))
        self._pending: Task | None = None
        self._tasks: list[Task] = []
        self._watcher = _CloseWatcher(self, window)
        window.installEventFilter(self._watcher)
        self.export_dialog = None
        self._refresh_labels()

    def connect_analyze(self, analyze) -> None:
        """Model results of ``analyze`` (viewer.ui.analyze_feature.AnalyzeFeature) become
        proposed annotations the user can move, accept or reject."""
        analyze.controller.analysis_finished.connect(self.propose_outcome)
        from viewer.ui.tools.raw_boxes import RawBoxesHider  # Qt-free, cheap; only with Analyze

        self.raw_boxes = RawBoxesHider(self.window.state, self.controller, analyze)

    def propose_outcome(self, outcome) -> int:
        """Add a finished analysis (AnalysisOutcome) to the Document; returns how many were
        added now. A big label map is mapped on a worker (about a second of numpy on
        300x512x512) and applied when it is ready (``proposals_pending`` says so meanwhile)."""
        doc = self.controller.document
        if doc is None or outcome.volume is not self.window.state.volume:
            return 0  # the user moved on; the result store keeps the run
        self._pending = None  # a newer result replaces one still being prepared
        try:
            plan = plan_result(doc, outcome.record)
        except LabelError as exc:
            self.controller.message_posted.emit(f"Model findings were not added: {exc}")
            return 0
        if plan.voxels <= SYNC_PROPOSAL_VOXELS:
            return self._apply_proposal(outcome, doc, prepare_proposal(plan))
        task = Task(lambda _ctx: prepare_proposal(plan), self.window)
        self._pending = task
        task.succeeded.connect(
            lambda prepared: (
                self._apply_proposal(outcome, doc, prepared) if self._pending is task else None
            )
        )
        task.failed.connect(
            lambda msg: (
                self.controller.message_posted.emit(f"Model findings were not added: {msg}")
                if self._pending is task
                else None
            )
        )
        task.finished.connect(lambda: self._task_ended(task))
        self._tasks.append(task)
        task.start()
        return 0

    @property
    def proposals_pending(self) -> bool:
        """True while a finished analysis is being turned into proposals on a worker."""
        return self._pending is not None

    def _task_ended(self, task: Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if self._pending is task:
            self._pending = None
        task.deleteLater()

    def wait_for_proposals(self, ms: int = 30_000) -> None:
        """Let workers preparing proposals end (bounded): for closing the window."""
        for task in list(self._tasks):
            task.wait(ms)

    def _apply_proposal(self, outcome, doc, prepared) -> int:
        if doc is not self.controller.document or outcome.volume is not self.window.state.volume:
            return 0  # the series changed while the proposal was prepared
        rec = outcome.record
        try:
            if doc.label_set != prepared.base_label_set:  # classes edited meanwhile: redo
                prepared = prepare_proposal(plan_result(doc, rec))
            # A re-run replaces the proposals nobody has looked at yet; reviewed ones stay.
            for a in [a for a in doc.annotations.values() if a.source == prepared.source]:
                if a.status == "proposed":
                    doc.remove(a.id)
            added = apply_proposal(doc, prepared)
        except LabelError as exc:
            self.controller.message_posted.emit(f"Model findings were not added: {exc}")
            return 0
        # The raw boxes layer would sit under the editable boxes and stay behind when one
        # is moved; it stays in the Layers panel for whoever wants the model's originals.
        raw = f"{rec.model_name}: boxes"
        if any(a.kind == "Box" for a in added) and raw in self.window.state.layers.names():
            self.window.state.layers.update(raw, visible=False)
        if added:
            self.controller.message_posted.emit(
                f"{len(added)} {rec.model_name} finding(s) added to Annotations as proposals "
                "(Select tool: A accepts, X rejects)."
            )
        return len(added)

    def set_tool(self, name: str | None) -> None:
        self.controller.set_tool(name)
        if name is not None:
            # The view's own left-drag mode goes back to the cursor while a tool draws.
            self.window.area.set_left_mode("crosshair")
            self.window.action_map["mode_crosshair"].setChecked(True)

    def _refresh_labels(self) -> None:
        doc, ctx = self.controller.document, self.controller.ctx
        if doc is None or ctx is None:
            self.bar.set_label_classes([], None)
            return
        self.bar.set_label_classes(doc.label_set, ctx.label)

    def show_export_dialog(self):
        """Open File > Export labels… for the open series (None when nothing is open)."""
        from viewer.ui.export_dialog import ExportDialog  # nibabel/highdicom load on demand

        ctrl, window = self.controller, self.window
        if ctrl.document is None or window.state.volume is None:
            window.statusBar().showMessage("Open a series before exporting its labels.", 6000)
            return None
        folder = window.settings.get("export/folder", "")
        dialog = ExportDialog(window.state.volume, ctrl.document, str(folder or ""), window)
        dialog.export_finished.connect(
            lambda result: window.statusBar().showMessage(
                f"Exported {len(result.files)} files to {result.folder}", 10000
            )
        )
        dialog.export_finished.connect(
            lambda result: window.settings.set("export/folder", str(result.folder.parent))
        )
        dialog.setModal(True)
        dialog.show()
        self.export_dialog = dialog
        return dialog


def install_annotations(window) -> Annotations:
    """Add the annotation tools, panel and menu entries to a MainWindow."""
    return Annotations(window)
