"""nnU-Net v2 trained-model folder -> RadLens package (atomic), and loading that package.

The folder (``dataset.json``, ``plans.json``, ``fold_N/checkpoint_final.pth``) is read as
data; each fold's weights become ``fold_N.safetensors`` (nothing is unpickled at run time),
hashed in model.json's ``files``; nnU-Net specifics sit in model.json's ``"nnunet"`` block.
"""

from __future__ import annotations

import colorsys
import datetime as _dt
import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.nnunet.checkpoint import Checkpoint, check_inside, load_checkpoint
from inference.nnunet.config import NnunetConfig
from inference.nnunet.errors import NnunetError
from inference.nnunet.folders import (
    CHECKPOINT,
    SOURCE_FORMAT,
    _find_folds,
    _safe_id,
    folder_config,
)
from inference.nnunet.jsondata import Fields, read_json
from radlens_core.files import atomic_write_json, fsync_dir, sha256_file
from radlens_core.progress import Progress
from radlens_core.results import FALLBACK_COLOURS, LabelClass

_LICENCE = re.compile(r"^(licen[cs]e|copying|readme)(\.(txt|md))?$", re.IGNORECASE)
MAX_TEXT_BYTES = 1024 * 1024
MR_WORDS = ("MR", "MRI", "T1", "T2", "FLAIR", "ADC", "DWI", "T1W", "T2W", "T1C", "T1GD", "PD")


@dataclass
class NnunetModel:
    """A loaded package: checked config, the network (CPU, eval) and each fold's weights."""

    model_id: str
    config: NnunetConfig
    network: Any  # torch.nn.Module
    fold_weights: list[dict[str, Any]]
    labels: tuple[LabelClass, ...]
    path: Path


def label_colour(index: int) -> str:
    if index <= len(FALLBACK_COLOURS):
        return FALLBACK_COLOURS[index - 1]
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.65, 0.95)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _modalities(channels: Sequence[str], config: NnunetConfig) -> list[str]:
    out = []
    for name, norm in zip(channels, config.normalization, strict=True):
        upper = name.upper()
        if upper == "CT" or norm.scheme == "CTNormalization" or upper.startswith("CT"):
            out.append("CT")
        elif upper in ("PET", "PT"):
            out.append("PT")
        elif any(w == upper or upper.startswith(w) for w in MR_WORDS):
            out.append("MR")
        else:
            out.append("OT")
    return sorted(set(out))


def _output_channels(weights: dict[str, Any]) -> int | None:
    seg = [k for k in weights if re.match(r"^decoder\.seg_layers\.\d+\.weight$", k)]
    if not seg:
        return None
    last = max(seg, key=lambda k: int(k.split(".")[2]))
    return int(weights[last].shape[0])


def _check_fits(config: NnunetConfig, ckpt: Checkpoint, path: Path, src: Path) -> None:
    out = _output_channels(ckpt.weights)
    if out is not None and out != config.num_classes:
        raise NnunetError(
            f"{src / 'dataset.json'}: lists {config.num_classes} labels (background included) "
            f"but the network in {path.relative_to(src)} outputs {out} channels; "
            "the dataset.json does not belong to this model"
        )


def import_nnunet_folder(
    src: str | Path,
    dest_root: str | Path,
    model_id: str | None = None,
    progress: Progress | None = None,
    *,
    folds: Sequence[int | str] | None = None,
    memory_limit: int | None = None,
) -> Path:
    """Validate an nnU-Net v2 trained-model folder and write it as a RadLens package in
    ``dest_root/<model id>`` atomically; returns the package folder."""
    import torch  # noqa: F401 - fail early and plainly if the engine is not installed
    from safetensors.torch import save_file

    from inference.nnunet.runner import GB, available_memory

    report = progress or (lambda f, s: None)
    src = Path(src)
    dest_root = Path(dest_root)
    if not src.is_dir():
        raise NnunetError(f"{src}: not a folder")
    from inference.nnunet.interactive import import_nninteractive_folder, is_nninteractive_folder

    if is_nninteractive_folder(src):  # a promptable nnU-Net: an "interactive" package
        return import_nninteractive_folder(src, dest_root, model_id, progress)
    report(0.0, "Reading plans.json and dataset.json")
    for name in ("dataset.json", "plans.json"):
        check_inside(src / name, src)
    dataset = read_json(src / "dataset.json")
    plans = read_json(src / "plans.json")
    fold_paths = _find_folds(src, folds)
    checkpoints: list[tuple[str, Checkpoint]] = []
    config = None
    for i, (fold, path) in enumerate(fold_paths):
        report(0.05 + 0.6 * i / len(fold_paths), f"Reading fold {fold}")
        ckpt = load_checkpoint(path, src)
        if config is None:
            config = folder_config(src, plans, dataset, ckpt)
            need = config.network.parameter_count() * 4 * 3 + config.network.activation_bytes(
                config.patch_size
            )
            limit = available_memory() if memory_limit is None else memory_limit
            if need > limit:
                raise NnunetError(
                    f"{src / 'plans.json'}: the network it describes would need about "
                    f"{need / GB:.1f} GB to run one patch, more than the {limit / GB:.1f} GB "
                    "this machine has free; refused before building it"
                )
        elif (ckpt.configuration, ckpt.trainer) != (config.configuration, config.trainer):
            raise NnunetError(
                f"{path}: was trained as {ckpt.trainer}/{ckpt.configuration}, the other folds "
                f"as {config.trainer}/{config.configuration}; import them separately"
            )
        _check_fits(config, ckpt, path, src)
        checkpoints.append((fold, ckpt))
    assert config is not None
    report(0.7, "Checking the weights against the network")
    net = config.network.build()
    for fold, ckpt in checkpoints:
        try:
            net.load_state_dict(ckpt.weights, strict=True)
        except RuntimeError as exc:
            raise NnunetError(
                f"{src / f'fold_{fold}' / CHECKPOINT}: the weights do not fit the network "
                f"described in plans.json ({str(exc).splitlines()[0][:200]})"
            ) from None
    del net

    mid = (
        _safe_id(model_id)
        if model_id
        else _safe_id(f"nnunet-{config.dataset_name}-{config.configuration}")
    )
    if model_id is not None and mid != model_id:
        raise NnunetError(f"model id {model_id!r} may use only a-z, 0-9, '.', '_' and '-'")
    dest_root.mkdir(parents=True, exist_ok=True)
    final = dest_root / mid
    if final.exists():
        raise NnunetError(
            f"{final}: a model with the id {mid!r} is already installed; choose another id"
        )
    tmp = Path(tempfile.mkdtemp(prefix=f".{mid}.", suffix=".importing", dir=dest_root))
    try:
        files: dict[str, str] = {}
        for i, (fold, ckpt) in enumerate(checkpoints):
            report(0.75 + 0.2 * i / len(checkpoints), f"Writing fold {fold} as safetensors")
            name = f"fold_{fold}.safetensors"
            state = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt.weights.items()}
            save_file(state, str(tmp / name), metadata={"format": "pt", "source": SOURCE_FORMAT})
            files[name] = sha256_file(tmp / name)
        extra = _copy_texts(src, tmp)
        card = _card(mid, config, [f for f, _ in checkpoints], files, src, dataset, extra)
        atomic_write_json(tmp / "model.json", card)
        fsync_dir(tmp)
        tmp.rename(final)  # atomic: the package appears whole or not at all
        fsync_dir(dest_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(1.0, f"Imported {mid}")
    return final


def _copy_texts(src: Path, tmp: Path) -> dict[str, str]:
    """Licence / README beside the model, copied as plain text (regular files, capped)."""
    out = {}
    for child in sorted(src.iterdir()):
        if not _LICENCE.match(child.name) or child.is_symlink() or not child.is_file():
            continue
        if child.stat().st_size > MAX_TEXT_BYTES:
            continue
        kind = "readme" if child.name.lower().startswith("readme") else "licence"
        target = "README.md" if kind == "readme" else "LICENSE.txt"
        if kind in out:
            continue
        shutil.copyfile(child, tmp / target)
        out[kind] = target
    return out


def _card(
    mid: str,
    config: NnunetConfig,
    folds: list[str],
    files: dict[str, str],
    src: Path,
    dataset: dict,
    extra: dict[str, str],
) -> dict[str, Any]:
    dims = 2 if config.reader == "NaturalImage2DIO" else 3
    bwd = config.transpose_backward
    spacing_xyz = patch_xyz = None
    if not config.is_2d:  # plans hold them in the transposed order; the card wants (x, y, z)
        spacing_xyz = [config.spacing[b] for b in bwd][::-1]
        patch_xyz = [config.patch_size[b] for b in bwd][::-1]
    n_train = dataset.get("numTraining")
    return {
        "schema_version": 1,
        "id": mid,
        "name": f"{config.dataset_name} (nnU-Net v2 {config.configuration}, "
        f"{len(folds)} fold{'s' if len(folds) > 1 else ''})",
        "version": "1.0.0",
        "task": "segmentation",
        "spatial_dims": dims,
        "modalities": _modalities(config.channel_names, config),
        "body_part": "ANY",
        "input_channels": len(config.channel_names),
        "target_spacing": spacing_xyz,
        "patch_size": patch_xyz,
        "preprocessing": {"steps": []},
        "labels": [
            {"index": i, "name": name, "color": label_colour(i)} for i, name in config.labels if i
        ],
        "thresholds": {},
        "inference": {"sw_batch_size": 1, "overlap": 0.5, "mode": "gaussian"},
        "network": {
            "format": "safetensors",
            "architecture": f"nnunet.{config.network.architecture}",
            "kwargs": config.network.kwargs,
            "weights": f"fold_{folds[0]}.safetensors",
            "output": "softmax",
        },
        "files": files,
        "training": {
            "data": f"nnU-Net v2 dataset {config.dataset_name}"
            + (f", {n_train} training cases" if isinstance(n_train, int) else ""),
            "script": f"nnU-Net v2 trainer {config.trainer}, plans {config.plans_name}",
            "parent": None,
            "date": None,
            "imported": _dt.date.today().isoformat(),
            "imported_from": str(src),
        },
        "metrics": {},
        "intended_use": (
            "Imported nnU-Net v2 model; its intended use is what its authors state"
            + (" (see the licence and README copied with it)." if extra else ".")
        ),
        "source_format": SOURCE_FORMAT,
        "nnunet": {**config.to_block(), "folds": [f"fold_{f}.safetensors" for f in folds], **extra},
    }


def load_package(folder: str | Path) -> NnunetModel:
    """Read a package written by :func:`import_nnunet_folder`: hashes first, then the
    ``nnunet`` block validated again, the network built from the allow-list and each fold's
    safetensors loaded into it (strict)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    card_path = folder / "model.json"
    card = read_json(card_path)
    f = Fields(str(card_path))
    card = f.obj(card, "(top level)")
    mid = f.string(card.get("id"), "id", 100)
    config = NnunetConfig.from_block(card.get("nnunet"), str(card_path))
    files = f.obj(card.get("files"), "files")
    block = card["nnunet"]
    fold_files = block.get("folds")
    if not isinstance(fold_files, list) or not fold_files or len(fold_files) > 20:
        raise f.error("nnunet.folds", "must list 1 to 20 weights files")
    for name in fold_files:
        if not isinstance(name, str) or name not in files:
            raise f.error(
                "nnunet.folds", f"names {str(name)[:80]!r}, which has no SHA-256 in 'files'"
            )
    for name, sha in files.items():
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise f.error(f"files.{name}", "must be a file inside the package")
        check_inside(path, folder)
        actual = sha256_file(path)
        if not isinstance(sha, str) or actual != sha.lower():
            raise NnunetError(
                f"{path}: SHA-256 mismatch; the model was refused because its files were changed"
            )
    net = config.network.build()
    weights = []
    for name in fold_files:
        try:
            state = load_file(str(folder / name), device="cpu")
            net.load_state_dict(state, strict=True)
        except Exception as exc:  # noqa: BLE001 - any reader failure means the same here
            raise NnunetError(
                f"{folder / name}: cannot be loaded into the network ({str(exc).splitlines()[0][:200]})"
            ) from None
        weights.append(state)
    labels = tuple(LabelClass(i, name, label_colour(i)) for i, name in config.labels if i)
    return NnunetModel(mid, config, net.eval(), weights, labels, folder)


def read_card(folder: str | Path) -> dict[str, Any]:
    """model.json of a package as data (for listing without loading torch)."""
    return json.loads(json.dumps(read_json(Path(folder) / "model.json")))
