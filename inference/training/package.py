"""Writing a model package (model.json + safetensors) and reading a parent one to fine-tune.

Everything is written atomically (``radlens_core.files``: temporary file, fsync, rename) so an interrupted
training run always leaves a readable package; weights are safetensors, never pickle.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any

from radlens_core import paths
from radlens_core.files import atomic_write_bytes, atomic_write_text, sha256_file

__all__ = [
    "PackageError",
    "atomic_write_text",
    "load_tensors",
    "optimizer_tensors",
    "restore_optimizer",
    "save_tensors",
    "sha256_file",
]

WEIGHTS = "model.safetensors"


class PackageError(ValueError):
    """A model package that cannot be read or written; the message names the folder."""


def save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    """Save a flat name -> tensor dict as safetensors, atomically (fsync, then rename)."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(path, data)


def load_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (OSError, ValueError, RuntimeError) as exc:  # safetensors raises several kinds
        raise PackageError(f"{path}: cannot read safetensors ({exc})") from exc


def optimizer_tensors(opt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Adam's state as flat tensors (safetensors) + its hyper-parameters (JSON)."""
    import torch

    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{pid}.{k}"] = t
    return tensors, {"param_groups": sd["param_groups"]}


def restore_optimizer(opt: Any, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def slug(text: str) -> str:
    """A card id from free text: lower case, [a-z0-9._-] only."""
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return s or "model"


def resolve_model(ref: str | Path) -> Path:
    """A package folder from a path or a model id (user models first, then shipped ones)."""
    p = Path(ref)
    if (p / "model.json").is_file():
        return p
    for root in (paths.user_models_dir(), paths.shipped_models_dir()):
        candidate = root / str(ref)
        if (candidate / "model.json").is_file():
            return candidate
        for folder in sorted(root.glob("*/model.json")) if root.is_dir() else []:
            try:
                if json.loads(folder.read_text(encoding="utf-8")).get("id") == str(ref):
                    return folder.parent
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # a broken neighbour package must not hide the one asked for
    raise PackageError(f"{ref}: no model package with this folder or id (user or shipped models)")


def read_card(folder: Path) -> dict[str, Any]:
    """The validated card of a package, as plain JSON data (validation by inference.card)."""
    from inference.card import ModelCard

    return ModelCard.load(folder).to_json()


def load_parent(ref: str | Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(card, state dict, folder) of the package to fine-tune; hashes are verified first."""
    from inference.axes import MODEL_AXES
    from inference.card import ModelCard
    from inference.weights import load_network

    folder = resolve_model(ref)
    card = ModelCard.load(folder)
    if card.network.get("format") in ("torchscript", "onnx"):
        raise PackageError(
            f"{folder}: a {card.network['format']} package cannot be fine-tuned (its graph has"
            " no trainable network); fine-tune the safetensors model it was exported from"
        )
    axes = card.network.get("axes")
    resample = card.preprocessing.get("resample", "radlens")
    if (axes not in (None, MODEL_AXES)) or resample != "radlens":
        raise PackageError(
            f"{folder}: this model was converted from a MONAI bundle (its network sees"
            f" {axes or 'its own'} axes and resamples as MONAI's Spacingd); the trainer works in"
            " RadLens's own frame, so fine-tuning it here would train on transposed or mirrored"
            " images. Fine-tune the bundle with MONAI's own workflow and import it again"
        )
    net = load_network(card)
    data = card.to_json()
    # to_json() spells absent optional fields as [] / None; the validator wants them left out.
    for key in ("classes", "gradcam_layer"):
        if not data.get(key):
            data.pop(key, None)
    return data, dict(net.state_dict()), folder


def write_package(folder: Path, card: dict[str, Any], state_dict: dict[str, Any]) -> Path:
    """Write weights + model.json into ``folder`` (the card's files list is filled in here)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / WEIGHTS, state_dict)
    card = dict(card)
    card["network"] = {**card["network"], "format": "safetensors", "weights": WEIGHTS}
    card["files"] = {WEIGHTS: sha256_file(folder / WEIGHTS)}
    card.setdefault("training", {})["date"] = _dt.date.today().isoformat()
    validate_card(card, folder)
    atomic_write_text(folder / "model.json", json.dumps(card, indent=2, sort_keys=False) + "\n")
    return folder


def validate_card(card: dict[str, Any], folder: Path) -> None:
    """Check a card with the engine's own validator so the registry will accept it."""
    from inference.card import ModelCard

    ModelCard.from_dict(card, folder)


def write_readme(folder: Path, card: dict[str, Any], history: list[dict[str, float]]) -> Path:
    """A short human-readable README.md: what the model is, its data and its training curve."""
    t = card.get("training", {})
    lines = [
        f"# {card['name']} ({card['id']} {card['version']})",
        "",
        card.get("intended_use", ""),
        "",
        f"- task: {card['task']}, {card['spatial_dims']}D, modalities {', '.join(card['modalities'])}",
        f"- network: {card['network']['architecture']} {json.dumps(card['network']['kwargs'])}",
        f"- fine-tuned from: {t.get('parent') or 'nothing (trained from scratch)'}",
        f"- data: {t.get('data', 'not recorded')}",
        f"- reproduce: `{t.get('script', '')}`",
        "",
    ]
    if history:
        keys = list(history[0])
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for row in history:
            cells = [
                f"{row[k]:.4f}" if isinstance(row.get(k), float) else str(row.get(k, ""))
                for k in keys
            ]
            lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(folder / "README.md", "\n".join(lines) + "\n")
    return folder / "README.md"
