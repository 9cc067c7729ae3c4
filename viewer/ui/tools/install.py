"""The annotation feature: controller, tool bar, panel, Edit menu, File > Export labels.

``Annotations(services)`` plugs in through the window's ``WindowServices``
(viewer.ui.feature), so the annotation wiring stays out of the window's own code.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QScrollArea, QWidget

from viewer.labels.findings import apply_proposal, plan_result, prepare_proposal
from viewer.labels.model import LabelError
from viewer.ui.feature import WindowServices
from viewer.ui.panels.annotations import AnnotationsPanel
from viewer.ui.panels.segment_editor import SegmentEditorPanel
from viewer.ui.tools.annotation_bar import AnnotationToolBar
from viewer.ui.tools.controller import AnnotationController
from viewer.ui.tools.segment_editor import SegmentEditor
from viewer.ui.workers import Task

#: Label maps up to this many voxels are turned into proposals at once on the UI thread
#: (a few ms); bigger ones on a worker, so a 300x512x512 result never freezes the window.
SYNC_PROPOSAL_VOXELS = 4_000_000


def _action(parent: QWidget, text: str, slot, *shortcuts: str) -> QAction:
    action = QAction(text, parent)
    if shortcuts:
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(lambda *_: slot())
    return action


class Annotations:
    """The annotation feature (a ``viewer.ui.feature.Feature``)."""

    def __init__(self, services: WindowServices) -> None:
        self.services = services
        window, area = services.window, services.area
        self.controller = ctrl = AnnotationController(services.state, window)
        if area is not None:
            ctrl.active_view = lambda: area.active_view  # Fill between slices follows it
            for view in area.views.values():
                ctrl.attach_view(view)
        self.bar = bar = AnnotationToolBar(window)
        services.add_toolbar("annotation", bar)
        bar.tool_selected.connect(self.set_tool)
        bar.label_selected.connect(ctrl.set_label)
        ctrl.tool_changed.connect(bar.set_active)
        ctrl.document_opened.connect(self._refresh_labels)
        ctrl.document_changed.connect(self._refresh_labels)
        ctrl.message_posted.connect(lambda text: services.show_message(text, 8000))

        self.panel = AnnotationsPanel(ctrl, window)
        self.panel.class_table.itemSelectionChanged.connect(self._refresh_labels)
        self.dock = QDockWidget("Annotations", window)
        self.dock.setObjectName("dock_annotations")
        self.dock.setWidget(self.panel)
        services.add_dock("annotations", self.dock)

        # The Segment Editor: model-free interactive segmentation on the same Document.
        self.segment_editor = SegmentEditor(ctrl, services, window)
        self.segment_editor.message_posted.connect(lambda text: services.show_message(text, 8000))
        self.segment_panel = SegmentEditorPanel(self.segment_editor, self.set_tool, window)
        self.segment_dock = QDockWidget("Segment Editor", window)
        self.segment_dock.setObjectName("dock_segment_editor")
        # Scrolls rather than widening the one right-hand column it shares with the others.
        scroll = QScrollArea(window)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.segment_panel)
        self.segment_dock.setWidget(scroll)
        services.add_dock("segment_editor", self.segment_dock, beside="annotations")
        bar.label_selected.connect(lambda *_: self.segment_panel.refresh())
        # Choosing a tool shows its settings and list (Findings rises on Analyze); the
        # Segment Editor's own tools, and the brush while it grows from seeds, show it.
        ctrl.tool_changed.connect(self._raise_panel)

        self.actions = {
            "undo": _action(window, "&Undo", ctrl.undo, "Ctrl+Z"),
            "redo": _action(window, "&Redo", ctrl.redo, "Ctrl+Shift+Z", "Ctrl+Y"),
            "interpolate": _action(window, "&Fill between slices", ctrl.interpolate, "Ctrl+I"),
            "export": _action(window, "&Export labels…", self.show_export_dialog, "Ctrl+E"),
        }
        services.add_action("Edit", self.actions["undo"])
        services.add_action("Edit", self.actions["redo"])
        services.menu("Edit").addSeparator()
        services.add_action("Edit", self.actions["interpolate"])
        services.add_action("File", self.actions["export"], "export_labels", before="quit")
        # The window's left-button modes (Q W Z P) hand the left button back to the view.
        for name, action in services.actions.items():
            if name.startswith("mode_"):
                action.triggered.connect(lambda *_: self.set_tool(None))
        self._pending: Task | None = None
        self._tasks: list[Task] = []
        self.export_dialog = None
        self._refresh_labels()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """The window closes: let proposal workers end (a QThread must not outlive the
        window), then close the label store (final snapshot)."""
        self.wait_for_proposals(timeout_ms)
        self.controller.close()

    def connect_analyze(self, analyze) -> None:
        """Model results of ``analyze`` (viewer.ui.analyze_feature.AnalyzeFeature) become
        proposed annotations the user can move, accept or reject."""
        analyze.controller.analysis_finished.connect(self.propose_outcome)
        from viewer.ui.tools.raw_boxes import RawBoxesHider  # Qt-free, cheap; only with Analyze

        self.raw_boxes = RawBoxesHider(self.services.state, self.controller, analyze)

    def propose_outcome(self, outcome) -> int:
        """Add a finished analysis (AnalysisOutcome) to the Document; returns how many were
        added now. A big label map is mapped on a worker (about a second of numpy on
        300x512x512) and applied when it is ready (``proposals_pending`` says so meanwhile)."""
        doc = self.controller.document
        if doc is None or outcome.volume is not self.services.volume:
            return 0  # the user moved on; the result store keeps the run
        self._pending = None  # a newer result replaces one still being prepared
        try:
            plan = plan_result(doc, outcome.record)
        except LabelError as exc:
            self.controller.message_posted.emit(f"Model findings were not added: {exc}")
            return 0
        if plan.voxels <= SYNC_PROPOSAL_VOXELS:
            return self._apply_proposal(outcome, doc, prepare_proposal(plan))
        task = Task(lambda _ctx: prepare_proposal(plan), self.services.window)
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
        if doc is not self.controller.document or outcome.volume is not self.services.volume:
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
        layers = self.services.state.layers
        if any(a.kind == "Box" for a in added) and raw in layers.names():
            layers.update(raw, visible=False)
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
            if self.services.area is not None:
                self.services.area.set_left_mode("crosshair")
            crosshair = self.services.actions.get("mode_crosshair")
            if crosshair is not None:
                crosshair.setChecked(True)

    def _raise_panel(self, name: str | None) -> None:
        if not name:
            return
        if name in ("click_segment", "island", "prompt") or self.segment_editor.seeds_on:
            self.segment_dock.raise_()
        else:
            self.dock.raise_()

    def _refresh_labels(self) -> None:
        doc, ctx = self.controller.document, self.controller.ctx
        if doc is None or ctx is None:
            self.bar.set_label_classes([], None)
            return
        self.bar.set_label_classes(doc.label_set, ctx.label)

    def show_export_dialog(self):
        """Open File > Export labels… for the open series (None when nothing is open)."""
        from viewer.ui.export_dialog import ExportDialog  # nibabel/highdicom load on demand

        ctrl, services, settings = self.controller, self.services, self.services.settings
        volume = services.volume
        if ctrl.document is None or volume is None:
            services.show_message("Open a series before exporting its labels.", 6000)
            return None
        folder = settings.get("export/folder", "") if settings is not None else ""
        dialog = ExportDialog(
            volume, ctrl.document, str(folder or ""), services.window, services=services
        )
        dialog.export_finished.connect(
            lambda result: services.show_message(
                f"Exported {len(result.files)} files to {result.folder}", 10000
            )
        )
        if settings is not None:
            dialog.export_finished.connect(
                lambda result: settings.set("export/folder", str(result.folder.parent))
            )
        dialog.setModal(True)
        dialog.show()
        self.export_dialog = dialog
        return dialog
