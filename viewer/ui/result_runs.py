"""The AI runs shown for the open series: their layers, findings, display controls and the
label browser, kept in step as runs are shown, replaced, or have layers removed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDockWidget

from viewer.labels.result_findings import ResultSummary, label_volumes, summarise
from viewer.labels.results import ResultRecord, ResultStore
from viewer.study.volume import Volume
from viewer.ui.layers import Layer
from viewer.ui.panels.findings import FindingsPanel
from viewer.ui.panels.label_browser import LabelBrowser
from viewer.ui.panels.result_display import ResultDisplayControls
from viewer.ui.result_layers import layers_for
from viewer.ui.state import ViewerState


class ShownRuns:
    """Runs on screen for one series (``clear`` when another opens); ``key`` is the series'
    result-store key, for remembering removed layers."""

    def __init__(
        self,
        state: ViewerState,
        findings: FindingsPanel,
        display: ResultDisplayControls,
        labels: LabelBrowser,
        dock: QDockWidget,
        store: ResultStore,
        say: Callable[[str], None],
    ) -> None:
        self.state, self.findings, self.display, self.labels = state, findings, display, labels
        self.dock, self.store, self.say = dock, store, say
        self.key = ""
        self._runs: dict[str, tuple[ResultRecord, list[tuple[str, Layer]]]] = {}
        self._browsed: tuple[str, str] | None = None  # (run id, layer name) in the browser
        self._volumes: dict[str, dict[int, float]] = {}  # run id -> volume per label

    def clear(self) -> None:
        self._runs.clear()
        self._volumes.clear()
        self.findings.clear()
        self.display.set_layers([])
        self.browse(None)

    def has(self, run_id: str) -> bool:
        return run_id in self._runs

    def show(self, rec: ResultRecord, summary: ResultSummary) -> None:
        for _ in self.show_steps(rec, summary):
            pass

    def show_steps(self, rec: ResultRecord, summary: ResultSummary) -> Iterator[None]:
        """Show ``rec``: each layer (drawn at once in every view) is one step, then the
        findings and the display controls; stops if the series or the run goes meanwhile."""
        volume = self.state.volume
        # A newer run of the same model replaces the older one's layers.
        for run_id, (old, _) in list(self._runs.items()):
            if old.model_id == rec.model_id:
                self.drop_run(run_id)
        layers = layers_for(rec)
        self._runs[rec.run_id] = (rec, layers)

        def gone() -> bool:
            return self.state.volume is not volume or rec.run_id not in self._runs

        for _, layer in layers:
            yield
            if gone():
                return
            self.state.layers.add(layer)
        # Findings, display controls and label browser each build widgets: a turn apiece.
        for step in (
            lambda: self.findings.add_run(rec, summary),
            self._set_display_layers,
            self._browse_newest,
        ):
            yield
            if gone():
                return
            step()
        self.dock.raise_()

    def drop_run(self, run_id: str) -> None:
        rec, layers = self._runs.pop(run_id)
        for _, layer in layers:
            if layer.name in self.state.layers.names():
                self.state.layers.remove(layer.name)
        self.findings.remove_run(run_id)
        self.refresh_display()

    def refresh_display(self) -> None:
        self._set_display_layers()
        self._browse_newest()

    def _set_display_layers(self) -> None:
        present = set(self.state.layers.names())
        self.display.set_layers(
            [
                layer
                for _, layers in self._runs.values()
                for _, layer in layers
                if layer.name in present
            ]
        )

    def _browse_newest(self) -> None:
        present = set(self.state.layers.names())
        masks = [
            (rec, layer)
            for rec, layers in self._runs.values()
            for kind, layer in layers
            if kind == "mask" and layer.name in present
        ]
        self.browse(masks[-1] if masks else None)

    def browse(self, shown: tuple[ResultRecord, Layer] | None) -> None:
        """Put the newest shown mask in the label browser (kept while it stays the same)."""
        key = (shown[0].run_id, shown[1].name) if shown is not None else None
        if key == self._browsed:
            return
        self._browsed = key
        volume = self.state.volume
        if shown is None or volume is None:
            self.labels.set_result(None)
            return
        rec, layer = shown
        if rec.run_id not in self._volumes:
            self._volumes[rec.run_id] = label_volumes(rec, volume.spacing)
        unit = "mm²" if rec.shape[0] == 1 else "mL"
        self.labels.set_result(
            layer, rec.labels, self._volumes[rec.run_id], unit, title=rec.model_name
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

    def on_layer_event(self, event: str, layer: Layer) -> None:
        if event != "removed":
            return
        for rec, layers in self._runs.values():
            for kind, mine in layers:
                if mine is layer:
                    # Closing a series also removes every layer: decide after it settles.
                    volume = self.state.volume
                    QTimer.singleShot(0, lambda r=rec, k=kind, v=volume: self.removed(r, k, v))
                    return

    def removed(self, rec: ResultRecord, kind: str, volume: Volume | None) -> None:
        if volume is None or self.state.volume is not volume or rec.run_id not in self._runs:
            return
        try:
            self.store.remove_layer(self.key, rec, kind)
        except OSError as exc:
            self.say(f"Could not update the stored results: {exc}")
        if not rec.layers():
            self._runs.pop(rec.run_id, None)
            self.findings.remove_run(rec.run_id)
        else:
            self.findings.add_run(rec, summarise(rec, volume.spacing))
        self.refresh_display()
