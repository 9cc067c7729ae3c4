"""ModelCard: the validated schema of a model package's model.json (or a MONAI bundle); each
field's rule is in inference.card_fields."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference.bundle import bundle_card_data
from inference.card_data import (
    CardError,
    check_max_input_size,
    check_ood,
    check_plausibility,
    plain_text,
    read_json_capped,
)
from inference.card_fields import (  # noqa: F401  (re-exported: callers import them from here)
    BLEND_MODES,
    FORMATS,
    OUTPUTS,
    PREPROCESS_OPS,
    REFUSED_FORMATS,
    SCHEMA_VERSION,
    TASKS,
    CardValidator,
)
from inference.nnunet.cardblock import SOURCE_NNUNET, nnunet_block
from inference.onnx_model import ONNX_FORMAT, check_onnx_network
from radlens_core.results import LabelClass


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
        v = CardValidator(folder / "model.json" if source == "radlens" else folder)
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
            preprocessing=v.bundle_conversion(data, network, v.preprocessing(data, dims), dims),
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
