"""What a model asks of the machine, computed from its card before anything is allocated:
the parameter count from the network's kwargs (the network is not built), and a run's memory
(input after resampling, sliding-window patches × batch × feature channels, outputs, weights)
against what the machine has. The numbers are estimates meant to refuse the absurd (terabytes
from a typo) with a sentence, not to predict the exact peak."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from radlens_core.errors import UserError

#: Environment override of the memory a run may use, in MB (tests; a shared machine).
MEMORY_ENV = "RADLENS_MEMORY_LIMIT_MB"
#: Card sanity caps, checked when a card is read (machine-independent).
MAX_PARAMETERS = 2_000_000_000
MAX_PATCH_VOXELS = 1 << 27  # 128 Mi voxels in one sliding window
MAX_SW_BATCH = 256
#: No image larger than this is analysed by any model (int32 indexing, 8 GB as float32).
MAX_INPUT_VOXELS = 2_000_000_000
_FLOAT = 4  # bytes


class BudgetError(UserError, ValueError):
    """A run (or a card) that asks for more than the machine, or a sane model, has."""


def human_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def available_memory() -> int:
    """Bytes a run may use: $RADLENS_MEMORY_LIMIT_MB if set, else MemAvailable from
    /proc/meminfo, else the physical memory (os.sysconf); psutil is not a dependency."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        try:
            return int(float(env) * 1e6)
        except ValueError:
            pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 10**9  # unknown platform: assume a modest workstation


# ---- network size from kwargs -----------------------------------------------------------------
def _ints(value: Any, default: list[int]) -> list[int]:
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return [int(v) for v in value]
    return default


def _num(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def _kernel(kw: dict[str, Any], dims: int, key: str = "kernel_size") -> int:
    k = kw.get(key, 3)
    if isinstance(k, (list, tuple)):
        return math.prod(_ints(k, [3] * dims))
    return _num(k, 3) ** dims


def network_shape(architecture: str, kwargs: dict[str, Any]) -> tuple[int, list[int], list[int]]:
    """(estimated parameter count, feature channels per level, downsampling per level)."""
    kw = kwargs or {}
    dims = _num(kw.get("spatial_dims"), 3)
    cin = _num(kw.get("in_channels"), 1)
    k = _kernel(kw, dims)
    if architecture in ("monai.UNet", "radlens.CenterNetUNet"):
        ch = _ints(kw.get("channels"), [16, 32])
        strides = _ints(kw.get("strides"), [2] * max(len(ch) - 1, 0))
        res = _num(kw.get("num_res_units"), 0)
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
        init = _num(kw.get("init_filters"), 8)
        blocks = _ints(kw.get("blocks_down"), [1, 2, 2, 4])
        ch = [init * 2**i for i in range(len(blocks))]
        params = k * cin * init + sum(b * 2 * k * c * c for b, c in zip(blocks, ch, strict=True))
        return params * 2, ch, [2**i for i in range(len(ch))]
    if architecture in ("monai.DenseNet", "monai.DenseNet121"):
        init = _num(kw.get("init_features"), 64)
        growth = _num(kw.get("growth_rate"), 32)
        bn = _num(kw.get("bn_size"), 4)
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
        raise BudgetError(
            f"asks for about {params:,} parameters ({human_bytes(params * _FLOAT)} of weights);"
            f" the limit is {MAX_PARAMETERS:,}"
        )
    return params


# ---- one run -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunEstimate:
    """Bytes a run is expected to hold at its peak, by part, and the model-grid shape."""

    model_shape: tuple[int, ...]
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def estimate_run(card: Any, shape: tuple[int, ...], spacing: Any) -> RunEstimate:
    """What running ``card`` on a spatial ``shape`` ((z, y, x) or (y, x)) with ``spacing``
    (x, y[, z]) asks for; nothing is allocated. ``card`` is an ``inference.card.ModelCard``."""
    from inference.preprocess import make_frame, resize_of

    if (
        card.spatial_dims == 2 and len(shape) == 3
    ):  # a (1, y, x) single slice: the model sees (y, x)
        shape = tuple(shape[1:])
    steps = card.preprocessing.get("steps", [])
    frame = make_frame(
        tuple(shape),
        spacing,
        None,
        card.target_spacing,
        resize_of(steps),
        reorient_axes=False,
    )
    model = frame.model_shape
    n_in, n_model = math.prod(shape), math.prod(model)
    net = card.network
    params, ch, down = network_shape(net.get("architecture", ""), net.get("kwargs", {}))
    out_ch = _num(net.get("kwargs", {}).get("out_channels"), max(len(card.labels) + 1, 2))
    if card.task == "classification":
        window, batch = n_model, 1
    else:
        window = math.prod(card.patch_size) if card.patch_size else n_model
        batch = _num(card.inference.get("sw_batch_size"), 1)
    features = sum(c / (d**card.spatial_dims) for c, d in zip(ch, down, strict=False)) or 16
    parts = {
        "input": n_in * _FLOAT * 2,  # the float copy and its reoriented view materialised
        "model grid": n_model * _FLOAT * (card.input_channels + 2 * out_ch + 1),
        "windows": int(window * batch * features * _FLOAT * 4),
        "weights": params * _FLOAT * 2,  # the state dict and the module during loading
        "results": n_in * (_FLOAT + 2),  # heat map, label map and its working copy
    }
    return RunEstimate(tuple(model), parts)


def check_run(card: Any, shape: tuple[int, ...], spacing: Any) -> RunEstimate:
    """BudgetError naming the model, what it asks and the limit, when a run would not fit."""
    n_in = math.prod(shape)
    if n_in > MAX_INPUT_VOXELS:
        raise BudgetError(
            f"model {card.name!r} cannot analyse an image of {n_in:,} voxels; the limit is"
            f" {MAX_INPUT_VOXELS:,}"
        )
    est = estimate_run(card, shape, spacing)
    limit = available_memory()
    if est.total > limit:
        grid = "×".join(str(s) for s in est.model_shape[::-1])
        biggest = max(est.parts, key=est.parts.__getitem__)
        raise BudgetError(
            f"model {card.name!r} would need about {human_bytes(est.total)} of memory for this"
            f" image (resampled to {grid} voxels; most of it for the {biggest}); this machine"
            f" has {human_bytes(limit)} available, so the run was refused"
        )
    return est
