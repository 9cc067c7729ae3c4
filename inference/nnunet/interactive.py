"""nnInteractive model folders (nnU-Net v2 based promptable models) imported as RadLens
"interactive" packages.

An nnInteractive folder is an nnU-Net v2 trained-model folder -- dataset.json, plans.json,
fold_N/checkpoint_final.pth (trainer ``nnInteractiveTrainer*``) -- plus a LICENSE whose first
line names its licence (the published weights: CC BY-NC-SA 4.0). Its network takes the image
channel(s) and then nnInteractive's interaction channels (previous segmentation, box +/-,
points +/-, scribble +/-: its legacy capability layout) and answers two channels (background,
structure). The import reads it exactly as the nnU-Net import does (JSON as data, the
checkpoint with ``weights_only=True`` and the safe-globals list, the network from the
allow-list, the weights checked against it), writes fold weights as safetensors, and states
the input channels and the two outputs in the card's ``nnunet`` block, so that the package
loads through ``inference.nnunet.load_package`` like any other. The licence travels as the
package's LICENSE (shown by the Models panel) and in the card's intended-use sentence."""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from inference.nnunet.checkpoint import check_inside, load_checkpoint
from inference.nnunet.errors import NnunetError
from inference.nnunet.folders import (
    CHECKPOINT,
    SOURCE_FORMAT,
    _find_folds,
    _safe_id,
    folder_config,
)
from inference.nnunet.jsondata import read_json
from radlens_core.files import atomic_write_json, atomic_write_text, fsync_dir, sha256_file
from radlens_core.progress import Progress

TRAINER_PREFIX = "nnInteractiveTrainer"
#: nnInteractive's interaction channels after the image, in its legacy capability order
#: (prev_seg 0, bbox (1, 2), points (3, 4), scribble (5, 6)), named as RadLens's task does.
INTERACTION_CHANNELS = ("previous", "box+", "box-", "points+", "points-", "scribble+", "scribble-")
#: What an nnInteractive folder without a LICENSE is assumed to carry (its authors' weights).
UNKNOWN_LICENCE = "licence not stated (nnInteractive's published weights are CC BY-NC-SA 4.0)"
MAX_LICENCE_BYTES = 256 * 1024


def is_nninteractive_folder(src: str | Path) -> bool:
    """Whether ``src`` is an nnU-Net folder whose checkpoint names an nnInteractive trainer
    (read safely: ``weights_only`` with the safe-globals list)."""
    src = Path(src)
    try:
        (_, path), *_ = _find_folds(src, None)
        return load_checkpoint(path, src).trainer.startswith(TRAINER_PREFIX)
    except (NnunetError, ValueError):
        return False


def licence_of(src: Path) -> str:
    """The first non-empty line of the folder's LICENSE (nnInteractive's own rule)."""
    for name in ("LICENSE", "LICENSE.txt", "LICENCE", "license"):
        path = src / name
        if path.is_file() and not path.is_symlink():
            if path.stat().st_size > MAX_LICENCE_BYTES:
                raise NnunetError(f"{path}: larger than {MAX_LICENCE_BYTES // 1024} KiB")
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.strip():
                    return line.strip()[:200]
    return UNKNOWN_LICENCE


def import_nninteractive_folder(
    src: str | Path,
    dest_root: str | Path,
    model_id: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Validate an nnInteractive folder and write it as an interactive RadLens package in
    ``dest_root/<model id>`` atomically; returns the package folder."""
    from safetensors.torch import save_file

    report = progress or (lambda f, s: None)
    src, dest_root = Path(src), Path(dest_root)
    for name in ("dataset.json", "plans.json"):
        check_inside(src / name, src)
    dataset = read_json(src / "dataset.json")
    plans = read_json(src / "plans.json")
    folds = _find_folds(src, None)
    if len(folds) != 1:
        raise NnunetError(f"{src}: an nnInteractive folder holds one fold_N/{CHECKPOINT}")
    fold, path = folds[0]
    report(0.1, f"Reading fold {fold}")
    ckpt = load_checkpoint(path, src)
    if not ckpt.trainer.startswith(TRAINER_PREFIX):
        raise NnunetError(f"{path}: trainer {ckpt.trainer!r} is not an nnInteractive trainer")
    config = folder_config(src, plans, dataset, ckpt)
    if config.is_2d:
        raise NnunetError(f"{path}: nnInteractive models are 3D; this one is 2D")
    images = len(config.channel_names)
    channels = images + len(INTERACTION_CHANNELS)
    # What the network is: the image channel(s) and the interactions in, two classes out.
    spec = dataclasses.replace(config.network, input_channels=channels, num_classes=2)
    report(0.5, "Checking the weights against the network")
    net = spec.build()
    try:
        net.load_state_dict(ckpt.weights, strict=True)
    except RuntimeError as exc:
        raise NnunetError(
            f"{path}: the weights do not fit an nnInteractive network of {channels} input"
            f" channels described by plans.json ({str(exc).splitlines()[0][:200]})"
        ) from None
    del net
    licence = licence_of(src)
    mid = _safe_id(model_id or f"nninteractive-{config.dataset_name}")
    if model_id is not None and mid != model_id:
        raise NnunetError(f"model id {model_id!r} may use only a-z, 0-9, '.', '_' and '-'")
    dest_root.mkdir(parents=True, exist_ok=True)
    final = dest_root / mid
    if final.exists():
        raise NnunetError(f"{final}: a model with the id {mid!r} is already installed")
    tmp = Path(tempfile.mkdtemp(prefix=f".{mid}.", suffix=".importing", dir=dest_root))
    try:
        report(0.7, "Writing the weights as safetensors")
        name = f"fold_{fold}.safetensors"
        state = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt.weights.items()}
        save_file(state, str(tmp / name), metadata={"format": "pt", "source": "nninteractive"})
        atomic_write_text(tmp / "LICENSE", licence + "\n")
        files = {name: sha256_file(tmp / name)}
        block_config = dataclasses.replace(
            config,
            network=spec,
            channel_names=config.channel_names + INTERACTION_CHANNELS,
            normalization=config.normalization
            + tuple(
                dataclasses.replace(config.normalization[0], scheme="NoNormalization")
                for _ in INTERACTION_CHANNELS
            ),
            labels=((0, "background"), (1, "structure")),
        )
        card = _card(mid, block_config, name, files, src, licence, images)
        atomic_write_json(tmp / "model.json", card)
        fsync_dir(tmp)
        tmp.rename(final)
        fsync_dir(dest_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(1.0, f"Imported {mid}")
    return final


def _card(
    mid: str, config: Any, weights: str, files: dict[str, str], src: Path, licence: str, images: int
) -> dict[str, Any]:
    bwd = config.transpose_backward
    patch_xyz = [config.patch_size[b] for b in bwd][::-1]
    return {
        "schema_version": 1,
        "id": mid,
        "name": f"nnInteractive ({config.dataset_name}, {config.configuration})",
        "version": "1.0.0",
        "task": "interactive",
        "spatial_dims": 3,
        "modalities": ["ANY"],
        "body_part": "ANY",
        "input_channels": images + len(INTERACTION_CHANNELS),
        "target_spacing": None,
        "patch_size": patch_xyz,
        "preprocessing": {"steps": [{"op": "zscore"}]},
        "labels": [{"index": 1, "name": "structure", "color": "#ffd54f"}],
        "thresholds": {},
        "inference": {
            "interactive": {
                "grid": "voxels",
                "margin": 1.33,
                "click_radius": 4.0,
                "channels": ["image"] * images + list(INTERACTION_CHANNELS),
            }
        },
        "network": {
            "format": "safetensors",
            "architecture": f"nnunet.{config.network.architecture}",
            "kwargs": config.network.kwargs,
            "weights": weights,
            "output": "softmax",
        },
        "files": files,
        "training": {
            "data": "nnInteractive's authors' training data (see their publication)",
            "script": f"nnInteractive trainer {config.trainer}, plans {config.plans_name}",
            "imported_from": str(src),
            "licence": licence,
        },
        "metrics": {},
        "intended_use": (
            f"Imported nnInteractive model under the licence {licence}"
            + (" (non-commercial use only)" if re.search(r"\bNC\b", licence) else "")
            + "; its intended use is what its authors state; not validated by RadLens."
        ),
        "source_format": SOURCE_FORMAT,
        "nnunet": {**config.to_block(), "folds": [weights]},
    }
