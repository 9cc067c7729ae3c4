"""Read a MONAI bundle folder as a model package, as data only: nothing in it is evaluated.

MONAI's own ConfigParser evaluates ``$`` expressions and imports ``_target_`` classes; a
bundle is untrusted input, so here the JSON is only read. ``network_def._target_`` is looked
up in ``inference.networks.BUNDLE_TARGETS``; any ``$``/``@``/``%`` value in a field we use is
refused. Known preprocessing transforms and the sliding-window inferer are read as numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inference.card_data import CardError, refuse_expressions
from inference.networks import BUNDLE_TARGETS
from radlens_core.files import sha256_file


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(data, dict):
        raise CardError(f"{path}: must be a JSON object")
    return data


def _network(config: dict, path: Path) -> tuple[str, dict[str, Any]]:
    net = config.get("network_def")
    if not isinstance(net, dict):
        raise CardError(f"{path}: field 'network_def' is missing or not an object")
    net = refuse_expressions(net, "network_def", path)
    target = net.pop("_target_", None)
    if target not in BUNDLE_TARGETS:
        raise CardError(
            f"{path}: field 'network_def._target_' {target!r} is not an allow-listed network"
            f" ({', '.join(sorted(BUNDLE_TARGETS))})"
        )
    for k in list(net):
        if k.startswith("_"):  # _requires_, _disabled_, _mode_: config-parser directives
            raise CardError(f"{path}: field 'network_def.{k}' is a config directive; refused")
    return BUNDLE_TARGETS[target], net


def _transforms(config: dict) -> list[dict]:
    pre = config.get("preprocessing")
    if isinstance(pre, dict) and isinstance(pre.get("transforms"), list):
        return [t for t in pre["transforms"] if isinstance(t, dict)]
    return []


def _preprocessing(config: dict, path: Path) -> tuple[list[dict], list[float] | None]:
    steps: list[dict] = []
    spacing = None
    for i, t in enumerate(_transforms(config)):
        target = str(t.get("_target_", "")).rsplit(".", 1)[-1]
        where = f"preprocessing.transforms[{i}]"
        if target in ("ScaleIntensityRanged", "ScaleIntensityRange"):
            args = {
                k: refuse_expressions(t.get(k), f"{where}.{k}", path)
                for k in ("a_min", "a_max", "b_min", "b_max")
            }
            steps.append(
                {"op": "clip_scale", **{k: float(v) for k, v in args.items() if v is not None}}
            )
        elif target in ("NormalizeIntensityd", "NormalizeIntensity"):
            steps.append({"op": "zscore"})
        elif target in ("Spacingd", "Spacing"):
            pix = refuse_expressions(t.get("pixdim"), f"{where}.pixdim", path)
            if isinstance(pix, list) and all(isinstance(p, (int, float)) for p in pix):
                spacing = [float(p) for p in pix]
    return steps, spacing


def _inferer(config: dict, path: Path) -> tuple[dict, list[int] | None]:
    inf = config.get("inferer")
    if not isinstance(inf, dict):
        return {}, None
    out: dict[str, Any] = {}
    roi = None
    for key in ("sw_batch_size", "overlap", "mode"):
        if key in inf:
            out[key] = refuse_expressions(inf[key], f"inferer.{key}", path)
    if "roi_size" in inf:
        roi = refuse_expressions(inf["roi_size"], "inferer.roi_size", path)
    return out, roi


def bundle_card_data(folder: str | Path) -> dict[str, Any]:
    """The model.json content a bundle folder amounts to, from ``configs/metadata.json`` +
    ``configs/inference.json`` + its weights; ``ModelCard.load`` validates it."""
    folder = Path(folder)
    meta_path = folder / "configs" / "metadata.json"
    config_path = folder / "configs" / "inference.json"
    meta = _read_json(meta_path)
    if not config_path.is_file():
        raise CardError(f"{config_path}: a MONAI bundle needs configs/inference.json")
    config = _read_json(config_path)
    arch: str | None = None
    kwargs: dict[str, Any] = {}
    if (folder / "models" / "model.ts").is_file():
        weights, fmt = "models/model.ts", "torchscript"
    elif (folder / "models" / "model.pt").is_file():
        weights, fmt = "models/model.pt", "torch_state_dict"
        arch, kwargs = _network(config, config_path)
    else:
        raise CardError(
            f"{folder / 'models'}: a MONAI bundle needs models/model.pt or models/model.ts"
        )
    fmt_in = (meta.get("network_data_format") or {}).get("inputs", {}).get("image", {})
    fmt_out = (meta.get("network_data_format") or {}).get("outputs", {}).get("pred", {})
    channel_def = fmt_out.get("channel_def") or {}
    labels = [
        {"index": int(k), "name": str(v), "color": _palette(int(k))}
        for k, v in sorted(channel_def.items(), key=lambda kv: int(kv[0]))
        if str(k).isdigit() and int(k) > 0
    ]
    steps, spacing = _preprocessing(config, config_path)
    inference, roi = _inferer(config, config_path)
    dims = int(kwargs.get("spatial_dims", len(fmt_in.get("spatial_shape") or [0, 0, 0]) or 3))
    modality = fmt_in.get("modality") or ("CT" if fmt_in.get("format") == "hounsfield" else "ANY")
    name = str(meta.get("name") or folder.name)
    data: dict[str, Any] = {
        "id": "".join(c if c.isalnum() or c in "._-" else "-" for c in folder.name.lower())
        or "bundle",
        "name": name,
        "version": str(meta.get("version") or "0"),
        "task": "segmentation",
        "spatial_dims": dims,
        "modalities": [str(modality).upper()],
        "body_part": "ANY",
        "input_channels": int(fmt_in.get("num_channels") or kwargs.get("in_channels") or 1),
        "target_spacing": spacing[:dims] if spacing else None,
        "patch_size": [int(r) for r in roi][:dims] if isinstance(roi, list) else None,
        "preprocessing": {"steps": steps},
        "labels": labels or [{"index": 1, "name": "foreground", "color": _palette(1)}],
        "inference": inference,
        "network": {"format": fmt, "weights": weights, "output": "softmax", "kwargs": kwargs},
        # A bundle publishes no hashes: record them now so a change before loading is caught.
        "files": {weights: sha256_file(folder / weights)},
        "training": {
            "data": str(meta.get("data_source") or ""),
            "integrity": "bundle: no published SHA-256",
        },
        "intended_use": str(meta.get("intended_use") or meta.get("description") or ""),
    }
    if arch:
        data["network"]["architecture"] = arch
    # A bundle may carry RadLens card fields (modalities, body_part, labels...) as plain data.
    extra = meta.get("radlens")
    if isinstance(extra, dict):
        data.update(refuse_expressions(extra, "radlens", meta_path))
    return data


def _palette(i: int) -> str:
    colors = ["#4fc3f7", "#ff7043", "#9ccc65", "#ffca28", "#ab47bc", "#26a69a", "#ec407a"]
    return colors[(i - 1) % len(colors)]
