"""The checked nnU-Net configuration RadLens runs: :class:`NnunetConfig`, its ``"nnunet"``
block in a package's model.json (``to_block`` / ``from_block``, validated again at load),
and the field checks shared with the plans.json reader (``inference.nnunet.plans``).
Field errors name the file and the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference.nnunet.jsondata import Fields
from inference.nnunet.network import NetworkSpec, check_network

#: nnU-Net's normalisation classes (plans ``normalization_schemes``) RadLens reproduces.
NORMALIZATIONS = (
    "CTNormalization",
    "ZScoreNormalization",
    "NoNormalization",
    "RescaleTo01Normalization",
    "RGBTo01Normalization",
)
#: readers whose array is the file's array as stored (SimpleITK's zyx): what RadLens passes.
READERS = ("SimpleITKIO", "NibabelIO", "NaturalImage2DIO", "Tiff3DIO")
RESAMPLING_FN = "resample_data_or_seg_to_shape"
MAX_PATCH = 1024
MAX_CLASSES = 255  # the label map is uint8
ANISO_THRESHOLD = 3.0


@dataclass(frozen=True)
class Normalization:
    scheme: str
    use_mask: bool
    # CTNormalization only (from foreground_intensity_properties_per_channel):
    mean: float = 0.0
    std: float = 1.0
    lower: float = 0.0
    upper: float = 0.0


@dataclass(frozen=True)
class Resampling:
    order: int
    order_z: int
    force_separate_z: bool | None


@dataclass(frozen=True)
class NnunetConfig:
    configuration: str
    trainer: str
    plans_name: str
    dataset_name: str
    reader: str
    transpose_forward: tuple[int, int, int]
    transpose_backward: tuple[int, int, int]
    spacing: tuple[float, ...]  # in the transposed axis order, 2 entries for 2d
    patch_size: tuple[int, ...]  # in the transposed axis order
    normalization: tuple[Normalization, ...]  # one per input channel
    resampling_data: Resampling
    resampling_probabilities: Resampling
    network: NetworkSpec
    labels: tuple[tuple[int, str], ...]  # (index, name) including background 0
    channel_names: tuple[str, ...]
    mirror_axes: tuple[int, ...] | None  # from the checkpoint; None = no mirroring allowed

    @property
    def num_classes(self) -> int:
        return self.network.num_classes

    @property
    def is_2d(self) -> bool:
        return len(self.patch_size) == 2

    def to_block(self) -> dict[str, Any]:
        return {
            "configuration": self.configuration,
            "trainer": self.trainer,
            "plans_name": self.plans_name,
            "dataset_name": self.dataset_name,
            "image_reader_writer": self.reader,
            "transpose_forward": list(self.transpose_forward),
            "transpose_backward": list(self.transpose_backward),
            "spacing": list(self.spacing),
            "patch_size": list(self.patch_size),
            "normalization": [
                {
                    "scheme": n.scheme,
                    "use_mask_for_norm": n.use_mask,
                    **(
                        {
                            "mean": n.mean,
                            "std": n.std,
                            "percentile_00_5": n.lower,
                            "percentile_99_5": n.upper,
                        }
                        if n.scheme == "CTNormalization"
                        else {}
                    ),
                }
                for n in self.normalization
            ],
            "resampling_data": _resampling_block(self.resampling_data),
            "resampling_probabilities": _resampling_block(self.resampling_probabilities),
            "architecture": {
                "network_class_name": self.network.architecture,
                "arch_kwargs": self.network.kwargs,
            },
            "labels": {name: index for index, name in self.labels},
            "channel_names": {str(i): n for i, n in enumerate(self.channel_names)},
            "inference_allowed_mirroring_axes": (
                list(self.mirror_axes) if self.mirror_axes is not None else None
            ),
        }

    def _checked(self, f: Fields, prefix: str) -> NnunetConfig:
        fwd, bwd = self.transpose_forward, self.transpose_backward
        if tuple(fwd[b] for b in bwd) != (0, 1, 2):
            raise f.error(f"{prefix}transpose_backward", "is not the inverse of transpose_forward")
        return self

    @classmethod
    def from_block(cls, block: Any, where: str) -> NnunetConfig:
        """Validate the ``nnunet`` block of a package's model.json (``where`` names the file)."""
        f = Fields(where)
        block = f.obj(block, "nnunet")
        g = lambda key: f.get(block, "nnunet", key)  # noqa: E731
        channels = _channel_names(f, g("channel_names"), "nnunet.channel_names")
        labels = _labels(f, g("labels"), "nnunet.labels")
        patch = _patch(f, g("patch_size"), "nnunet.patch_size")
        dims = len(patch)
        norms = []
        raw_norms = g("normalization")
        if not isinstance(raw_norms, list) or len(raw_norms) != len(channels):
            raise f.error(
                "nnunet.normalization", f"must list one entry per channel ({len(channels)})"
            )
        for i, n in enumerate(raw_norms):
            fld = f"nnunet.normalization[{i}]"
            n = f.obj(n, fld)
            props = n if n.get("scheme") == "CTNormalization" else None
            norms.append(
                _normalization(f, fld, n.get("scheme"), n.get("use_mask_for_norm"), props, fld)
            )
        arch = f.obj(g("architecture"), "nnunet.architecture")
        net = check_network(
            f,
            "nnunet.architecture",
            arch.get("network_class_name"),
            arch.get("arch_kwargs"),
            len(channels),
            len(labels),
        )
        _check_network_dims(f, "nnunet.architecture", net, dims)
        return cls(
            configuration=f.string(g("configuration"), "nnunet.configuration"),
            trainer=f.string(g("trainer"), "nnunet.trainer"),
            plans_name=f.string(g("plans_name"), "nnunet.plans_name"),
            dataset_name=f.string(g("dataset_name"), "nnunet.dataset_name"),
            reader=_reader(f, g("image_reader_writer"), "nnunet.image_reader_writer"),
            transpose_forward=_perm(f, g("transpose_forward"), "nnunet.transpose_forward"),
            transpose_backward=_perm(f, g("transpose_backward"), "nnunet.transpose_backward"),
            spacing=tuple(f.num_list(g("spacing"), "nnunet.spacing", dims, 0.0, 1e5)),
            patch_size=patch,
            normalization=tuple(norms),
            resampling_data=_resampling(f, g("resampling_data"), "nnunet.resampling_data"),
            resampling_probabilities=_resampling(
                f, g("resampling_probabilities"), "nnunet.resampling_probabilities"
            ),
            network=net,
            labels=labels,
            channel_names=channels,
            mirror_axes=_mirror_axes(
                f,
                g("inference_allowed_mirroring_axes"),
                dims,
                "nnunet.inference_allowed_mirroring_axes",
            ),
        )._checked(f, "nnunet.")


def _check_network_dims(f: Fields, field: str, net: NetworkSpec, dims: int) -> None:
    if net.dims != dims:
        raise f.error(
            f"{field}.arch_kwargs.conv_op", f"is {net.dims}D but the patch size is {dims}D"
        )


def _channel_names(f: Fields, value: Any, field: str) -> tuple[str, ...]:
    value = f.obj(value, field)
    if not 1 <= len(value) <= 16:
        raise f.error(field, "must name 1 to 16 input channels")
    names = []
    for i in range(len(value)):
        if str(i) not in value:
            raise f.error(field, f"must have keys '0'..'{len(value) - 1}'; '{i}' is missing")
        names.append(f.string(value[str(i)], f"{field}.{i}", 100))
    return tuple(names)


def _labels(f: Fields, value: Any, field: str) -> tuple[tuple[int, str], ...]:
    value = f.obj(value, field)
    out: dict[int, str] = {}
    for name, idx in value.items():
        if not isinstance(name, str) or not name or len(name) > 100:
            raise f.error(field, "label names must be non-empty strings of at most 100 characters")
        if isinstance(idx, list):
            raise f.error(
                f"{field}.{name}",
                "is a region (a list of labels): region-based models are not supported",
            )
        if name == "ignore":
            f.integer(idx, f"{field}.{name}", 1, 1000)
            continue  # nnU-Net's ignore label is never predicted
        idx = f.integer(idx, f"{field}.{name}", 0, 1000)
        if idx in out:
            raise f.error(f"{field}.{name}", f"repeats label value {idx} (also {out[idx]!r})")
        out[idx] = name
    if 0 not in out:
        raise f.error(field, "must give the background the value 0")
    if sorted(out) != list(range(len(out))):
        raise f.error(field, f"values must be consecutive from 0; got {sorted(out)[:20]}")
    if len(out) > MAX_CLASSES + 1:
        raise f.error(
            field, f"has {len(out) - 1} labels; RadLens label maps hold at most {MAX_CLASSES}"
        )
    return tuple(sorted(out.items()))


def _reader(f: Fields, value: Any, field: str) -> str:
    if value not in READERS:
        raise f.error(
            field,
            f"{str(value)[:80]!r} is not supported: RadLens feeds the image array as stored "
            f"({', '.join(READERS)})",
        )
    return value


def _perm(f: Fields, value: Any, field: str) -> tuple[int, int, int]:
    v = f.int_list(value, field, 3, 0, 2)
    if sorted(v) != [0, 1, 2]:
        raise f.error(field, f"must be a permutation of [0, 1, 2], got {v}")
    return (v[0], v[1], v[2])


def _patch(f: Fields, value: Any, field: str) -> tuple[int, ...]:
    return tuple(f.int_list(value, field, (2, 3), 1, MAX_PATCH))


def _normalization(
    f: Fields, field: str, scheme: Any, use_mask: Any, props: Any, props_field: str
) -> Normalization:
    if scheme not in NORMALIZATIONS:
        raise f.error(field, f"{str(scheme)[:80]!r} is not one of {', '.join(NORMALIZATIONS)}")
    mask = f.boolean(use_mask, field.replace("normalization_schemes", "use_mask_for_norm"))
    if scheme != "CTNormalization":
        return Normalization(scheme, mask)
    props = f.obj(props, props_field)
    vals = {}
    for key in ("mean", "std", "percentile_00_5", "percentile_99_5"):
        vals[key] = f.number(f.get(props, props_field, key), f"{props_field}.{key}", -1e9, 1e9)
    if vals["percentile_99_5"] < vals["percentile_00_5"]:
        raise f.error(f"{props_field}.percentile_99_5", "is below percentile_00_5")
    return Normalization(
        scheme, mask, vals["mean"], vals["std"], vals["percentile_00_5"], vals["percentile_99_5"]
    )


def _resampling(f: Fields, value: Any, field: str) -> Resampling:
    value = f.obj(value, field)
    for key in value:
        if key not in ("order", "order_z", "force_separate_z", "is_seg"):
            raise f.error(f"{field}.{key}", "is not a known resampling argument")
    order = f.integer(value.get("order", 3), f"{field}.order", 0, 5)
    order_z = f.integer(value.get("order_z", 0), f"{field}.order_z", 0, 5)
    force = value.get("force_separate_z")
    if force is not None:
        f.boolean(force, f"{field}.force_separate_z")
    return Resampling(order, order_z, force)


def _resampling_block(r: Resampling) -> dict[str, Any]:
    return {"order": r.order, "order_z": r.order_z, "force_separate_z": r.force_separate_z}


def _mirror_axes(f: Fields, value: Any, dims: int, field: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        value = list(value)
    axes = f.int_list(value, field, (0, dims), 0, dims - 1)
    if len(set(axes)) != len(axes):
        raise f.error(field, f"repeats an axis: {axes}")
    return tuple(axes)
