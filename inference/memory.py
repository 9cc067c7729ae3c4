"""What a run asks of the machine before anything is allocated: host memory by part, and on
CUDA the GPU part against the free GPU memory, which picks the rung of the fallback ladder
the run starts on (or refuses it with a sentence).

The engine calls ``check_run`` once per run; nothing here imports torch except
``cuda_free_memory``, so the decision (``choose_rung``) is plain arithmetic, testable with
injected numbers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from inference.card import ModelCard
from inference.networks import FLOAT_BYTES, MAX_INPUT_VOXELS, human_bytes, int_or, network_shape
from inference.runtime import EngineError, Step, fallback_steps

__all__ = [
    "GPU_HEADROOM",
    "MEMORY_ENV",
    "GpuPlan",
    "RunEstimate",
    "available_memory",
    "check_run",
    "choose_rung",
    "estimate_run",
]


# ---- what a run asks of the machine, before anything is allocated ---------------------------
#: Environment override of the memory a run may use, in MB (tests; a shared machine).
MEMORY_ENV = "RADLENS_MEMORY_LIMIT_MB"


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


@dataclass(frozen=True)
class GpuPlan:
    """Where a CUDA run starts, chosen from its GPU estimate and the free GPU memory.

    ``rung`` indexes the window ladder (``fallback_steps``); the last rung is the CPU.
    ``note`` is the sentence for the run's warnings when the top rung does not fit."""

    rung: int
    steps: tuple[Step, ...]
    resample_on_gpu: bool
    need: int
    free: int
    note: str = ""

    @property
    def on_cpu(self) -> bool:
        return self.steps[self.rung].sw_device == "cpu"


@dataclass(frozen=True)
class RunEstimate:
    """Bytes a run is expected to hold at its peak, by part, and the model-grid shape; on
    CUDA also the plan chosen against the free GPU memory."""

    model_shape: tuple[int, ...]
    parts: dict[str, int]
    gpu: GpuPlan | None = None

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def estimate_run(card: ModelCard, shape: tuple[int, ...], spacing: Any) -> RunEstimate:
    """What running ``card`` on a spatial ``shape`` ((z, y, x) or (y, x)) with ``spacing``
    (x, y[, z]) asks for; nothing is allocated. ``card`` is an ``inference.card.ModelCard``."""
    from inference.preprocess import RADLENS, make_frame, resize_of

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
        convention=card.preprocessing.get("resample", RADLENS),
    )
    model = frame.model_shape
    n_in, n_model = math.prod(shape), math.prod(model)
    net = card.network
    params, ch, down = network_shape(net.get("architecture", ""), net.get("kwargs", {}))
    out_ch = int_or(net.get("kwargs", {}).get("out_channels"), max(len(card.labels) + 1, 2))
    if card.task == "classification":
        window, batch = n_model, 1
    else:
        window = math.prod(card.patch_size) if card.patch_size else n_model
        batch = int_or(card.inference.get("sw_batch_size"), 1)
    features = sum(c / (d**card.spatial_dims) for c, d in zip(ch, down, strict=False)) or 16
    parts = {
        "input": n_in * FLOAT_BYTES * 2,  # the float copy and its reoriented view materialised
        "model grid": n_model * FLOAT_BYTES * (card.input_channels + 2 * out_ch + 1),
        "windows": int(window * batch * features * FLOAT_BYTES * 4),
        "weights": params * FLOAT_BYTES * 2,  # the state dict and the module during loading
        "results": n_in * (FLOAT_BYTES + 2),  # heat map, label map and its working copy
    }
    return RunEstimate(tuple(model), parts)


def check_run(
    card: ModelCard,
    shape: tuple[int, ...],
    spacing: Any,
    device: str = "cpu",
    resample_on_gpu: bool = False,
    gpu_free: int | None = None,
) -> RunEstimate:
    """EngineError naming the model, what it asks and the limit, when a run would not fit.

    On CUDA the GPU part of the estimate is compared with the free GPU memory (``gpu_free``,
    else ``torch.cuda.mem_get_info``) and the returned estimate carries the ``GpuPlan``: the
    first rung of the ladder that fits (a smaller window batch, stitching on the CPU, or
    the CPU), and whether resampling fits there too."""
    n_in = math.prod(shape)
    if n_in > MAX_INPUT_VOXELS:
        raise EngineError(
            f"model {card.name!r} cannot analyse an image of {n_in:,} voxels; the limit is"
            f" {MAX_INPUT_VOXELS:,}"
        )
    est = estimate_run(card, shape, spacing)
    plan = None
    if device.startswith("cuda"):
        free = gpu_free if gpu_free is not None else cuda_free_memory(device)
        if free is not None:
            plan = plan_gpu(card, est, n_in, device, resample_on_gpu, free)
    limit = available_memory()
    if est.total > limit:
        grid = "×".join(str(s) for s in est.model_shape[::-1])
        biggest = max(est.parts, key=est.parts.__getitem__)
        gpu = ""
        if plan is not None and plan.on_cpu:
            gpu = f"; the GPU has {human_bytes(plan.free)} free, too little for it as well"
        raise EngineError(
            f"model {card.name!r} would need about {human_bytes(est.total)} of memory for this"
            f" image (resampled to {grid} voxels; most of it for the {biggest}); this machine"
            f" has {human_bytes(limit)} available{gpu}, so the run was refused"
        )
    return RunEstimate(est.model_shape, est.parts, plan)


# ---- GPU memory: which rung of the ladder a CUDA run starts on -------------------------------
#: Share of the free GPU memory a run plans to fill (the allocator's fragmentation, cuDNN
#: workspaces and the CUDA context take the rest).
GPU_HEADROOM = 0.85


def cuda_free_memory(device: str) -> int | None:
    """Free bytes on ``device`` now (``torch.cuda.mem_get_info``); None when CUDA cannot say
    (no driver, or a device name without a GPU behind it): the run then plans without it."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        free, _total = torch.cuda.mem_get_info(torch.device(device))
    except (RuntimeError, AssertionError, ValueError):
        return None
    return int(free)


def gpu_parts(est: RunEstimate, n_in: int, step: Step) -> dict[str, int]:
    """Bytes a rung holds on the GPU at its peak, by part (0 for the all-CPU rung): the
    weights and the windows' activations where windows run; the model-grid input and the
    stitched output where stitching runs."""
    if step.sw_device == "cpu":
        return {}
    parts = {
        "weights": est.parts["weights"] // 2,  # the module only; the state dict stays on the host
        "windows": est.parts["windows"],
    }
    if step.device != "cpu":
        parts["model grid"] = est.parts["model grid"]
    return parts


def resampling_bytes(n_in: int) -> int:
    """GPU bytes of resampling and mapping back there: the input (int16) and its float copy
    going in, the label map (uint8) and the heat map (float32) coming back."""
    return n_in * (2 + FLOAT_BYTES) + n_in * (1 + FLOAT_BYTES)


def plan_gpu(
    card: ModelCard, est: RunEstimate, n_in: int, device: str, resample_on_gpu: bool, free: int
) -> GpuPlan:
    steps = fallback_steps(device, int(card.inference.get("sw_batch_size", 1)))
    needs = [sum(gpu_parts(est, n_in, s).values()) for s in steps]
    return choose_rung(steps, needs, resampling_bytes(n_in) if resample_on_gpu else 0, free)


def choose_rung(steps: list[Step], needs: list[int], resample: int, free: int) -> GpuPlan:
    """The first rung whose GPU need fits ``GPU_HEADROOM`` of ``free`` bytes (the last, the
    CPU, always does), resampling on the GPU when that fits on top; with the sentence that
    says what was given up when it is not the top rung."""
    budget = int(free * GPU_HEADROOM)
    rung = next((i for i, n in enumerate(needs) if n <= budget), len(steps) - 1)
    on_gpu = steps[rung].sw_device != "cpu"
    with_resampling = on_gpu and resample > 0 and needs[rung] + resample <= budget
    need = needs[rung] + (resample if with_resampling else 0)
    note = ""
    if rung > 0:
        top = steps[0]
        where = "runs on the CPU" if not on_gpu else f"starts with {steps[rung].describe()}"
        note = (
            f"the GPU has {human_bytes(free)} free and this run needs about"
            f" {human_bytes(needs[0])} there with {top.describe()}; it {where}"
        )
    elif resample and not with_resampling:
        note = (
            f"the GPU has {human_bytes(free)} free: too little to resample there as well"
            f" (about {human_bytes(resample)} more); resampling runs on the CPU"
        )
    return GpuPlan(rung, tuple(steps), with_resampling, need, free, note)
