"""Test-only stand-in for ``inference.registry.admission``/``offer`` until the boundary branch
(which owns inference/) lands them. conftest installs it only where the registry lacks them,
so once the real functions exist every test runs against those.

It follows the agreed contract: ``admission(card, facts) -> Admission`` (reasons are
sentences, admitted when empty); ``offer(facts, entries=None) -> list[Admission]`` of usable,
hash-verified models only, admitted first."""

from __future__ import annotations

from radlens_core.admission import Admission, SeriesFacts

_verifier = None


def admission(card, facts: SeriesFacts) -> Admission:
    reasons: list[str] = []
    mods = set(card.modalities)
    if facts.modality not in mods and not mods & {"ANY", "OT"}:
        reasons.append(f"made for {', '.join(card.modalities)}; this series is {facts.modality}")
    if card.spatial_dims != facts.spatial_dims:
        want = "3D volumes" if card.spatial_dims == 3 else "single 2D images"
        have = "a 3D volume" if facts.spatial_dims == 3 else "a 2D image"
        reasons.append(f"works on {want}; this series is {have}")
    if card.body_part != "ANY" and facts.body_part and card.body_part != facts.body_part:
        reasons.append(f"made for the {card.body_part}; this image is of the {facts.body_part}")
    if card.target_spacing is not None and not facts.has_spacing:
        reasons.append("needs the pixel size in millimetres; this image has no calibrated spacing")
    return Admission(card.id, card.name, tuple(reasons))


def offer(facts: SeriesFacts, entries=None) -> list[Admission]:
    global _verifier
    from inference import registry
    from inference.verification import PackageVerifier

    if _verifier is None:
        _verifier = PackageVerifier()
    cards = list(entries) if entries is not None else registry.list_models()
    usable = [v.card for v in _verifier.verify_all(cards) if v.verified]
    answers = [admission(card, facts) for card in usable]
    order = {"segmentation": 0, "detection": 1, "classification": 2}
    ranked = sorted(
        zip(answers, usable, strict=True),
        key=lambda t: (
            not t[0].admitted,
            t[1].body_part == "ANY",
            order.get(t[1].task, 9),
            t[1].id,
        ),
    )
    return [a for a, _ in ranked]
