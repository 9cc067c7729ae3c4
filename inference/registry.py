"""Find installed model packages (shipped, user, extra folders), verify them, and answer which
may run on a series (``admission``, ``offer``, ``best_model``): never one that fails its hashes
or that its card does not admit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from inference.card import CardError, ModelCard
from inference.networks import MAX_INPUT_VOXELS
from inference.weights import PackageVerifier, Verification
from radlens_core.admission import Admission, SeriesFacts
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


def _scan_all(extra_dirs: Iterable[str | Path]) -> tuple[list[ModelCard], list[tuple[Path, str]]]:
    """Every readable card in scan order (ids may repeat) and the refused folders."""
    roots = [shipped_models_dir(), user_models_dir()]
    direct: list[Path] = []
    for e in extra_dirs:
        p = Path(e)
        (direct if _is_package(p) else roots).append(p)
    refused: list[tuple[Path, str]] = []
    cards: list[ModelCard] = []
    for d in _package_dirs(roots) + direct:
        try:
            cards.append(ModelCard.load(d))
        except CardError as exc:
            refused.append((d, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad package must never hide the others
            refused.append((d, f"{d}: cannot read the package ({type(exc).__name__}: {exc})"))
    return cards, refused


def _unique(cards: Iterable[ModelCard]) -> list[ModelCard]:
    found = {c.id: c for c in cards}  # the later root wins (user over shipped)
    return sorted(found.values(), key=lambda c: (c.task, c.id))


def scan_models(extra_dirs: Iterable[str | Path] = ()) -> RegistryScan:
    """Every valid package in resources/models, the user models folder and ``extra_dirs``.

    A folder may be a package itself or hold packages. Bad packages are skipped and reported
    in the scan's ``problems``. When ids clash the later root wins (user over shipped).
    Hashes are not checked here (see ``usable_models``).
    """
    global problems
    cards, refused = _scan_all(extra_dirs)
    problems = refused  # rebound, never cleared in place: a reader's copy stays whole
    return RegistryScan(_unique(cards), list(refused))


def list_models(extra_dirs: Iterable[str | Path] = ()) -> list[ModelCard]:
    """The usable cards of ``scan_models(extra_dirs)`` (its problems are dropped)."""
    return scan_models(extra_dirs).cards


#: Remembers each package's hash verdict while its files stay unchanged on disk.
VERIFIER = PackageVerifier()


def usable_models(extra_dirs: Iterable[str | Path] = ()) -> RegistryScan:
    """The packages that may run: cards that read AND whose files match their SHA-256.

    A package failing its hashes is among ``problems`` with the reason; when it shares its
    id with a verified package (e.g. the shipped one), that one stays usable."""
    cards, refused = _scan_all(extra_dirs)
    for v in VERIFIER.verify_all(cards):  # remembered: each package is hashed once
        if not v.verified:
            refused.append((v.card.path, f"refused: {v.problem}"))
    good = [v.card for v in _verified_installed(extra_dirs) if v.verified]
    return RegistryScan(_unique(good), refused)


# ---- where a model may run ----------------------------------------------------------------
#: Body-part words that name the same region (DICOM BodyPartExamined varies by vendor).
_BODY_ALIASES = {"THORAX": "CHEST", "LUNG": "CHEST", "LUNGS": "CHEST", "BRAIN": "HEAD"}
_TASK_ORDER = {"segmentation": 0, "detection": 1, "classification": 2}


def _body(word: str) -> str:
    w = (word or "").strip().upper()
    return _BODY_ALIASES.get(w, w)


def _mm(values: tuple[float, ...]) -> str:
    return "×".join(f"{v:g}" for v in values) + " mm"


def admission(card: ModelCard, facts: SeriesFacts) -> Admission:
    """Whether ``card`` is meant for the series ``facts`` describe: each reason is a sentence
    saying why not (DESIGN.md "Where it may run"); no reasons = admitted."""
    reasons: list[str] = []
    if card.task == "interactive":  # prompts come from the Segment Editor, not from Analyze
        reasons.append("it is a promptable model: use it from the Segment Editor's Prompt tool")
    mods = set(card.modalities)
    if facts.modality not in mods and not mods & {"ANY"}:
        seen = facts.modality if facts.modality not in ("", "OT") else "of no stated modality"
        reasons.append(f"it is made for {'/'.join(card.modalities)} images; this series is {seen}")
    if card.spatial_dims != facts.spatial_dims:
        want = "3D volumes" if card.spatial_dims == 3 else "single 2D images"
        have = "a 3D volume" if facts.spatial_dims == 3 else "a single 2D image"
        reasons.append(f"it is made for {want}; this series is {have}")
    part = _body(facts.body_part)
    if card.body_part not in ("ANY", "") and part and _body(card.body_part) != part:
        reasons.append(
            f"it is made for the {card.body_part.lower()}; this series is of the"
            f" {facts.body_part.lower()} (BodyPartExamined {facts.body_part})"
        )
    if card.target_spacing is not None and not facts.has_spacing:
        reasons.append(
            f"it needs the pixel spacing in millimetres (it resamples to"
            f" {_mm(card.target_spacing)}); this series has no calibrated pixel spacing"
        )
    z, y, x = facts.shape
    voxels = z * y * x
    if voxels > MAX_INPUT_VOXELS:
        reasons.append(
            f"this series has {voxels:,} voxels; no model analyses more than {MAX_INPUT_VOXELS:,}"
        )
    if card.max_input_size is not None:
        size = (x, y, z)[: card.spatial_dims]
        if any(s > m for s, m in zip(size, card.max_input_size, strict=False)):
            have = "×".join(map(str, size))
            limit = "×".join(map(str, card.max_input_size))
            reasons.append(f"this series is {have} voxels; the model takes at most {limit}")
    need = card.input_channels
    if facts.channels != need and need not in (1, 3):
        reasons.append(f"it needs {need} input channels; this series has {facts.channels}")
    return Admission(card.id, card.name, tuple(reasons))


def _verified_installed(extra_dirs: Iterable[str | Path] = ()) -> list[Verification]:
    """One verdict per id: the later root wins, but a package failing its hashes never takes
    the place of a verified one (a tampered user copy must not hide the shipped model)."""
    cards, _ = _scan_all(extra_dirs)
    chosen: dict[str, Verification] = {}
    for v in VERIFIER.verify_all(cards):
        old = chosen.get(v.card.id)
        if old is None or v.verified or not old.verified:
            chosen[v.card.id] = v
    return list(chosen.values())


def _entries_verified(entries: Iterable[ModelCard | Verification] | None) -> list[Verification]:
    if entries is None:
        return _verified_installed()
    return [e if isinstance(e, Verification) else VERIFIER.verify(e) for e in entries]


def _ranked(
    facts: SeriesFacts,
    entries: Iterable[ModelCard | Verification] | None,
    task: str | None = None,
) -> list[tuple[Admission, ModelCard | None]]:
    shipped = shipped_models_dir().resolve()
    rows = []
    for v in _entries_verified(entries):
        card = v.card
        if task is not None and card.task != task:
            continue
        adm = admission(card, facts)
        usable = v.verified
        if not usable:
            adm = Admission(
                card.id, card.name, (f"its files fail their check and it was refused: {v.problem}",)
            )
        specific = card.body_part != "ANY" and _body(card.body_part) == _body(facts.body_part)
        is_shipped = Path(card.path).resolve().is_relative_to(shipped)
        key = (
            not adm.admitted,
            not usable,
            not specific,
            is_shipped,
            _TASK_ORDER.get(card.task, 9),
            card.id,
        )
        rows.append((key, adm, card if usable else None))
    rows.sort(key=lambda r: r[0])
    return [(adm, card) for _, adm, card in rows]


def offer(
    facts: SeriesFacts, entries: Iterable[ModelCard | Verification] | None = None
) -> list[Admission]:
    """Each installed model's answer for this series, admitted (and verified) ones first, best
    first. Packages that fail their hashes come last, never admitted, their reason saying so.
    ``entries``: the cards (or ``Verification``s) to consider; default: the installed ones."""
    return [adm for adm, _ in _ranked(facts, entries)]


def best_model(
    facts: SeriesFacts | str,
    spatial_dims: int | None = None,
    body_part: str | None = None,
    task: str | None = None,
    entries: Iterable[ModelCard | Verification] | None = None,
) -> ModelCard | None:
    """The best admitted, hash-verified model for the series; None when none fits (there is
    no fallback). Ties go to an exact body part, then the user's own models over the shipped
    demos, then segmentation over detection over classification, then by id.

    Also callable the old way, ``best_model(modality, spatial_dims, body_part, task=...)``
    (then the size and spacing checks assume a calibrated image of unknown size)."""
    if not isinstance(facts, SeriesFacts):
        facts = SeriesFacts(str(facts), int(spatial_dims or 3), (1, 1, 1), body_part or "")
    for adm, card in _ranked(facts, entries, task):
        if adm.admitted and card is not None:
            return card
    return None


def find_model(model_id: str, extra_dirs: Iterable[str | Path] = ()) -> ModelCard:
    """The installed package with this id (or ``id@version``); KeyError names what exists."""
    wanted, _, version = model_id.partition("@")
    cards = list_models(extra_dirs)
    for card in cards:
        if card.id == wanted and (not version or card.version == version):
            return card
    have = ", ".join(f"{c.id}@{c.version}" for c in cards) or "none installed"
    raise KeyError(f"no model package {model_id!r} (installed: {have})")
