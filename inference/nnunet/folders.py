"""What an nnU-Net v2 trained-model folder holds, by name: its folds' final checkpoints and
the package id made from it (shared by the nnU-Net and the nnInteractive import)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.nnunet.errors import NnunetError
from inference.nnunet.plans import read_config

CHECKPOINT = "checkpoint_final.pth"
SOURCE_FORMAT = "nnunet_v2"
_FOLD = re.compile(r"^fold_(\d+|all)$")


def _find_folds(src: Path, folds: Sequence[int | str] | None) -> list[tuple[str, Path]]:
    if folds is not None:
        found = []
        for f in folds:
            path = src / f"fold_{f}" / CHECKPOINT
            if not path.exists() and not path.is_symlink():
                raise NnunetError(
                    f"{src}: fold {f} is missing ({path.relative_to(src)} not found); "
                    "import the folds that are there or copy the missing one"
                )
            found.append((str(f), path))
        return found
    found = []
    for child in sorted(src.iterdir()):
        m = _FOLD.match(child.name)
        ckpt = child / CHECKPOINT
        if m and (ckpt.exists() or ckpt.is_symlink()):  # links are refused later, by name
            found.append((m.group(1), ckpt))
    if not found:
        raise NnunetError(
            f"{src}: no fold_N/{CHECKPOINT} found; an nnU-Net v2 trained-model folder holds "
            "dataset.json, plans.json and at least one fold with its final checkpoint"
        )
    return found


def _safe_id(text: str) -> str:
    text = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return text[:80] or "nnunet-model"


def folder_config(src: Path, plans: dict, dataset: dict, ckpt: Any):  # -> NnunetConfig
    """The checked configuration a fold's checkpoint names, from the folder's plans.json and
    dataset.json (errors name those files)."""
    return read_config(
        plans,
        dataset,
        ckpt.configuration,
        ckpt.trainer,
        ckpt.mirror_axes,
        str(src / "plans.json"),
        str(src / "dataset.json"),
    )
