"""Analyze in the main window: the action, model menu, progress, result layers and findings.

``AnalyzeFeature(services)`` plugs in through the window's ``WindowServices``
(viewer.ui.feature): an **Analyze** action in the main tool bar and the AI menu (Ctrl+Shift+A;
Ctrl+R is Reset) with a model menu, progress with the engine's sentence in the window's one
progress bar (whose Cancel stops the run), a Findings dock, and a result layer per mask /
heat map / boxes in ``state.layers``. Results are stored with the series and come back when
it is reopened. The window calls ``shutdown()`` when it closes.

Only models whose card admits the series are offered (``viewer.ui.model_offer``): the
default Analyze runs the best admitted one and never falls back to one that does not fit;
when none fits, a message lists each installed model with its reason. Running one anyway
takes a confirmation, and its result is marked "outside intended use" in the layers, the
Findings list, the banner and the stored record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMessageBox, QToolButton

from viewer.labels.result_findings import (
    OUTSIDE_INTENDED_USE,
    Finding,
    ResultSummary,
    summarise,
)
from viewer.labels.results import ResultRecord, ResultStore, ResultStoreError
from viewer.study.volume import Volume
from viewer.ui.activity import Activity
from viewer.ui.analysis import AnalysisController, AnalysisOutcome, volume_key
from viewer.ui.analyze_dialogs import message_box, none_fits_box, override_box
from viewer.ui.feature import WindowServices
from viewer.ui.model_offer import ModelOffer, OfferListing, offer_for, series_facts
from viewer.ui.panels.findings import FindingsPanel
from viewer.ui.panels.label_browser import LabelBrowser
from viewer.ui.panels.model_info import ModelMenu
from viewer.ui.panels.result_display import ResultDisplayControls
from viewer.ui.result_layers import device_words, layer_prefix, layers_for
from viewer.ui.result_runs import ShownRuns

__all__ = ["AnalyzeFeature", "device_words", "layer_prefix", "layers_for"]

if TYPE_CHECKING:
    from inference.card import ModelCard

log = logging.getLogger(__name__)


#: How long a click that needs the model offer waits for a listing still under way (s).
LISTING_WAIT_S = 30.0


class AnalyzeFeature(QObject):
    """The Analyze feature (a ``viewer.ui.feature.Feature``)."""

    #: The open series' model offer arrived (a ModelOffer) and is in the menu.
    models_listed = Signal(object)

    def __init__(
        self,
        services: WindowServices,
        controller: AnalysisController | None = None,
        store: ResultStore | None = None,
        models: Callable[[Volume], ModelOffer] | None = None,
    ) -> None:
        super().__init__(services.window)
        window = services.window
        self.services, self.state = services, services.state
        self.store = store if store is not None else ResultStore()
        self.controller = controller or AnalysisController(self, store=self.store)
        # Which models fit is asked on a worker when a series opens (see OfferListing).
        self._listing = OfferListing(models or offer_for, self._apply_offer, self)
        self._choice_at_request: ModelCard | None = None
        self.message_box: QMessageBox | None = None
        self.override_box: QMessageBox | None = None
        self._shown_volume: Volume | None = None
        self._key = ""
        self._cpu_noted = False
        self._restored: Volume | None = None
        self._activity: Activity | None = None
        self.last_message = ""

        self.menu = ModelMenu(window)
        self.menu.override_requested.connect(self.request_override)
        self.action = QAction("Analyze", window)
        # Ctrl+R is already "Reset window and zoom" in the main window.
        self.action.setShortcut(QKeySequence("Ctrl+Shift+A"))
        self.action.setToolTip("Run the selected AI model on this series (Ctrl+Shift+A)")
        self.action.triggered.connect(lambda *_: self.analyze())
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
        # Search, show/hide, colour and volume per label of the newest mask (up to 117 labels).
        self.labels = LabelBrowser(self.state.layers, self.findings)
        self.findings.layout().addWidget(self.labels, 1)
        self.dock = QDockWidget("Findings", window)
        self.dock.setObjectName("findingsDock")
        self.dock.setWidget(self.findings)
        # A tab beside Layers gets the panel's full height; a new dock would be squeezed.
        services.add_dock("findings", self.dock, beside="layers")
        self.shown = ShownRuns(
            self.state, self.findings, self.display, self.labels, self.dock, self.store, self._say
        )

        c = self.controller
        # A finished run is shown a layer per event-loop turn, before analysis_finished.
        c.set_presenter(self._present)
        c.analysis_progressed.connect(self._on_progress)
        c.analysis_finished.connect(self._on_finished)
        c.analysis_failed.connect(self._on_failed)
        c.analysis_cancelled.connect(self._on_cancelled)
        c.analysis_refused.connect(self._say)
        services.series_changed.connect(self._on_volume_changed)
        services.series_loaded.connect(self._on_series_loaded)
        self.state.layers.subscribe(self.shown.on_layer_event)
        self.action.setEnabled(False)
        self._on_volume_changed()

    # ---- series --------------------------------------------------------------------------
    @Slot()
    def _on_volume_changed(self) -> None:
        volume = self.state.volume
        if volume is self._shown_volume:
            return
        self._shown_volume = volume
        self.shown.clear()
        self.action.setEnabled(volume is not None)
        if volume is None:
            self.menu.setEnabled(True)
            self.menu.set_offer(ModelOffer())
            self.findings.set_no_fit("")
            return
        self.refresh_models(keep_choice=False)
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
        self._key = self.shown.key = volume_key(volume)
        try:
            records = self.store.latest_per_model(self._key)
        except ResultStoreError as exc:
            self._say(f"Stored AI results could not be restored: {exc}")
            records = []
        for rec in records:
            if tuple(rec.shape) == tuple(volume.shape):
                self._show(rec, summarise(rec, volume.spacing))

    # ---- models --------------------------------------------------------------------------
    @property
    def offer(self) -> ModelOffer:
        """The models offered for the open series (admitted first); a listing still under
        way is waited for (bounded)."""
        self.wait_for_models()
        return self.menu.offer

    def wait_for_models(self, timeout_s: float = LISTING_WAIT_S) -> bool:
        """Apply the open series' model offer now, waiting for its listing if it is still
        under way. False if it did not come within ``timeout_s``."""
        return self._listing.wait(timeout_s)

    @property
    def listing_models(self) -> bool:
        """True while the open series' model offer is being listed on a worker."""
        return self._listing.pending

    @property
    def listing_threads(self) -> list[tuple[str, int]]:
        """(name, ident) of the thread each model listing ran on, newest last."""
        return list(self._listing.threads)

    def refresh_models(self, keep_choice: bool = True) -> None:
        """Ask the registry again which models fit the open series (a model was published,
        imported or changed on disk), on a worker: the menu shows the answer when it comes
        (``models_listed``). ``keep_choice``: keep the user's pick while it fits."""
        volume = self.state.volume
        if volume is None:
            return
        self.menu.setEnabled(False)  # until the offer for this series is in
        self._choice_at_request = self.menu.current()
        self._listing.request(volume, keep_choice)

    def _apply_offer(self, volume: Volume, offer: ModelOffer, keep_choice: bool) -> None:
        if volume is not self.state.volume:
            return  # another series was opened meanwhile
        if offer.facts is None:  # an offer made without them still explains itself
            offer = replace(offer, facts=series_facts(volume))
        self.menu.setEnabled(True)
        picked = self.menu.current()
        if picked is not None and picked is not self._choice_at_request:
            # The user chose a model ("Use for Analyze") while the list was being made.
            self.menu.set_offer(offer, preferred=picked)
        else:
            self.menu.set_offer(offer, preferred=None if keep_choice else offer.best)
        self.findings.set_no_fit("" if offer.admitted() else offer.none_fits_text())
        self.models_listed.emit(offer)

    # ---- running -------------------------------------------------------------------------
    @Slot()
    def analyze(self, card: ModelCard | None = None) -> bool:
        """Run ``card`` (default: the menu's choice, else the best admitted model) on the open
        series. A model that does not fit the series is never run from here without the
        user's confirmation (``request_override``); when none fits, a message says why."""
        volume = self.state.volume
        if volume is None:
            self._say("Open a series first, then Analyze.")
            return False
        if self.services.loading():
            self._say("The series is still loading; Analyze when all its slices are in.")
            return False
        if not self.wait_for_models():
            self._say("The models for this series are still being listed; Analyze again soon.")
            return False
        offer = self.offer
        if card is None:
            card = self.menu.current()
            # The menu's pick is admitted, or a model the user pinned for this series although
            # it does not fit (then the confirmation below asks); nothing picked: the best
            # admitted model, or the message that none fits. Never a silent fallback.
            card = card or offer.best
        if card is None:
            self.show_none_fits()
            return False
        choice = offer.choice(card.id)
        if choice is None:
            self._say(
                f"{card.name} is not offered for this series: its package is refused or no "
                "longer installed (see the Models panel).",
                dialog=True,
            )
            return False
        if not choice.admitted:
            self.request_override(choice.card)
            return False
        return self._start(volume, choice.card, outside_intended_use=False)

    def _start(self, volume: Volume, card: ModelCard, outside_intended_use: bool) -> bool:
        if not self.controller.start(volume, card, outside_intended_use=outside_intended_use):
            return False
        self._idle()
        words = f"{card.name} ({OUTSIDE_INTENDED_USE})" if outside_intended_use else card.name
        self._activity = self.services.begin(f"{words}: starting", self.controller.cancel)
        return True

    def show_none_fits(self) -> QMessageBox:
        """The "no installed model fits" message: each installed model and why it does not."""
        text = self.offer.none_fits_text()
        self._say(text.splitlines()[0])
        self.message_box = none_fits_box(self.services.window, text)
        return self.message_box

    @Slot(object)
    def request_override(self, card: ModelCard) -> QMessageBox | None:
        """Ask before running ``card`` on a series its card does not admit; "Run anyway"
        starts it marked outside intended use. Non-modal: the study stays usable meanwhile."""
        volume = self.state.volume
        choice = self.offer.choice(card.id)
        if volume is None or choice is None:
            self._say(f"{card.name} is not offered for this series.")
            return None

        def run() -> None:
            # The series may have changed while the question was open: run on what it asked.
            if self.state.volume is not volume:
                return
            if self.services.loading():
                self._say("The series is still loading; Analyze when all its slices are in.")
                return
            self._start(volume, choice.card, outside_intended_use=True)

        self.override_box = override_box(self.services.window, card.name, choice.reasons, run)
        return self.override_box

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
        if rec.outside_intended_use:
            text += f" — {OUTSIDE_INTENDED_USE}"
        elif rec.flagged:
            text += " — flagged, see Findings"
        if rec.device == "cpu" and not self._cpu_noted:
            # Said once, quietly: a workstation without a GPU is normal, not an error.
            self._cpu_noted = True
            text += " (no GPU found; the CPU is used)"
        self.services.show_message(text, 15_000)
        self.last_message = text
        if outcome.volume is not self.state.volume:
            return  # the user moved on; the result is stored and shows when it is reopened
        if not self.shown.has(rec.run_id):  # not shown by ``_present`` (e.g. it was cut short)
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
            self.message_box = message_box(self.services.window, message)

    # ---- results -------------------------------------------------------------------------
    def _present(self, outcome: AnalysisOutcome) -> Iterator[None]:
        """The controller's presenter: a finished run shown one step per event-loop turn."""
        if outcome.volume is self.state.volume:
            self._on_progress(1.0, "showing the results")
            yield from self.shown.show_steps(outcome.record, outcome.summary)

    def _show(self, rec: ResultRecord, summary: ResultSummary) -> None:
        self.shown.show(rec, summary)

    def records(self) -> list[ResultRecord]:
        return self.shown.records()

    def visible_records(self) -> list[ResultRecord]:
        """The shown runs with at least one of their layers visible in the views."""
        return self.shown.visible_records()

    @Slot(object)
    def jump_to(self, finding: Finding) -> None:
        """Move every plane to the finding's centre."""
        self.state.set_cursor(finding.centre_zyx)
