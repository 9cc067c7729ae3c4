"""ModelCard: the validated schema of a model package's model.json (or a MONAI bundle). Over 400
lines for a reason: every card field's rule sits in one validator, read in one place."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference import networks
from inference.bundle import bundle_card_data
from inference.card_data import (
    CardError,
    check_max_input_size,
    check_ood,
    check_plausibility,
    plain_text,
    read_json_capped,
)
from inference.networks import ARCHITECTURES, NNUNET_ARCHITECTURES, plain_kwargs
from inference.nnunet.cardblock import SOURCE_NNUNET, nnunet_block
from inference.onnx_model import ONNX_FORMAT, check_onnx_network
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


@dataclass(frozen=True)
class ModelCard:
    id: str
    name: str
    version: str
    task: str
    spatial_dims: int
    modalities: tuple[str, ...]
    body_part: str
    input_channels: int
    target_spacing: tuple[float, ...] | None  # (x, y, z) or (x, y) mm; None = native
    patch_size: tuple[int, ...] | None  # (x, y, z) or (x, y) voxels; None = whole image
    preprocessing: dict[str, Any]
    labels: tuple[LabelClass, ...]
    thresholds: dict[str, Any]
    inference: dict[str, Any]
    network: dict[str, Any]
    files: dict[str, str]
    classes: tuple[str, ...] = ()
    gradcam_layer: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str = ""
    #: largest image the model is meant for, voxels per axis (x, y[, z]); None = no card limit
    max_input_size: tuple[int, ...] | None = None
    #: expected ranges of results (see inference.card_data); {} = none stated
    plausibility: dict[str, Any] = field(default_factory=dict)
    #: {"score": name, "range": [lo, hi]} measured on the card's validation data; {} = none
    ood: dict[str, Any] = field(default_factory=dict)
    path: Path = field(default_factory=Path)
    #: "radlens" for model.json packages, "monai_bundle" for bundle folders, "nnunet_v2" for
    #: imported nnU-Net v2 models (model.json's "source_format").
    source: str = "radlens"
    #: an imported nnU-Net model's "nnunet" block (checked by inference.nnunet); {} otherwise
    nnunet: dict[str, Any] = field(default_factory=dict)

    @property
    def is_nnunet(self) -> bool:
        return str(self.network.get("architecture", "")).startswith("nnunet.")

    @classmethod
    def load(cls, folder: str | Path) -> ModelCard:
        """Read and validate a package folder (model.json, or a MONAI bundle's configs/)."""
        folder = Path(folder)
        if (folder / "model.json").is_file():
            return cls.from_dict(read_json_capped(folder / "model.json"), folder)
        if (folder / "configs" / "metadata.json").is_file():
            try:
                data = bundle_card_data(folder)
            except CardError:
                raise
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # A field of an unexpected type deep in the bundle: refused, never a traceback.
                raise CardError(f"{folder}: cannot read the MONAI bundle ({exc})") from exc
            return cls.from_dict(data, folder, source="monai_bundle")
        raise CardError(f"{folder}: not a model package (no model.json, no configs/metadata.json)")

    @classmethod
    def from_dict(cls, data: Any, folder: str | Path, source: str = "radlens") -> ModelCard:
        """Validate a card dictionary; every bad field raises CardError naming it."""
        folder = Path(folder)
        v = _Validator(folder / "model.json" if source == "radlens" else folder)
        if not isinstance(data, dict):
            raise v.error("(top level)", "must be a JSON object")
        schema = data.get("schema_version", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise v.error(
                "schema_version", f"unsupported version {schema!r} (this is {SCHEMA_VERSION})"
            )
        task = v.choice(data, "task", TASKS)
        dims = v.choice(data, "spatial_dims", (2, 3))
        network = v.network(data, dims)
        if network["format"] == ONNX_FORMAT:  # the graph is its network: checked when loaded
            network = check_onnx_network(network, data, dims, folder, v.error)
        labels = v.labels(data)
        classes = tuple(v.strings(data, "classes", required=task == "classification"))
        files = v.files(data, folder)
        weights = network.get("weights")
        if weights and weights not in files:
            raise v.error("files", f"has no SHA-256 for the weights file {weights!r}")
        if task in ("segmentation", "interactive") and not labels:
            raise v.error("labels", f"a {task} model needs at least one label")
        if task == "classification" and network.get("output") not in (
            "softmax",
            "sigmoid",
            "logits",
        ):
            raise v.error(
                "network.output", "a classifier's output must be softmax, sigmoid or logits"
            )
        if task == "detection" and network.get("output") != "centernet":
            raise v.error("network.output", "a detector's output must be 'centernet'")
        gradcam = data.get("gradcam_layer")
        if gradcam is not None and not isinstance(gradcam, str):
            raise v.error("gradcam_layer", "must be a module name (string) or null")
        source, nnunet = nnunet_block(data, source, network, files, v.error, str(v.where))
        intended = data.get("intended_use") or ""
        if not isinstance(intended, str):
            raise v.error("intended_use", "must be a string")
        return cls(
            id=v.ident(data),
            name=v.string(data, "name"),
            version=v.string(data, "version"),
            task=task,
            spatial_dims=dims,
            modalities=tuple(m.upper() for m in v.strings(data, "modalities", required=True)),
            body_part=v.body_part(data),
            input_channels=v.positive_int(data, "input_channels", default=1),
            target_spacing=v.vector(data, "target_spacing", dims, float),
            patch_size=v.patch_size(data, dims),
            preprocessing=v.preprocessing(data, dims),
            labels=labels,
            thresholds=v.thresholds(data, labels, dims),
            inference=v.inference(data),
            network=network,
            files=files,
            classes=classes,
            gradcam_layer=gradcam,
            training=v.mapping(data, "training"),
            metrics=v.mapping(data, "metrics"),
            intended_use=plain_text(intended, "intended_use", v.where, multiline=True),
            max_input_size=check_max_input_size(data, dims, v.error),
            plausibility=check_plausibility(data, task, {e.name for e in labels}, v.error),
            ood=check_ood(data, task, v.error),
            path=folder,
            source=source,
            nnunet=nnunet,
        )

    def to_json(self) -> dict[str, Any]:
        """The card as plain JSON data (what model.json holds), without the folder path."""
        d = asdict(self)
        d.pop("path")
        source = d.pop("source")
        if not self.nnunet:
            d.pop("nnunet")
        if source == SOURCE_NNUNET:
            d["source_format"] = source
        d["schema_version"] = SCHEMA_VERSION
        for key in ("modalities", "classes", "target_spacing", "patch_size", "max_input_size"):
            d[key] = list(d[key]) if d[key] is not None else None
        d["labels"] = [asdict(e) for e in self.labels]
        return d

    def label_name(self, index: int) -> str:
        for e in self.labels:
            if e.index == index:
                return e.name
        return str(index)


class _Validator:
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
