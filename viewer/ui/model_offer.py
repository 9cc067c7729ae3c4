"""Which installed models Analyze offers for the open series: its facts, each model's admission.

``series_facts(volume)`` is what a model card is checked against (modality, 2D/3D, shape,
body part from the header, whether the pixels have a calibrated spacing); ``offer_for``
asks ``inference.registry.offer`` (usable, hash-verified packages only, admitted first) and
pairs each answer with its card. Analyze runs admitted models only; the others are shown with
their reasons and run only by an explicit, confirmed override. ``inference`` is imported
lazily (no torch either way).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from radlens_core.admission import Admission, SeriesFacts
from viewer.study.facts import series_facts
from viewer.study.volume import Volume

if TYPE_CHECKING:
    from inference.card import ModelCard


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
