"""The rules for each field of a model card (model.json): one validator whose checks raise
CardError naming the package path and the field, before anything is allocated."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from inference import networks
from inference.card_data import CardError, plain_text
from inference.networks import ARCHITECTURES, NNUNET_ARCHITECTURES, plain_kwargs
from inference.onnx_model import ONNX_FORMAT
from inference.resampling import CONVENTIONS, MONAI_SPACINGD, RADLENS
from radlens_core.results import LabelClass

SCHEMA_VERSION = 1
TASKS = ("segmentation", "detection", "classification", "interactive")
OUTPUTS = ("softmax", "sigmoid", "centernet", "logits")
FORMATS = ("safetensors", "torch_state_dict", ONNX_FORMAT)
#: Formats recognised only to be refused, with the reason a user reads.
REFUSED_FORMATS = {
    "torchscript": (
        "TorchScript is refused: a TorchScript file carries its own code, which runs with your"
        " rights (it can read and overwrite files); export the model to ONNX, or give its"
        " weights as a safetensors state dict with an allow-listed architecture"
    ),
}
PREPROCESS_OPS = ("clip_scale", "zscore", "minmax", "resize")
BLEND_MODES = ("gaussian", "constant")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


#: Why a package converted from a MONAI bundle by an older RadLens (no ``network.axes``) is
#: refused rather than given a guessed axis order.
OLD_BUNDLE_AXES = (
    "is missing: this package was converted from a MONAI bundle by an older RadLens, which did"
    " not record the axes its network sees, so it would run on transposed or mirrored images"
    " (the bundle's own axes cannot be known without it); import the bundle folder again with"
    " `radlens models import BUNDLE` or File > Import model..."
)


def converted_from_bundle(data: dict) -> bool:
    """Was this card written from a MONAI bundle (by ``bundle_to_package``, or read from one)?"""
    training = data.get("training")
    if not isinstance(training, dict):
        return False
    integrity = training.get("integrity")
    return training.get("converted_from") == "MONAI bundle" or (
        isinstance(integrity, str) and integrity.startswith("bundle:")
    )


class CardValidator:
    """Field checks that raise CardError with the package path and the field name."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def error(self, fld: str, problem: str) -> CardError:
        return CardError(f"{self.where}: field '{fld}' {problem}")

    def string(self, data: dict, key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "is missing or not a non-empty string")
        if len(value) > 500:
            raise self.error(key, f"is {len(value)} characters long; the limit is 500")
        return plain_text(value, key, self.where)

    def body_part(self, data: dict) -> str:
        value = data.get("body_part") or "ANY"
        if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9_ ]{1,64}$", value):
            raise self.error("body_part", f"must be a DICOM body part word, got {value!r}")
        return value.upper()

    def patch_size(self, data: dict, dims: int) -> tuple | None:
        patch = self.vector(data, "patch_size", dims, int)
        if patch is not None:
            n = 1
            for p in patch:
                n *= p
            if n > networks.MAX_PATCH_VOXELS:
                raise self.error(
                    "patch_size",
                    f"{list(patch)} asks for {n:,} voxels per window; the limit is"
                    f" {networks.MAX_PATCH_VOXELS:,}",
                )
        return patch

    def ident(self, data: dict) -> str:
        value = self.string(data, "id")
        if not _ID.match(value):
            raise self.error("id", f"{value!r} must use only a-z, 0-9, '.', '_' and '-'")
        return value

    def choice(self, data: dict, key: str, allowed: tuple) -> Any:
        value = data.get(key)
        if value not in allowed or isinstance(value, bool):
            raise self.error(key, f"is {value!r}; expected one of {', '.join(map(str, allowed))}")
        return value

    def positive_int(self, data: dict, key: str, default: int) -> int:
        value = data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(key, f"must be a positive integer, got {value!r}")
        return value

    def strings(self, data: dict, key: str, required: bool) -> list[str]:
        value = data.get(key)
        if not required and (value is None or value == []):
            return []
        if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
            raise self.error(key, "must be a non-empty list of strings")
        return [plain_text(s, f"{key}[{i}]", self.where) for i, s in enumerate(value)]

    def vector(self, data: dict, key: str, dims: int, kind: type) -> tuple | None:
        value = data.get(key)
        if value is None:
            return None
        ok = isinstance(value, list) and len(value) == dims
        ok = ok and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in value
        )
        if ok and kind is int:
            ok = all(float(x).is_integer() for x in value)
        if not ok:
            raise self.error(
                key,
                f"must be null or {dims} positive numbers in (x, y{', z' if dims == 3 else ''}) order, got {value!r}",
            )
        return tuple(kind(x) for x in value)

    def mapping(self, data: dict, key: str) -> dict:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise self.error(key, "must be a JSON object")
        return value

    def labels(self, data: dict) -> tuple[LabelClass, ...]:
        raw = data.get("labels") or []
        if not isinstance(raw, list):
            raise self.error("labels", "must be a list of {index, name, color}")
        out, seen = [], set()
        for i, e in enumerate(raw):
            fld = f"labels[{i}]"
            if not isinstance(e, dict):
                raise self.error(fld, "must be an object with index, name and color")
            idx, name, color = e.get("index"), e.get("name"), e.get("color", "#ff0000")
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx <= 255:
                raise self.error(f"{fld}.index", f"must be an integer 0-255, got {idx!r}")
            if idx in seen:
                raise self.error(f"{fld}.index", f"{idx} is listed twice")
            if not isinstance(name, str) or not name:
                raise self.error(f"{fld}.name", "must be a non-empty string")
            plain_text(name, f"{fld}.name", self.where)
            if not isinstance(color, str) or not _COLOR.match(color):
                raise self.error(f"{fld}.color", f"must be '#rrggbb', got {color!r}")
            seen.add(idx)
            out.append(LabelClass(idx, name, color))
        return tuple(out)

    def thresholds(self, data: dict, labels: tuple[LabelClass, ...], dims: int) -> dict:
        from inference.components import RuleError, parse_rules  # scipy: only when validating

        t = self.mapping(data, "thresholds")
        try:
            parse_rules(t.get("components"), {e.name: e.index for e in labels}, dims)
        except RuleError as exc:
            raise self.error(exc.field, exc.message) from exc
        for key in ("score", "nms_iou"):
            if key in t and not (isinstance(t[key], (int, float)) and 0 <= t[key] <= 1):
                raise self.error(f"thresholds.{key}", f"must be a number in [0, 1], got {t[key]!r}")
        if "min_component_voxels" in t and not (
            isinstance(t["min_component_voxels"], int) and t["min_component_voxels"] >= 0
        ):
            raise self.error("thresholds.min_component_voxels", "must be a non-negative integer")
        lc = t.get("largest_component", [])
        if not isinstance(lc, list) or not all(isinstance(x, int) for x in lc):
            raise self.error("thresholds.largest_component", "must be a list of label indices")
        return t

    def inference(self, data: dict) -> dict:
        inf = self.mapping(data, "inference")
        bs = inf.get("sw_batch_size", 1)
        if not isinstance(bs, int) or isinstance(bs, bool) or not 1 <= bs <= networks.MAX_SW_BATCH:
            raise self.error(
                "inference.sw_batch_size",
                f"must be an integer from 1 to {networks.MAX_SW_BATCH}, got {bs!r}",
            )
        ov = inf.get("overlap", 0.25)
        if not isinstance(ov, (int, float)) or not 0 <= ov < 1:
            raise self.error("inference.overlap", f"must be a number in [0, 1), got {ov!r}")
        if inf.get("mode", "gaussian") not in BLEND_MODES:
            raise self.error("inference.mode", f"must be one of {', '.join(BLEND_MODES)}")
        return inf

    def preprocessing(self, data: dict, dims: int) -> dict:
        pre = self.mapping(data, "preprocessing")
        steps = pre.get("steps", [])
        if not isinstance(steps, list):
            raise self.error("preprocessing.steps", "must be a list")
        convention = pre.get("resample", RADLENS)
        if convention not in CONVENTIONS:
            raise self.error(
                "preprocessing.resample",
                f"is {convention!r}; expected one of {', '.join(CONVENTIONS)} (how the model"
                " grid is placed on the image when resampling to the target spacing)",
            )
        for i, s in enumerate(steps):
            fld = f"preprocessing.steps[{i}]"
            if not isinstance(s, dict) or s.get("op") not in PREPROCESS_OPS:
                op = s.get("op") if isinstance(s, dict) else s
                raise self.error(fld, f"op {op!r} is not one of {', '.join(PREPROCESS_OPS)}")
            if s["op"] == "clip_scale":
                for k in ("a_min", "a_max"):
                    if not isinstance(s.get(k), (int, float)):
                        raise self.error(f"{fld}.{k}", "must be a number")
                if s["a_max"] <= s["a_min"]:
                    raise self.error(f"{fld}.a_max", "must be greater than a_min")
            if s["op"] == "resize":
                size = s.get("size")
                if not (
                    isinstance(size, list)
                    and len(size) == dims
                    and all(isinstance(x, int) and x > 0 for x in size)
                ):
                    raise self.error(f"{fld}.size", f"must be {dims} positive integers")
        return pre

    def bundle_conversion(self, data: dict, network: dict, pre: dict, dims: int) -> dict:
        """The preprocessing of a card converted from a MONAI bundle, checked for what older
        conversions lack. Without ``network.axes`` (3D) it is refused: guessing "RAS" would
        mirror or transpose the images of a bundle that saw other axes, silently. Without
        ``preprocessing.resample`` its target spacing can only have come from the bundle's
        Spacingd, so MONAI's convention is the bundle's own and is filled in."""
        if not converted_from_bundle(data):
            return pre
        if dims == 3 and "axes" not in network:
            raise self.error("network.axes", OLD_BUNDLE_AXES)
        if "resample" not in pre and data.get("target_spacing") is not None:
            return {**pre, "resample": MONAI_SPACINGD}
        return pre

    def network(self, data: dict, dims: int) -> dict:
        net = data.get("network")
        if not isinstance(net, dict):
            raise self.error("network", "is missing or not an object")
        fmt = net.get("format")
        if isinstance(fmt, str) and fmt in REFUSED_FORMATS:
            raise self.error("network.format", f"is {fmt!r}: {REFUSED_FORMATS[fmt]}")
        if fmt not in FORMATS:
            raise self.error("network.format", f"is {fmt!r}; expected one of {', '.join(FORMATS)}")
        if fmt != ONNX_FORMAT:  # an ONNX graph is its own network (inference.onnx_model)
            self.architecture(net)
        weights = net.get("weights")
        if (
            not isinstance(weights, str)
            or not weights
            or Path(weights).is_absolute()
            or ".." in Path(weights).parts
        ):
            raise self.error(
                "network.weights", f"must be a file name inside the package, got {weights!r}"
            )
        if "axes" in net:  # the axes the network sees (a converted MONAI bundle: "RAS")
            try:
                net = {**net, "axes": networks.check_axes(net["axes"])}
            except ValueError as exc:
                raise self.error("network.axes", str(exc)) from exc
            if dims != 3:
                raise self.error("network.axes", "applies to 3D networks only")
        if net.get("output", "softmax") not in OUTPUTS:
            raise self.error("network.output", f"must be one of {', '.join(OUTPUTS)}")
        return {"output": "softmax", **net}

    def architecture(self, net: dict) -> None:
        allowed = {**ARCHITECTURES, **NNUNET_ARCHITECTURES}
        if net.get("architecture") not in allowed:
            raise self.error(
                "network.architecture",
                f"{net.get('architecture')!r} is not allow-listed ({', '.join(sorted(allowed))})",
            )
        kwargs = net.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise self.error("network.kwargs", "must be an object")
        try:
            plain_kwargs(kwargs, "network.kwargs")
            networks.check_card_network(net["architecture"], kwargs)
        except ValueError as exc:
            raise self.error("network.kwargs", str(exc)) from exc

    def files(self, data: dict, folder: Path) -> dict[str, str]:
        files = data.get("files")
        if not isinstance(files, dict) or not files:
            raise self.error("files", "must map every weights file to its SHA-256")
        for name, sha in files.items():
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise self.error(f"files.{name}", "must be a path inside the package")
            if not isinstance(sha, str) or not _SHA.match(sha.lower()):
                raise self.error(f"files.{name}", "must be a 64-digit hex SHA-256")
        return {k: v.lower() for k, v in files.items()}
