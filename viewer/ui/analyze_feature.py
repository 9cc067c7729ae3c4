"""Analyze in the main window: the action, model menu, progress, result layers and findings.

``AnalyzeFeature(services)`` plugs in through the window's ``WindowServices``
(viewer.ui.feature): an **Analyze** action in the main tool bar and the AI menu (Ctrl+Shift+A;
Ctrl+R is Reset) with a model menu, progress with the engine's sentence in the window's one
progress bar (whose Cancel stops the run), a Findings dock, and a result layer per mask /
heat map / boxes in ``state.layers``. Results are stored with the series and come back when
it is reopened. The window calls ``shutdown()`` when it closes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMessageBox, QToolButton

from viewer.labels.result_findings import Finding, ResultSummary, summarise
from viewer.labels.results import ResultRecord, ResultStore, ResultStoreError
from viewer.study.volume import Volume
from viewer.ui.activity import Activity
from viewer.ui.analysis import AnalysisController, AnalysisOutcome, volume_key
from viewer.ui.feature import WindowServices
from viewer.ui.layers import BoxItem, Layer
from viewer.ui.panels.findings import FindingsPanel
from viewer.ui.panels.model_info import ModelMenu
from viewer.ui.panels.result_display import ResultDisplayControls

if TYPE_CHECKING:
    from inference.card import ModelCard

log = logging.getLogger(__name__)

#: Layer-name suffix per record layer kind (the Layers panel shows "<model>: <suffix>").
_SUFFIX = {"mask": "mask", "heatmap": "heat map", "boxes": "boxes"}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def device_words(device: str) -> str:
    """The engine's device as the status bar says it: "the CPU", "CUDA", or what actually ran
    after an out-of-memory fallback, e.g. "the CPU (after CUDA out of memory)"."""
    if device == "cpu" or device.startswith("cpu "):
        device = "the " + device
    # Only the device names are shouted, not the explanation around them.
    return re.sub(r"\b(cpu|cuda|mps)\b", lambda m: m.group(0).upper(), device)


def layers_for(rec: ResultRecord) -> list[tuple[str, Layer]]:
    """(record kind, Layer) for each layer a record shows, in the card's colours."""
    out: list[tuple[str, Layer]] = []
    kinds = rec.layers()
    if "mask" in kinds and rec.label_map is not None:
        colours = {i.index: _rgb(i.color) for i in rec.labels}
        layer = Layer(f"{rec.model_name}: mask", "labels", rec.label_map, opacity=0.45)
        layer.colours = colours
        out.append(("mask", layer))
    if "heatmap" in kinds and rec.heat_map is not None:
        # A segmenter's probability map repeats its mask: there, start it hidden.
        shown = rec.task != "segmentation"
        out.append(
            (
                "heatmap",
                Layer(
                    f"{rec.model_name}: heat map",
                    "heatmap",
                    rec.heat_map,
                    visible=shown,
                    opacity=0.5,
                    threshold=0.3,
                ),
            )
        )
    if "boxes" in kinds:
        colour = _rgb(rec.labels[-1].color) if rec.labels else (255, 210, 0)
        items = []
        for b in rec.boxes:
            lo, hi = b.corners_zyx()
            items.append(BoxItem(lo, hi, b.label, b.score, colour))
        out.append(("boxes", Layer(f"{rec.model_name}: boxes", "boxes", items, opacity=0.9)))
    return out


def _default_models(volume: Volume) -> tuple[list[ModelCard], ModelCard | None]:
    """(installed cards, the suitable one) from the registry; imported lazily (no torch)."""
    from inference.registry import best_model, list_models

    dims = 2 if volume.is_2d else 3
    body = str(volume.meta.get("body_part", "") or "") or None
    return list_models(), best_model(volume.modality, dims, body)


class AnalyzeFeature(QObject):
    """The Analyze feature (a ``viewer.ui.feature.Feature``)."""

    def __init__(
        self,
        services: WindowServices,
        controller: AnalysisController | None = None,
        store: ResultStore | None = None,
        models: Callable[[Volume], tuple[list[ModelCard], ModelCard | None]] | None = None,
    ) -> None:
        super().__init__(services.window)
        window = services.window
        self.services, self.state = services, services.state
        self.store = store if store is not None else ResultStore()
        self.controller = controller or AnalysisController(self, store=self.store)
        self._models = models or _default_models
        self._runs: dict[str, tuple[ResultRecord, list[tuple[str, Layer]]]] = {}
        self._shown_volume: Volume | None = None
        self._key = ""
        self._cpu_noted = False
        self._restored: Volume | None = None
        self._activity: Activity | None = None
        self.last_message = ""

        self.menu = ModelMenu(window)
        self.action = QAction("Analyze", window)
        # Ctrl+R is already "Reset window and zoom" in the main window.
        self.action.setShortcut(QKeySequence("Ctrl+Shift+A"))
        self.action.setToolTip("Run the selected AI model on this series (Ctrl+Shift+A)")
        self.action.triggered.connect(self.analyze)
        self.button = QToolButton(window)
        self.button.setDefaultAction(self.action)
        self.button.setMenu(self.menu)
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        services.toolbar("main").addWidget(self.button)
        services.add_action("AI", self.action, "analyze")
        services.menu("AI").addMenu(self.menu)

        self.findings = FindingsPanel(window)
        self.findings.finding_activated.connect(self.jump_to)
        self.display = ResultDisplayControls(self.state.layers, self.findings)
        self.findings.layout().addWidget(self.display)
        self.display.hide()
        self.dock = QDockWidget("Findings", window)
        self.dock.setObjectName("findingsDock")
        self.dock.setWidget(self.findings)
        # A tab beside Layers gets the panel's full height; a new dock would be squeezed.
        services.add_dock("findings", self.dock, beside="layers")

        c = self.controller
        c.analysis_progressed.connect(self._on_progress)
        c.analysis_finished.connect(self._on_finished)
        c.analysis_failed.connect(self._on_failed)
        c.analysis_cancelled.connect(self._on_cancelled)
        c.analysis_refused.connect(self._say)
        services.series_changed.connect(self._on_volume_changed)
        services.series_loaded.connect(self._on_series_loaded)
        self.state.layers.subscribe(self._on_layer_event)
        self.action.setEnabled(False)
        self._on_volume_changed()

    # ---- series --------------------------------------------------------------------------
    @Slot()
    def _on_volume_changed(self) -> None:
        volume = self.state.volume
        if volume is self._shown_volume:
            return
        self._shown_volume = volume
        self._runs.clear()
        self.findings.clear()
        self.display.set_layers([])
        self.action.setEnabled(volume is not None)
        if volume is None:
            self.menu.set_models([])
            return
        try:
            cards, best = self._models(volume)
        except Exception as exc:  # a broken models folder must not stop the series opening
            log.warning("listing models failed: %s", exc)
            cards, best = [], None
        self.menu.set_models(cards, preferred=best)
        self._restored = None
        if not self.services.loading():
            self._restore(volume)

    @Slot(object)
    def _on_series_loaded(self, volume: Volume) -> None:
        if volume is self.state.volume and self._restored is not volume:
            self._restore(volume)

    def _restore(self, volume: Volume) -> None:
        """Show the stored results of ``volume``'s series (the newest run of each model)."""
        self._restored = volume
        self._key = volume_key(volume)
        try:
            records = self.store.latest_per_model(self._key)
        except ResultStoreError as exc:
            self._say(f"Stored AI results could not be restored: {exc}")
            records = []
        for rec in records:
            if tuple(rec.shape) == tuple(volume.shape):
                self._show(rec, summarise(rec, volume.spacing))

    # ---- running -------------------------------------------------------------------------
    @Slot()
    def analyze(self, card: ModelCard | None = None) -> bool:
        """Run ``card`` (default: the menu's choice) on the open series."""
        volume = self.state.volume
        if volume is None:
            self._say("Open a series first, then Analyze.")
            return False
        if self.services.loading():
            self._say("The series is still loading; Analyze when all its slices are in.")
            return False
        card = card or self.menu.current()
        if card is None:
            self._say(
                f"No installed model accepts {volume.modality} "
                f"{'images' if volume.is_2d else 'volumes'}."
            )
            return False
        if not self.controller.start(volume, card):
            return False
        self._idle()
        self._activity = self.services.begin(f"{card.name}: starting", self.controller.cancel)
        return True

    def cancel(self) -> None:
        self.controller.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel a running analysis and wait for it (bounded); for the window's closeEvent."""
        return self.controller.shutdown(timeout_ms)

    def _idle(self) -> None:
        if self._activity is not None:
            self._activity.end()
            self._activity = None

    @Slot(float, str)
    def _on_progress(self, fraction: float, sentence: str) -> None:
        if self._activity is not None:
            self._activity.progress(fraction, sentence)

    @Slot(object)
    def _on_finished(self, outcome: AnalysisOutcome) -> None:
        self._idle()
        rec = outcome.record
        seconds = rec.total_seconds
        text = f"{rec.model_name} ran on {device_words(rec.device)} in {seconds:.1f} s"
        if rec.device == "cpu" and not self._cpu_noted:
            # Said once, quietly: a workstation without a GPU is normal, not an error.
            self._cpu_noted = True
            text += " (no GPU found; the CPU is used)"
        self.services.show_message(text, 15_000)
        self.last_message = text
        if outcome.volume is not self.state.volume:
            return  # the user moved on; the result is stored and shows when it is reopened
        self._show(rec, outcome.summary)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._idle()
        self._say(message, dialog=True)

    @Slot()
    def _on_cancelled(self) -> None:
        self._idle()
        self._say("Analysis cancelled.")

    def _say(self, message: str, dialog: bool = False) -> None:
        self.last_message = message
        self.services.show_message(message, 15_000)
        if dialog:
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Analyze",
                message,
                QMessageBox.StandardButton.Ok,
                self.services.window,
            )
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            # Non-modal and no nested event loop: the study stays usable behind the message.
            box.setWindowModality(Qt.WindowModality.NonModal)
            box.show()
            self.message_box = box

    # ---- results -------------------------------------------------------------------------
    def _show(self, rec: ResultRecord, summary: ResultSummary) -> None:
        # A newer run of the same model replaces the older one's layers.
        for run_id, (old, _) in list(self._runs.items()):
            if old.model_id == rec.model_id:
                self._drop_run(run_id)
        layers = layers_for(rec)
        self._runs[rec.run_id] = (rec, layers)
        for _, layer in layers:
            self.state.layers.add(layer)
        self.findings.add_run(rec, summary)
        self._refresh_display()
        self.dock.raise_()

    def _drop_run(self, run_id: str) -> None:
        rec, layers = self._runs.pop(run_id)
        for _, layer in layers:
            if layer.name in self.state.layers.names():
                self.state.layers.remove(layer.name)
        self.findings.remove_run(run_id)
        self._refresh_display()

    def _refresh_display(self) -> None:
        present = set(self.state.layers.names())
        self.display.set_layers(
            [
                layer
                for _, layers in self._runs.values()
                for _, layer in layers
                if layer.name in present
            ]
        )

    def records(self) -> list[ResultRecord]:
        return [rec for rec, _ in self._runs.values()]

    def visible_records(self) -> list[ResultRecord]:
        """The shown runs with at least one of their layers visible in the views."""
        present = {layer.name: layer for layer in self.state.layers}
        return [
            rec
            for rec, layers in self._runs.values()
            if any(mine.name in present and present[mine.name].visible for _, mine in layers)
        ]

    def _on_layer_event(self, event: str, layer: Layer) -> None:
        if event != "removed":
            return
        for rec, layers in self._runs.values():
            for kind, mine in layers:
                if mine is layer:
                    # Closing a series also removes every layer: decide after it settles.
                    volume = self.state.volume
                    QTimer.singleShot(0, lambda r=rec, k=kind, v=volume: self._removed(r, k, v))
                    return

    def _removed(self, rec: ResultRecord, kind: str, volume: Volume | None) -> None:
        if volume is None or self.state.volume is not volume or rec.run_id not in self._runs:
            return
        try:
            self.store.remove_layer(self._key, rec, kind)
        except OSError as exc:
            self._say(f"Could not update the stored results: {exc}")
        if not rec.layers():
            self._runs.pop(rec.run_id, None)
            self.findings.remove_run(rec.run_id)
        else:
            self.findings.add_run(rec, summarise(rec, volume.spacing))
        self._refresh_display()

    @Slot(object)
    def jump_to(self, finding: Finding) -> None:
        """Move every plane to the finding's centre."""
        self.state.set_cursor(finding.centre_zyx)
