"""The allow-list of network architectures a model card may name, and their builders.

A model package is untrusted input: its card names an architecture from this table plus
keyword arguments (plain JSON values), and only these classes are ever constructed. Nothing
is imported from a name found in a file. torch and MONAI are imported inside the builders,
so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
