"""Install a trained model package into the user's model folder, atomically."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from radlens_core import paths

#: files of a package folder besides the weights that travel with it
EXTRA_FILES = ("README.md", "metrics.json", "metrics.csv", "report.html")


class PublishError(RuntimeError):
    """A package that cannot be installed; the message says why and what to do."""


def _package_files(card) -> list[str]:
    names = ["model.json", *card.files]
    names += [n for n in EXTRA_FILES if (card.path / n).is_file() and n not in names]
    names += sorted(p.name for p in card.path.glob("*.png"))
    return names


def publish(model_dir: str | Path, replace: bool = False) -> Path:
    """Copy a package to ``user_models_dir()/<id>`` and return that folder.

    The copy is written to a temporary folder beside the destination and renamed into place,
    so the registry never sees half a package. Publishing the same id and version with the
    same weights again is a no-op; a different version (or different weights under the same
    version) is refused unless ``replace`` is true.
    """
    from inference.card import CardError, ModelCard
    from inference.weights import WeightsError, verify_files

    src = Path(model_dir)
    try:
        card = ModelCard.load(src)
        verify_files(card)
        if card.network.get("format") == "onnx":  # the graph, read as data, fits its card
            from inference.card_data import package_file
            from inference.onnx_model import check_graph

            check_graph(card, package_file(card.path, card.network["weights"]))
    except (CardError, WeightsError) as exc:
        raise PublishError(f"{src}: cannot publish: {exc}") from exc
    root = paths.user_models_dir()
    dest = root / card.id
    if dest.resolve() == src.resolve():
        return dest
    if dest.exists():
        try:
            installed = ModelCard.load(dest)
            same = installed.version == card.version and installed.files == card.files
            what = f"version {installed.version}"
        except CardError:
            same, what = False, "an unreadable package"
        if same:
            return dest
        if not replace:
            raise PublishError(
                f"{dest} already holds {card.id!r} as {what}; this package is version "
                f"{card.version}. Give it a new id or version, or publish with replace."
            )
    tmp = Path(tempfile.mkdtemp(prefix=f".{card.id}.", suffix=".tmp", dir=root))
    try:
        for name in _package_files(card):
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(card.path / name, target)
        verify_files(ModelCard.load(tmp))  # the copy, not just the source, must be intact
        if dest.exists():
            old = root / f".{card.id}.replaced"
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
