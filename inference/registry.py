"""Find installed model packages (shipped, user, extra folders) and match a series to one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inference.card import CardError, ModelCard
from radlens_core.paths import shipped_models_dir, user_models_dir


@dataclass(frozen=True)
class RegistryScan:
    """One look at the installed packages: the usable cards and the refused folders, together,
    so that two threads listing at once each keep their own answer."""

    cards: list[ModelCard]
    #: (folder, reason) for each package found but refused
    problems: list[tuple[Path, str]] = field(default_factory=list)


#: Deprecated: the refusals of the latest ``list_models``/``scan_models`` call from any thread
#: (a fresh list each call). Racy by nature; use ``scan_models(...).problems``.
problems: list[tuple[Path, str]] = []


def _is_package(d: Path) -> bool:
    return (d / "model.json").is_file() or (d / "configs" / "metadata.json").is_file()


def _package_dirs(roots: Iterable[Path]) -> list[Path]:
    out = []
    for root in roots:
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            # Hidden folders are work in progress (a publish's ".<id>.*.tmp", the
            # ".<id>.replaced" it swaps out), never an installed package.
            if not d.name.startswith(".") and d.is_dir() and _is_package(d):
                out.append(d)
    return out


def scan_models(extra_dirs: Iterable[str | Path] = ()) -> RegistryScan:
    """Every valid package in resources/models, the user models folder and ``extra_dirs``.

    A folder may be a package itself or hold packages. Bad packages are skipped and reported
    in the scan's ``problems``. When ids clash the later root wins (user over shipped).
    """
    global problems
    roots = [shipped_models_dir(), user_models_dir()]
    direct: list[Path] = []
    for e in extra_dirs:
        p = Path(e)
        (direct if _is_package(p) else roots).append(p)
    refused: list[tuple[Path, str]] = []
    found: dict[str, ModelCard] = {}
    for d in _package_dirs(roots) + direct:
        try:
            card = ModelCard.load(d)
        except CardError as exc:
            refused.append((d, str(exc)))
            continue
        found[card.id] = card
    problems = refused  # rebound, never cleared in place: a reader's copy stays whole
    return RegistryScan(sorted(found.values(), key=lambda c: (c.task, c.id)), list(refused))


def list_models(extra_dirs: Iterable[str | Path] = ()) -> list[ModelCard]:
    """The usable cards of ``scan_models(extra_dirs)`` (its problems are dropped)."""
    return scan_models(extra_dirs).cards


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
