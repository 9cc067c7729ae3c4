"""A model card's nnU-Net part (inference.card calls it): the "nnunet" block an imported
nnU-Net v2 package carries, checked by this package's own config validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inference.nnunet.config import NnunetConfig
from inference.nnunet.errors import NnunetError

SOURCE_NNUNET = "nnunet_v2"


def nnunet_block(
    data: dict,
    source: str,
    network: dict,
    files: dict[str, str],
    error: Callable[[str, str], Exception],
    where: str,
) -> tuple[str, dict[str, Any]]:
    """(source, nnunet block): an nnU-Net architecture needs its "nnunet" block, checked by
    inference.nnunet's own config validation, and model.json's "source_format" "nnunet_v2"."""
    fmt = data.get("source_format")
    is_nn = str(network["architecture"]).startswith("nnunet.")
    if fmt is not None and fmt != SOURCE_NNUNET:
        raise error("source_format", f"is {fmt!r}; the only one stated is {SOURCE_NNUNET!r}")
    if not is_nn:
        if fmt is not None or "nnunet" in data:
            raise error("nnunet", "belongs to an nnunet.* network architecture only")
        return source, {}
    if fmt != SOURCE_NNUNET or data.get("task") not in ("segmentation", "interactive"):
        raise error(
            "network.architecture",
            f"{network['architecture']!r} is for imported nnU-Net v2 segmentation models"
            f" (source_format {SOURCE_NNUNET!r}, task 'segmentation', or 'interactive' for"
            " nnInteractive)",
        )
    block = data.get("nnunet")
    try:
        config = NnunetConfig.from_block(block, where)
    except NnunetError as exc:
        raise error("nnunet", f"is refused: {exc}") from exc
    if network["architecture"] != f"nnunet.{config.network.architecture}":
        raise error(
            "network.architecture",
            f"is {network['architecture']!r} but the nnunet block builds"
            f" {config.network.architecture!r}",
        )
    assert isinstance(block, dict)  # from_block refused anything else
    folds = block.get("folds")
    if not isinstance(folds, list) or not 1 <= len(folds) <= 20:
        raise error("nnunet.folds", "must list 1 to 20 weights files")
    for name in folds:
        if not isinstance(name, str) or name not in files:
            raise error(
                "nnunet.folds", f"names {str(name)[:80]!r}, which has no SHA-256 in 'files'"
            )
    return SOURCE_NNUNET, dict(block)
