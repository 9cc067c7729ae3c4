"""The allow-list of network architectures a model card may name, and their builders.

A model package is untrusted input: its card names an architecture from this table plus
keyword arguments (plain JSON values), and only these classes are ever constructed. Nothing
is imported from a name found in a file. torch and MONAI are imported inside the builders,
so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from inference.axes import (  # noqa: F401  (re-exported: callers import them from here)
    MODEL_AXES,
    axes_mapping,
    check_axes,
    frame_axes,
    frame_flips,
)
from radlens_core.errors import UserError


class UnknownArchitecture(UserError, ValueError):
    """A card naming an architecture that is not on the allow-list."""


def _monai_unet(**kw: Any):
    from monai.networks.nets import UNet

    return UNet(**kw)


def _monai_basic_unet(**kw: Any):
    from monai.networks.nets import BasicUNet

    return BasicUNet(**kw)


def _monai_densenet(**kw: Any):
    from monai.networks.nets import DenseNet

    return DenseNet(**kw)


def _monai_densenet121(**kw: Any):
    from monai.networks.nets import DenseNet121

    return DenseNet121(**kw)


def _monai_segresnet(**kw: Any):
    from monai.networks.nets import SegResNet

    return SegResNet(**kw)


def _center_net(**kw: Any):
    """A CenterNet-style detector: a MONAI UNet whose output channels are
    [center heat-map logit, size along z (or y), size along y (or x), (size along x)].
    Decoding (peaks -> boxes -> NMS) lives in ``inference.tasks.detect``.
    """
    from monai.networks.nets import UNet

    spatial_dims = int(kw.pop("spatial_dims", 3))
    kw.setdefault("out_channels", 1 + spatial_dims)
    if kw["out_channels"] != 1 + spatial_dims:
        raise ValueError(f"CenterNet needs out_channels = 1 + spatial_dims ({1 + spatial_dims})")
    return UNet(spatial_dims=spatial_dims, **kw)


#: architecture name (as written in model.json) -> builder
ARCHITECTURES: dict[str, Callable[..., Any]] = {
    "monai.UNet": _monai_unet,
    "monai.BasicUNet": _monai_basic_unet,
    "monai.SegResNet": _monai_segresnet,
    "monai.DenseNet": _monai_densenet,
    "monai.DenseNet121": _monai_densenet121,
    "radlens.CenterNetUNet": _center_net,
}

#: nnU-Net v2 architectures of imported models: built by inference.nnunet from the card's
#: "nnunet" block (its own allow-list and kwargs checks), never by build_network.
NNUNET_ARCHITECTURES: dict[str, str] = {
    "nnunet.PlainConvUNet": "PlainConvUNet",
    "nnunet.ResidualEncoderUNet": "ResidualEncoderUNet",
}

#: Names MONAI bundles use in their network_def "_target_", mapped onto the allow-list.
#: The target string is only looked up here, never imported.
BUNDLE_TARGETS: dict[str, str] = {
    "UNet": "monai.UNet",
    "monai.networks.nets.UNet": "monai.UNet",
    "monai.networks.nets.unet.UNet": "monai.UNet",
    "BasicUNet": "monai.BasicUNet",
    "monai.networks.nets.BasicUNet": "monai.BasicUNet",
    "SegResNet": "monai.SegResNet",
    "monai.networks.nets.SegResNet": "monai.SegResNet",
    "DenseNet121": "monai.DenseNet121",
    "monai.networks.nets.DenseNet121": "monai.DenseNet121",
}


def plain_kwargs(value: Any, where: str) -> Any:
    """Keyword arguments must be plain JSON data: no '$' expressions, no '_target_' objects."""
    if isinstance(value, str) and value.startswith(("$", "@", "%")):
        raise ValueError(f"{where}: expressions are not allowed in a model package ({value!r})")
    if isinstance(value, dict):
        if "_target_" in value:
            raise ValueError(f"{where}: nested '_target_' objects are not allowed")
        return {k: plain_kwargs(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [plain_kwargs(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where}: unsupported value of type {type(value).__name__}")


def build_network(architecture: str, kwargs: dict[str, Any] | None = None):
    """Construct an allow-listed network (an ``torch.nn.Module``) from its name and kwargs."""
    if architecture not in ARCHITECTURES:
        allowed = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitecture(
            f"architecture {architecture!r} is not allowed (allowed: {allowed})"
        )
    clean = plain_kwargs(dict(kwargs or {}), "network.kwargs")
    return ARCHITECTURES[architecture](**clean)


# ---- how big a network a card may ask for (checked from kwargs, never by building it) -------
#: Card sanity caps, checked when a card is read (machine-independent).
MAX_PARAMETERS = 2_000_000_000
MAX_PATCH_VOXELS = 1 << 27  # 128 Mi voxels in one sliding window
MAX_SW_BATCH = 256
#: No image larger than this is analysed by any model (int32 indexing, 8 GB as float32).
MAX_INPUT_VOXELS = 2_000_000_000
FLOAT_BYTES = 4


class NetworkTooLarge(UserError, ValueError):
    """A card whose network kwargs ask for more parameters than any sane model has."""


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def _ints(value: Any, default: list[int]) -> list[int]:
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return [int(v) for v in value]
    return default


def int_or(value: Any, default: int) -> int:
    """``value`` if it is an int (not a bool), else ``default``."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def _kernel(kw: dict[str, Any], dims: int, key: str = "kernel_size") -> int:
    k = kw.get(key, 3)
    if isinstance(k, (list, tuple)):
        return math.prod(_ints(k, [3] * dims))
    return int_or(k, 3) ** dims


def network_shape(architecture: str, kwargs: dict[str, Any]) -> tuple[int, list[int], list[int]]:
    """(estimated parameter count, feature channels per level, downsampling per level)."""
    kw = kwargs or {}
    dims = int_or(kw.get("spatial_dims"), 3)
    cin = int_or(kw.get("in_channels"), 1)
    k = _kernel(kw, dims)
    if architecture in ("monai.UNet", "radlens.CenterNetUNet"):
        ch = _ints(kw.get("channels"), [16, 32])
        strides = _ints(kw.get("strides"), [2] * max(len(ch) - 1, 0))
        res = int_or(kw.get("num_res_units"), 0)
        params, prev = 0, cin
        for c in ch:
            params += k * prev * c + res * 2 * k * c * c
            prev = c
        params *= 3  # the decoder mirrors the encoder with concatenated skips
        down = [1]
        for s in strides[: len(ch) - 1]:
            down.append(down[-1] * max(s, 1))
        return params, ch, down + [down[-1]] * (len(ch) - len(down))
    if architecture == "monai.BasicUNet":
        ch = _ints(kw.get("features"), [32, 32, 64, 128, 256, 32])
        params, prev = 0, cin
        for c in ch:
            params += k * prev * c + k * c * c
            prev = c
        params *= 2
        return params, ch, [2**i for i in range(len(ch))]
    if architecture == "monai.SegResNet":
        init = int_or(kw.get("init_filters"), 8)
        blocks = _ints(kw.get("blocks_down"), [1, 2, 2, 4])
        ch = [init * 2**i for i in range(len(blocks))]
        params = k * cin * init + sum(b * 2 * k * c * c for b, c in zip(blocks, ch, strict=True))
        return params * 2, ch, [2**i for i in range(len(ch))]
    if architecture == "onnx":  # inference.onnx_model: parameters from the graph file's size
        # The graph's layers are not known without parsing it: a typical encoder's widths.
        params = int_or(kw.get("parameters"), 0)
        return params, [32, 64, 128, 256], [1, 2, 4, 8]
    if architecture in ("monai.DenseNet", "monai.DenseNet121"):
        init = int_or(kw.get("init_features"), 64)
        growth = int_or(kw.get("growth_rate"), 32)
        bn = int_or(kw.get("bn_size"), 4)
        blocks = _ints(kw.get("block_config"), [6, 12, 24, 16])
        c, params, ch = init, 7**dims * cin * init, [init]
        for i, layers in enumerate(blocks):
            for _ in range(layers):
                params += c * bn * growth + k * bn * growth * growth
                c += growth
            ch.append(c)
            if i < len(blocks) - 1:
                params += c * (c // 2)
                c //= 2
        return params, ch, [2 ** (i + 1) for i in range(len(ch))]
    return 0, [], []


def check_card_network(architecture: str, kwargs: dict[str, Any]) -> int:
    """The estimated parameter count; BudgetError when it is beyond any sane model."""
    params, _, _ = network_shape(architecture, kwargs)
    if params > MAX_PARAMETERS:
        raise NetworkTooLarge(
            f"asks for about {params:,} parameters ({human_bytes(params * FLOAT_BYTES)} of weights);"
            f" the limit is {MAX_PARAMETERS:,}"
        )
    return params


# ---- the axes a network sees (inference.axes) ------------------------------------------------
def adapt_axes(net: Any, codes: str, frame: str | None = None) -> Any:
    """``net`` wrapped so it takes and gives (N, C, *grid) on a grid whose axes are ``frame``
    (default ``frame_axes(codes)``: only the order of axes differs) while the network itself
    sees the axes ``codes`` names; ``net`` itself when they are the same."""
    frame = frame_axes(codes) if frame is None else check_axes(frame)
    if check_axes(codes) == frame:
        return net
    import torch

    perm, flip = axes_mapping(codes, frame)
    to_net = (0, 1, *(2 + p for p in perm))
    back = tuple(int(i) for i in np.argsort(to_net))
    flipped = [2 + k for k, f in enumerate(flip) if f]

    class AxesAdapter(torch.nn.Module):
        """The grid's axes in and out, the network's own inside (a view: no copies beyond
        the flips)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            y = x.permute(*to_net)
            y = torch.flip(y, flipped) if flipped else y
            out = self.inner(y)
            out = torch.flip(out, flipped) if flipped else out
            return out.permute(*back)

    return AxesAdapter(net)
