"""Which installed models Analyze offers for the open series: its facts, each model's admission.

``series_facts(volume)`` is what a model card is checked against (modality, 2D/3D, shape,
body part from the header, whether the pixels have a calibrated spacing); ``offer_for``
asks ``inference.registry.offer`` (usable, hash-verified packages only, admitted first) and
pairs each answer with its card. Analyze runs admitted models only; the others are shown with
their reasons and run only by an explicit, confirmed override. ``inference`` is imported
lazily (no torch either way). ``OfferListing`` asks for the offer on a worker thread when a
series opens, so the window never waits for the registry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from radlens_core.admission import Admission, SeriesFacts
from viewer.engine_warm_up import short_thread_switches
from viewer.study.facts import series_facts
from viewer.study.volume import Volume

if TYPE_CHECKING:
    from inference.card import ModelCard

log = logging.getLogger(__name__)


def describe_facts(facts: SeriesFacts) -> str:
    """ "CR image (2D, 256 × 128), body part EXTREMITY, no calibrated pixel spacing"."""
    z, y, x = facts.shape
    size = f"{y} × {x}" if facts.spatial_dims == 2 else f"{z} × {y} × {x}"
    kind = "image" if facts.spatial_dims == 2 else "volume"
    bits = [f"{facts.modality} {kind} ({facts.spatial_dims}D, {size})"]
    bits.append(f"body part {facts.body_part}" if facts.body_part else "no body part stated")
    if not facts.has_spacing:
        bits.append("no calibrated pixel spacing")
    return ", ".join(bits)


@dataclass(frozen=True)
class ModelChoice:
    """An installed, verified model and the registry's answer for the open series."""

    card: ModelCard
    admission: Admission

    @property
    def admitted(self) -> bool:
        return self.admission.admitted

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.admission.reasons


@dataclass(frozen=True)
class ModelOffer:
    """The models Analyze may offer for one series, admitted ones first (registry order)."""

    choices: tuple[ModelChoice, ...] = ()
    facts: SeriesFacts | None = None

    def admitted(self) -> list[ModelCard]:
        return [c.card for c in self.choices if c.admitted]

    def refused(self) -> list[ModelChoice]:
        """Installed models that do not fit this series, with their reasons."""
        return [c for c in self.choices if not c.admitted]

    @property
    def best(self) -> ModelCard | None:
        """What the default Analyze runs: the registry's first admitted model, never a
        model that does not fit."""
        admitted = self.admitted()
        return admitted[0] if admitted else None

    def choice(self, model_id: str) -> ModelChoice | None:
        for c in self.choices:
            if c.card.id == model_id:
                return c
        return None

    def none_fits_text(self) -> str:
        """What the user reads when no installed model fits: each model and why not."""
        what = describe_facts(self.facts) if self.facts is not None else "this series"
        if not self.choices:
            return (
                f"No installed model fits this series ({what}): no usable model is installed.\n"
                "Import one with File > Import model…, or see the Models panel for packages "
                "that were refused."
            )
        lines = [f"No installed model fits this series ({what}).", ""]
        for c in self.choices:
            lines.append(f"• {c.card.name} {c.card.version}: {'; '.join(c.reasons)}")
        lines += [
            "",
            "To run one anyway, choose it under AI > Model > Run outside intended use…; "
            "its result is then marked “outside intended use”.",
        ]
        return "\n".join(lines)


def admitted_offer(cards: Iterable[ModelCard], facts: SeriesFacts | None = None) -> ModelOffer:
    """An offer that admits every card (a caller that already chose its models)."""
    return ModelOffer(
        tuple(ModelChoice(c, Admission(c.id, c.name)) for c in cards),
        facts,
    )


def offer_for(volume: Volume) -> ModelOffer:
    """The registry's offer for ``volume``: usable, hash-verified models, admitted first."""
    from inference import registry

    facts = series_facts(volume)
    admissions = registry.offer(facts)
    # Only hash-verified packages: the registry lists refused ones too (with their reason),
    # but a package failing its hashes is never offered, not even outside intended use.
    cards = {card.id: card for card in registry.usable_models().cards}
    return ModelOffer(
        tuple(ModelChoice(cards[a.model_id], a) for a in admissions if a.model_id in cards),
        facts,
    )


class OfferListing(QObject):
    """Asks for a series' model offer on a worker thread (the first listing imports the
    registry and hashes every package's weights: 0.6 s on a loaded machine) and hands it to
    ``apply(volume, offer, keep_choice)`` on the UI thread. Only the newest request is
    applied; listings run one at a time (the registry is not shared between threads).
    ``wait`` applies a pending answer at once, for a click that needs it now."""

    _answered = Signal(int)

    def __init__(
        self,
        models: Callable[[Volume], ModelOffer],
        apply: Callable[[Volume, ModelOffer, bool], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._models, self._apply = models, apply
        self._lock = threading.Lock()  # guards the fields below
        self._serial = threading.Lock()  # one listing at a time
        self._latest = 0
        self._answer: tuple[int, Volume, ModelOffer, bool] | None = None
        self._ready = threading.Event()
        self._ready.set()
        #: The thread each listing ran on (name, ident), newest last: for tests and logs.
        self.threads: list[tuple[str, int]] = []
        self._answered.connect(self._deliver)

    @property
    def pending(self) -> bool:
        """True while the newest request has not been applied."""
        return not self._ready.is_set() or self._answer is not None

    def request(self, volume: Volume, keep_choice: bool) -> None:
        with self._lock:
            self._latest += 1
            token = self._latest
            self._answer = None
            self._ready.clear()
        worker = threading.Thread(
            target=self._list,
            args=(token, volume, keep_choice),
            name="radlens-model-offer",
            daemon=True,  # reads cards and hashes files; nothing to finish at exit
        )
        worker.start()

    def _list(self, token: int, volume: Volume, keep_choice: bool) -> None:  # worker
        with self._serial, short_thread_switches():
            with self._lock:
                if token != self._latest:
                    return  # a newer series was opened meanwhile
            self.threads.append((threading.current_thread().name, threading.get_ident()))
            try:
                offer = self._models(volume)
            except Exception as exc:  # noqa: BLE001 - a broken models folder must not stop the series opening
                log.warning("listing models failed: %s", exc)
                offer = ModelOffer()
        with self._lock:
            if token != self._latest:
                return
            self._answer = (token, volume, offer, keep_choice)
            self._ready.set()
        try:
            self._answered.emit(token)  # queued: ``_deliver`` runs on the UI thread
        except RuntimeError:  # the window (and this object) closed while it listed
            pass

    @Slot(int)
    def _deliver(self, token: int) -> None:
        with self._lock:
            answer = self._answer
            if answer is None or answer[0] != token:
                return  # applied by ``wait`` already, or superseded
            self._answer = None
        _, volume, offer, keep_choice = answer
        self._apply(volume, offer, keep_choice)

    def wait(self, timeout_s: float) -> bool:
        """Apply the newest answer now, waiting for it up to ``timeout_s`` (the worker holds
        the interpreter lock only in short turns). False if it is still not there."""
        if not self._ready.wait(timeout_s):
            return False
        with self._lock:
            token = self._answer[0] if self._answer is not None else None
        if token is not None:
            self._deliver(token)
        return True
