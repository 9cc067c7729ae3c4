"""Find installed model packages (shipped, user, extra folders) and match a series to one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from inference.card import CardError, ModelCard
from inference.paths import shipped_models_dir, user_models_dir

#: Packages found but refused on the last ``list_models`` call: (folder, reason).
problems: list[tuple[Path, str]] = []


def _package_dirs(roots: Iterable[Path]) -> list[Path]:
    out = []
    for root in roots:
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if d.is_dir() and (
                (d / "model.json").is_file() or (d / "configs" / "metadata.json").is_file()
            ):
                out.append(d)
    return out


def list_models(extra_dirs: Iterable[str | Path] = ()) -> list[ModelCard]:
    """Every valid package in resources/models, the user models folder and ``extra_dirs``.

    A folder may be a package itself or hold packages. Bad packages are recorded in
    ``registry.problems`` and skipped. When ids clash the later root wins (user over shipped).
    """
    roots = [shipped_models_dir(), user_models_dir()]
    direct: list[Path] = []
    for e in extra_dirs:
        p = Path(e)
        if (p / "model.json").is_file() or (p / "configs" / "metadata.json").is_file():
            direct.append(p)
        else:
            roots.append(p)
    problems.clear()
    found: dict[str, ModelCard] = {}
    for d in _package_dirs(roots) + direct:
        try:
            card = ModelCard.load(d)
        except CardError as exc:
            problems.append((d, str(exc)))
            continue
        found[card.id] = card
    return sorted(found.values(), key=lambda c: (c.task, c.id))


def _matches(card: ModelCard, modality: str, spatial_dims: int, body_part: str | None) -> int:
    """0 = unusable; higher = better (exact body part beats ANY)."""
    mods = set(card.modalities)
    if modality.upper() not in mods and "ANY" not in mods and "OT" not in mods:
        return 0
    if card.spatial_dims != spatial_dims:
        return 0
    part = (body_part or "").upper()
    if card.body_part == "ANY" or not part:
        return 1
    return 2 if card.body_part == part else 0


def best_model(
    modality: str, spatial_dims: int, body_part: str | None, task: str | None = None
) -> ModelCard | None:
    """The most specific installed model for this modality, dimensionality and body part.

    Ties go to the user's own models (trained at the station) over the shipped demo models,
    then segmentation over detection over classification, then by id."""
    order = {"segmentation": 0, "detection": 1, "classification": 2}
    shipped = shipped_models_dir().resolve()
    scored = []
    for card in list_models():
        if task is not None and card.task != task:
            continue
        score = _matches(card, modality, spatial_dims, body_part)
        if score:
            is_shipped = card.path.resolve().is_relative_to(shipped)
            scored.append((-score, is_shipped, order.get(card.task, 9), card.id, card))
    return min(scored, key=lambda t: t[:4])[4] if scored else None


def find_model(model_id: str, extra_dirs: Iterable[str | Path] = ()) -> ModelCard:
    """The installed package with this id (or ``id@version``); KeyError names what exists."""
    wanted, _, version = model_id.partition("@")
    cards = list_models(extra_dirs)
    for card in cards:
        if card.id == wanted and (not version or card.version == version):
            return card
    have = ", ".join(f"{c.id}@{c.version}" for c in cards) or "none installed"
    raise KeyError(f"no model package {model_id!r} (installed: {have})")
