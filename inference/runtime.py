"""What a task needs while it runs: the run context (network, progress, cancel, timings),
the out-of-memory fallback ladder, the one forward call, and the parts a task answers with.

Tasks (``inference.tasks``) import this module; the engine (``inference.engine``) builds the
context, calls a task and assembles the frozen ``AnalysisResult`` from the parts. Nothing here
imports the engine or a task, and torch is imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from inference.card import ModelCard
from radlens_core.errors import UserError
from radlens_core.progress import Cancelled, Progress
from radlens_core.results import Box, Classification, HeatMap, LabelMap

T = TypeVar("T")

__all__ = [
    "Cancelled",
    "EngineError",
    "Loaded",
    "RunContext",
    "Step",
    "TaskOutput",
    "TaskRun",
    "describe_run",
    "fallback_steps",
    "forward",
    "free_memory",
    "is_out_of_memory",
    "precision_on",
    "run_with_fallback",
    "spatial_shape",
]


class EngineError(UserError, RuntimeError):
    """A sentence the user can act on: bad model, wrong modality, out of memory everywhere."""


# ---- what a task answers with --------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TaskOutput:
    """The layers one task produced; the engine adds the run's metadata around them."""

    label_map: LabelMap | None = None
    heat_map: HeatMap | None = None
    boxes: tuple[Box, ...] = ()
    classification: Classification | None = None
    #: the card's out-of-distribution score, computed from the run's probabilities
    ood_score: float | None = None


class TaskRun(Protocol):
    """A task's entry point: analyse ``image`` within ``ctx`` and return its layers."""

    def __call__(
        self, image: np.ndarray, spacing: Any, direction: Any, ctx: RunContext
    ) -> TaskOutput: ...


def spatial_shape(image: np.ndarray, card: ModelCard) -> tuple[int, ...]:
    """The image's spatial shape without a trailing RGB(A) axis."""
    if (
        image.ndim >= 3
        and image.shape[-1] in (3, 4)
        and (image.ndim == 4 or card.spatial_dims == 2)
    ):
        return tuple(image.shape[:-1])
    return tuple(image.shape)


# ---- out-of-memory fallback ------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One rung of the fallback ladder: where windows run and where the result is stitched."""

    sw_batch_size: int
    sw_device: str
    device: str

    @property
    def where(self) -> str:
        """Where this rung computes: "cuda", or "cuda, stitching on cpu"."""
        if self.sw_device == self.device:
            return self.sw_device
        return f"{self.sw_device}, stitching on {self.device}"

    def describe(self) -> str:
        return f"sw_batch_size {self.sw_batch_size} on {self.where}"


def precision_on(device: str) -> str:
    """The arithmetic a network runs in on ``device`` (autocast to float16 on CUDA only)."""
    return "float16 (autocast)" if device.startswith("cuda") else "float32"


def describe_run(requested: str, ran: dict[str, tuple[Step, str]]) -> tuple[str, str]:
    """(device, precision) that actually produced a result, from the rung each stage ran on.

    ``ran`` maps a stage ("inference", "Grad-CAM", ...) to (rung, precision). A stage that
    fell off ``requested`` says so, e.g. "cpu (after CUDA out of memory)"; stages that ran in
    different places or precisions are named one by one."""
    if not ran:
        return requested, precision_on(requested)

    def joined(values: dict[str, str]) -> str:
        if len(set(values.values())) == 1:
            return next(iter(values.values()))
        return "; ".join(f"{stage}: {value}" for stage, value in values.items())

    device = joined({stage: step.where for stage, (step, _) in ran.items()})
    if any(s.sw_device != requested or s.device != requested for s, _ in ran.values()):
        kind = requested.split(":")[0].upper() if requested != "cpu" else ""
        device += f" (after {kind + ' ' if kind else ''}out of memory)"
    precision = joined({stage: prec for stage, (_, prec) in ran.items()})
    return device, precision


def fallback_steps(device: str, sw_batch_size: int) -> list[Step]:
    """Smaller batch -> stitch on the CPU -> everything on the CPU."""
    steps = [Step(sw_batch_size, device, device)]
    if sw_batch_size > 1:
        steps.append(Step(1, device, device))
    if device != "cpu":
        steps.append(Step(1, device, "cpu"))
        steps.append(Step(1, "cpu", "cpu"))
    return steps


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, (oom, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def run_with_fallback(attempt: Callable[[Step], T], steps: list[Step], warnings: list[str]) -> T:
    """Try each step in turn while the failure is out-of-memory; record each fallback."""
    for i, step in enumerate(steps):
        try:
            return attempt(step)
        except Cancelled:
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            free_memory()
            if i + 1 == len(steps):
                raise EngineError(
                    f"out of memory even with {step.describe()}; close other programs or use a"
                    " smaller region"
                ) from exc
            warnings.append(
                f"out of memory with {step.describe()}; retried with {steps[i + 1].describe()}"
            )
    raise EngineError("no device to run on")  # only reached with an empty ladder


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---- one run -------------------------------------------------------------------------------
@dataclass
class Loaded:
    """A card's network on one device, with the lock that serialises runs on it."""

    net: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)


#: (card, device) -> the network loaded there (the engine's cache)
Loader = Callable[[ModelCard, str], Loaded]


def forward(net: Any, x: Any) -> Any:
    """One forward pass (the single place a network is called; tests patch it)."""
    return net(x)


@dataclass
class RunContext:
    """What a task needs from the engine: the network, compute with fallback, progress, cancel."""

    card: ModelCard
    device: str
    entry: Loaded
    progress: Progress | None
    cancel: Callable[[], bool] | None
    #: loads the card's network on another device (a fallback rung), through the engine's cache
    loader: Loader
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: the device chosen before any out-of-memory fallback (``device`` may already be the CPU)
    requested: str = ""
    #: stage -> (rung it finally ran on, precision): what produced the result, not what was asked
    ran: dict[str, tuple[Step, str]] = field(default_factory=dict)
    windows_run: int = 0
    last_fraction: float = 0.0
    #: where resampling and mapping back run in torch (the run's CUDA device), or None for
    #: the numpy path on the CPU
    resample_device: str | None = None
    #: the rung of the window ladder the memory estimate chose to start on (0: the top)
    first_rung: int = 0

    def report(self, fraction: float, sentence: str) -> None:
        # Never moves backwards, even when an out-of-memory retry starts the windows again.
        self.last_fraction = max(self.last_fraction, min(max(float(fraction), 0.0), 1.0))
        if self.progress is not None:
            self.progress(self.last_fraction, sentence)

    def resampled(self, stage: str, work: Callable[[str | None], T]) -> T:
        """``work(self.resample_device)``; out of memory on that device runs ``work(None)``
        (the numpy path on the CPU) with a warning, and later stages stay there too."""
        device = self.resample_device
        if device is None:
            return work(None)
        try:
            return work(device)
        except Cancelled:
            raise
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            free_memory()
            self.resample_device = None
            self.warnings.append(
                f"out of {device} memory while {stage}; resampling on the CPU instead"
            )
            return work(None)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("analysis cancelled")

    def net_on(self, device: str) -> Any:
        if device == self.device:
            return self.entry.net
        return self.loader(self.card, device).net

    def lock_for(self, device: str) -> contextlib.AbstractContextManager[Any]:
        """The lock of the copy on ``device`` (the run already holds its own device's lock)."""
        if device == self.device:
            return contextlib.nullcontext()
        return self.loader(self.card, device).lock

    def autocast(self, device: str) -> contextlib.AbstractContextManager[Any]:
        import torch

        if device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def run_stage(
        self, stage: str, attempt: Callable[[Step], T], steps: list[Step], autocast: bool = True
    ) -> T:
        """``attempt`` down the OOM ladder ``steps``; records the rung that succeeded."""

        def recorded(step: Step) -> T:
            out = attempt(step)
            self.ran[stage] = (step, precision_on(step.sw_device) if autocast else "float32")
            return out

        return run_with_fallback(recorded, steps, self.warnings)

    def whole_steps(self) -> list[Step]:
        """The ladder for work that cannot be split into windows: this device, then the CPU."""
        return [s for s in fallback_steps(self.device, 1) if s.sw_device == s.device]

    def window_steps(self) -> list[Step]:
        """The ladder for sliding-window work, from the card's ``sw_batch_size``, starting at
        the rung the memory estimate chose (``first_rung``)."""
        steps = fallback_steps(self.device, int(self.card.inference.get("sw_batch_size", 1)))
        return steps[min(self.first_rung, len(steps) - 1) :]
