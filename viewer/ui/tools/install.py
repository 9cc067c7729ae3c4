"""Plugs annotation into the main window: controller, tool bar, panel, Edit menu, File > Export.

``install_annotations(window)`` is the one call main_window.py makes, so the annotation
wiring stays out of the window's own code.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget

from viewer.labels.findings import propose_result
from viewer.labels.model import LabelError, model_source
from viewer.ui.panels.annotations import AnnotationsPanel
from viewer.ui.tools.controller import AnnotationController


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

    def __init__(self, controller: AnnotationController, parent: QObject) -> None:
        super().__init__(parent)
        self.controller = controller

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Close:
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
        self._watcher = _CloseWatcher(ctrl, window)
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
        """Add a finished analysis (AnalysisOutcome) to the Document; returns how many."""
        doc = self.controller.document
        if doc is None or outcome.volume is not self.window.state.volume:
            return 0  # the user moved on; the result store keeps the run
        rec = outcome.record
        source = model_source(rec.model_id, rec.model_version)
        try:
            # A re-run replaces the proposals nobody has looked at yet; reviewed ones stay.
            for a in [a for a in doc.annotations.values() if a.source == source]:
                if a.status == "proposed":
                    doc.remove(a.id)
            added = propose_result(doc, rec)
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
