"""Read a MONAI bundle folder as a model package, as data only: nothing in it is evaluated.

MONAI's own ConfigParser evaluates ``$`` expressions and imports ``_target_`` classes; a
bundle is untrusted input, so here the JSON is only read. ``network_def._target_`` is looked
up in ``inference.networks.BUNDLE_TARGETS``; any ``$``/``@``/``%`` value in a field we use is
refused. Known preprocessing transforms and the sliding-window inferer are read as numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.card_data import CardError, package_file, read_json_capped, refuse_expressions
from inference.networks import BUNDLE_TARGETS
from inference.resampling import MONAI_SPACINGD
from radlens_core.files import sha256_file

#: What a bundle's models/model.ts is refused with (TorchScript carries its own code).
TORCHSCRIPT_REFUSED = (
    "holds only TorchScript (models/model.ts), which is refused: a TorchScript file carries its"
    " own code, which runs with your rights (it can read and overwrite files); export the model"
    " to ONNX, or add its state dict as models/model.pt"
)


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json_capped(path, "bundle file")
    if not isinstance(data, dict):
        raise CardError(f"{path}: must be a JSON object")
    return data


def _object(value: Any, where: str, path: Path) -> dict[str, Any]:
    """``value`` when it is a JSON object (absent = {}); CardError naming ``where`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CardError(
            f"{path}: field '{where}' must be an object, got {type(value).__name__}"
            f" {str(value)[:40]!r}"
        )
    return value


def _count(value: Any, where: str, path: Path) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
        raise CardError(
            f"{path}: field '{where}' must be a whole number from 1 to 64, got {value!r}"
        )
    return value


def _io_formats(meta: dict, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inputs.image, outputs.pred) of ``network_data_format``, each checked to be an object."""
    fmt = _object(meta.get("network_data_format"), "network_data_format", path)
    inputs = _object(fmt.get("inputs"), "network_data_format.inputs", path)
    outputs = _object(fmt.get("outputs"), "network_data_format.outputs", path)
    image = _object(inputs.get("image"), "network_data_format.inputs.image", path)
    pred = _object(outputs.get("pred"), "network_data_format.outputs.pred", path)
    return image, pred


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


def _axes(config: dict, path: Path) -> str:
    """The axcodes the bundle's network sees: its Orientationd's, else "RAS" (MONAI feeds a
    NIfTI's own voxel axes, (x, y, z), which is RAS for the usual files)."""
    for i, t in enumerate(_transforms(config)):
        if str(t.get("_target_", "")).rsplit(".", 1)[-1] in ("Orientationd", "Orientation"):
            codes = refuse_expressions(
                t.get("axcodes"), f"preprocessing.transforms[{i}].axcodes", path
            )
            return str(codes or "RAS")
    return "RAS"


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
    models = folder / "models"
    if (models / "model.pt").exists() or (models / "model.pt").is_symlink():
        weights, fmt = "models/model.pt", "torch_state_dict"
        arch, kwargs = _network(config, config_path)
    elif (models / "model.ts").exists() or (models / "model.ts").is_symlink():
        raise CardError(f"{folder}: this MONAI bundle {TORCHSCRIPT_REFUSED}")
    else:
        raise CardError(f"{models}: a MONAI bundle needs models/model.pt (a state dict)")
    weights_path = package_file(folder, weights)  # inside the bundle, a regular file
    fmt_in, fmt_out = _io_formats(meta, meta_path)
    channel_def = _object(
        fmt_out.get("channel_def"), "network_data_format.outputs.pred.channel_def", meta_path
    )
    labels = [
        {"index": int(k), "name": str(v), "color": _palette(int(k))}
        for k, v in sorted(
            channel_def.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else -1
        )
        if str(k).isdigit() and 0 < int(k) <= 255
    ]
    channels = _count(
        fmt_in.get("num_channels"), "network_data_format.inputs.image.num_channels", meta_path
    )
    shape = fmt_in.get("spatial_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) in (2, 3)):
        raise CardError(
            f"{meta_path}: field 'network_data_format.inputs.image.spatial_shape' must be a"
            f" list of 2 or 3 sizes, got {shape!r}"
        )
    steps, spacing = _preprocessing(config, config_path)
    inference, roi = _inferer(config, config_path)
    dims = kwargs.get("spatial_dims", len(shape or [0, 0, 0]))
    if dims not in (2, 3):
        raise CardError(f"{config_path}: field 'network_def.spatial_dims' must be 2 or 3")
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
        "input_channels": channels or kwargs.get("in_channels") or 1,
        "target_spacing": spacing[:dims] if spacing else None,
        "patch_size": roi[:dims] if isinstance(roi, list) else roi,  # the card checks it
        # MONAI's Spacingd places its grid by its own rule; the engine follows it exactly.
        "preprocessing": {"steps": steps, **({"resample": MONAI_SPACINGD} if spacing else {})},
        "labels": labels or [{"index": 1, "name": "foreground", "color": _palette(1)}],
        "inference": inference,
        "network": {"format": fmt, "weights": weights, "output": "softmax", "kwargs": kwargs},
        # A bundle publishes no hashes: record them now so a change before loading is caught.
        "files": {weights: sha256_file(weights_path)},
        "training": {
            "data": str(meta.get("data_source") or ""),
            "integrity": "bundle: no published SHA-256",
        },
        "intended_use": str(meta.get("intended_use") or meta.get("description") or ""),
    }
    if arch:
        data["network"]["architecture"] = arch
    if dims == 3:
        data["network"]["axes"] = _axes(config, config_path)
    # A bundle may carry RadLens card fields (modalities, body_part, labels...) as plain data.
    extra = meta.get("radlens")
    if isinstance(extra, dict):
        data.update(refuse_expressions(extra, "radlens", meta_path))
    return data


def _palette(i: int) -> str:
    colors = ["#4fc3f7", "#ff7043", "#9ccc65", "#ffca28", "#ab47bc", "#26a69a", "#ec407a"]
    return colors[(i - 1) % len(colors)]
