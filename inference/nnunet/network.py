"""nnU-Net networks from an allow-list: architecture and op names mapped, kwargs checked.

A plans.json names its network class and its conv/norm/dropout/nonlin ops as dotted Python
names, which nnU-Net itself imports with ``pydoc.locate``. Here no name is ever imported: each
must be one of the spellings below, and the keyword arguments are checked for type, count and
size before ``dynamic_network_architectures`` builds anything. torch loads lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inference.nnunet.jsondata import Fields

#: accepted spellings of the network class -> the RadLens name kept in the package.
ARCHITECTURES = {
    "dynamic_network_architectures.architectures.unet.PlainConvUNet": "PlainConvUNet",
    "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet": "ResidualEncoderUNet",
    "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet": "ResidualEncoderUNet",
    "PlainConvUNet": "PlainConvUNet",
    "ResidualEncoderUNet": "ResidualEncoderUNet",
}


def _spellings(name: str, module: str) -> dict[str, str]:
    return {f"torch.nn.{name}": name, f"torch.nn.modules.{module}.{name}": name, name: name}


CONV_OPS = {**_spellings("Conv2d", "conv"), **_spellings("Conv3d", "conv")}
NORM_OPS = {
    **_spellings("InstanceNorm2d", "instancenorm"),
    **_spellings("InstanceNorm3d", "instancenorm"),
    **_spellings("BatchNorm2d", "batchnorm"),
    **_spellings("BatchNorm3d", "batchnorm"),
}
DROPOUT_OPS = {
    **_spellings("Dropout", "dropout"),
    **_spellings("Dropout2d", "dropout"),
    **_spellings("Dropout3d", "dropout"),
}
NONLINS = {
    **_spellings("LeakyReLU", "activation"),
    **_spellings("ReLU", "activation"),
    **_spellings("GELU", "activation"),
    **_spellings("ELU", "activation"),
}
BLOCKS = {
    "dynamic_network_architectures.building_blocks.residual.BasicBlockD": "BasicBlockD",
    "dynamic_network_architectures.building_blocks.residual.BottleneckD": "BottleneckD",
    "BasicBlockD": "BasicBlockD",
    "BottleneckD": "BottleneckD",
}
_OP_TABLES = {
    "conv_op": CONV_OPS,
    "norm_op": NORM_OPS,
    "dropout_op": DROPOUT_OPS,
    "nonlin": NONLINS,
    "block": BLOCKS,
}
_OP_KWARGS = {
    "norm_op_kwargs": {
        "eps": float,
        "affine": bool,
        "momentum": float,
        "track_running_stats": bool,
    },
    "dropout_op_kwargs": {"p": float, "inplace": bool},
    "nonlin_kwargs": {"inplace": bool, "negative_slope": float, "alpha": float},
}
MAX_STAGES = 10
MAX_FEATURES = 4096
MAX_KERNEL = 7
MAX_STRIDE = 8
MAX_CONVS = 16


@dataclass(frozen=True)
class NetworkSpec:
    """A checked network: allow-listed class name + kwargs with op names as short names."""

    architecture: str  # "PlainConvUNet" | "ResidualEncoderUNet"
    kwargs: dict[str, Any]
    input_channels: int
    num_classes: int

    @property
    def dims(self) -> int:
        return 3 if self.kwargs["conv_op"] == "Conv3d" else 2

    def parameter_count(self) -> int:
        """Parameters of the network, computed from the kwargs (nothing is allocated)."""
        kw = self.kwargs
        feats, kernels, strides = kw["features_per_stage"], kw["kernel_sizes"], kw["strides"]
        enc = kw.get("n_conv_per_stage") or kw["n_blocks_per_stage"]
        dec = kw["n_conv_per_stage_decoder"]
        res = self.architecture == "ResidualEncoderUNet"
        total, prev = 0, self.input_channels
        for s, f in enumerate(feats):
            k = _prod(kernels[s])
            convs = enc[s] * (2 if res else 1) + (1 if res and s == 0 else 0)
            total += prev * f * k + f + (convs - 1) * (f * f * k + f) + convs * 2 * f
            prev = f
        for s in range(len(feats) - 1, 0, -1):
            hi, lo = feats[s], feats[s - 1]
            total += hi * lo * _prod(strides[s]) + lo  # transposed conv
            k = _prod(kernels[s - 1])
            total += 2 * lo * lo * k + lo + (dec[s - 1] - 1) * (lo * lo * k + lo) + 4 * lo
            total += lo * self.num_classes + self.num_classes
        return total

    def activation_bytes(self, patch: tuple[int, ...], batch: int = 1) -> int:
        """Upper estimate of float32 activations alive while one patch passes the network:
        every stage's skip tensor plus a few working tensors of the largest stage."""
        vox = _prod(patch)
        per_stage = []
        for s, f in enumerate(self.kwargs["features_per_stage"]):
            vox = max(1, vox // _prod(self.kwargs["strides"][s]))
            per_stage.append(f * vox)
        return int(4 * batch * (2 * sum(per_stage) + 4 * max(per_stage)))

    def build(self):
        """The torch module (eval mode, no deep supervision), built from the allow-list only."""
        import torch.nn as nn
        from dynamic_network_architectures.architectures.unet import (
            PlainConvUNet,
            ResidualEncoderUNet,
        )
        from dynamic_network_architectures.building_blocks.residual import (
            BasicBlockD,
            BottleneckD,
        )

        classes = {
            "Conv2d": nn.Conv2d,
            "Conv3d": nn.Conv3d,
            "InstanceNorm2d": nn.InstanceNorm2d,
            "InstanceNorm3d": nn.InstanceNorm3d,
            "BatchNorm2d": nn.BatchNorm2d,
            "BatchNorm3d": nn.BatchNorm3d,
            "Dropout": nn.Dropout,
            "Dropout2d": nn.Dropout2d,
            "Dropout3d": nn.Dropout3d,
            "LeakyReLU": nn.LeakyReLU,
            "ReLU": nn.ReLU,
            "GELU": nn.GELU,
            "ELU": nn.ELU,
            "BasicBlockD": BasicBlockD,
            "BottleneckD": BottleneckD,
        }
        kw = {
            k: (classes[v] if k in _OP_TABLES and v is not None else v)
            for k, v in self.kwargs.items()
        }
        kw["deep_supervision"] = False
        cls = {"PlainConvUNet": PlainConvUNet, "ResidualEncoderUNet": ResidualEncoderUNet}[
            self.architecture
        ]
        net = cls(input_channels=self.input_channels, num_classes=self.num_classes, **kw)
        return net.eval()


def _prod(values) -> int:
    out = 1
    for v in values if isinstance(values, (list, tuple)) else [values]:
        out *= int(v)
    return out


def check_network(
    f: Fields,
    field: str,
    class_name: Any,
    arch_kwargs: Any,
    input_channels: int,
    num_classes: int,
) -> NetworkSpec:
    """Check an architecture entry (``field`` names it in the file) and return its spec."""
    if not isinstance(class_name, str) or class_name not in ARCHITECTURES:
        raise f.error(
            f"{field}.network_class_name",
            f"{str(class_name)[:100]!r} is not an allow-listed architecture "
            "(PlainConvUNet, ResidualEncoderUNet from dynamic_network_architectures)",
        )
    arch = ARCHITECTURES[class_name]
    kw_in = f.obj(arch_kwargs, f"{field}.arch_kwargs")
    where = f"{field}.arch_kwargs"
    enc_key = "n_conv_per_stage" if arch == "PlainConvUNet" else "n_blocks_per_stage"
    allowed = {
        "n_stages",
        "features_per_stage",
        "conv_op",
        "kernel_sizes",
        "strides",
        enc_key,
        "n_conv_per_stage_decoder",
        "conv_bias",
        "norm_op",
        "norm_op_kwargs",
        "dropout_op",
        "dropout_op_kwargs",
        "nonlin",
        "nonlin_kwargs",
        "deep_supervision",
    }
    allowed |= (
        {"nonlin_first"}
        if arch == "PlainConvUNet"
        else {"block", "bottleneck_channels", "stem_channels"}
    )
    for key in kw_in:
        if key not in allowed:
            raise f.error(f"{where}.{key}", f"is not a known {arch} argument")
    kw: dict[str, Any] = {}
    n = kw["n_stages"] = f.integer(
        f.get(kw_in, where, "n_stages"), f"{where}.n_stages", 1, MAX_STAGES
    )
    for key, table in _OP_TABLES.items():
        if key not in kw_in and key in ("norm_op", "dropout_op", "nonlin", "block"):
            continue
        value = f.get(kw_in, where, key)
        if value is None and key != "conv_op":
            kw[key] = None
            continue
        if not isinstance(value, str) or value not in table:
            raise f.error(
                f"{where}.{key}",
                f"{str(value)[:100]!r} is not allow-listed ({', '.join(sorted(set(table.values())))})",
            )
        kw[key] = table[value]
    dims = 3 if kw["conv_op"] == "Conv3d" else 2
    for key in ("norm_op", "dropout_op"):
        op = kw.get(key)
        if op and op[-2:] in ("2d", "3d") and int(op[-2]) != dims:
            raise f.error(f"{where}.{key}", f"{op} does not match the {dims}D conv_op")
    kw["features_per_stage"] = _per_stage(f, kw_in, where, "features_per_stage", n, 1, MAX_FEATURES)
    kw["kernel_sizes"] = _per_stage_vec(f, kw_in, where, "kernel_sizes", n, dims, 1, MAX_KERNEL)
    kw["strides"] = _per_stage_vec(f, kw_in, where, "strides", n, dims, 1, MAX_STRIDE)
    kw[enc_key] = _per_stage(f, kw_in, where, enc_key, n, 1, MAX_CONVS)
    kw["n_conv_per_stage_decoder"] = _per_stage(
        f, kw_in, where, "n_conv_per_stage_decoder", n - 1, 1, MAX_CONVS
    )
    for key in ("conv_bias", "deep_supervision", "nonlin_first"):
        if key in kw_in:
            kw[key] = f.boolean(kw_in[key], f"{where}.{key}")
    kw.pop("deep_supervision", None)  # always built without deep supervision for inference
    for key, types in _OP_KWARGS.items():
        if kw_in.get(key) is None:
            if key in kw_in:
                kw[key] = None
            continue
        value = f.obj(kw_in[key], f"{where}.{key}")
        checked: dict[str, float | bool] = {}
        for k, v in value.items():
            if k not in types:
                raise f.error(f"{where}.{key}.{k}", "is not an allowed argument")
            if types[k] is bool:
                checked[k] = f.boolean(v, f"{where}.{key}.{k}")
            else:
                checked[k] = f.number(v, f"{where}.{key}.{k}", 0.0, 1e6)
        kw[key] = checked
    if arch == "ResidualEncoderUNet":
        if kw_in.get("bottleneck_channels") is not None:
            kw["bottleneck_channels"] = _per_stage(
                f, kw_in, where, "bottleneck_channels", n, 1, MAX_FEATURES
            )
        if kw_in.get("stem_channels") is not None:
            kw["stem_channels"] = f.integer(
                kw_in["stem_channels"], f"{where}.stem_channels", 1, MAX_FEATURES
            )
    return NetworkSpec(arch, kw, input_channels, num_classes)


def _per_stage(f: Fields, kw: dict, where: str, key: str, n: int, lo: int, hi: int) -> list[int]:
    value = f.get(kw, where, key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value] * n
    return f.int_list(value, f"{where}.{key}", n, lo, hi)


def _per_stage_vec(
    f: Fields, kw: dict, where: str, key: str, n: int, dims: int, lo: int, hi: int
) -> list[list[int]]:
    value = f.get(kw, where, key)
    if not isinstance(value, list) or len(value) != n:
        raise f.error(f"{where}.{key}", f"must list one entry per stage ({n})")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v] * dims
        out.append(f.int_list(v, f"{where}.{key}[{i}]", dims, lo, hi))
    return out
