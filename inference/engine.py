"""The inference engine: device choice, precision, OOM fallback, progress, cancel, model cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from inference.card import ModelCard
from inference.results import AnalysisResult

T = TypeVar("T")
Progress = Callable[[float, str], None]


class Cancelled(Exception):
    """The caller's cancel() returned True; raised between steps, no partial result."""


class EngineError(RuntimeError):
    """A sentence the user can act on: bad model, wrong modality, out of memory everywhere."""


def choose_device(preference: str = "auto") -> str:
    """ "cuda" | "mps" | "cpu": the first available in that order, or the explicit preference."""
    import torch

    pref = (preference or "auto").lower()
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if pref == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if pref.startswith("cuda") and not cuda:
        raise EngineError("CUDA was requested but no CUDA GPU is available; use --device cpu")
    if pref == "mps" and not mps:
        raise EngineError("Apple MPS was requested but is not available; use --device cpu")
    if pref not in ("cpu", "mps") and not pref.startswith("cuda"):
        raise EngineError(f"unknown device {preference!r}; use auto, cpu, cuda or mps")
    return pref


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
            _free_memory()
            if i + 1 == len(steps):
                raise EngineError(
                    f"out of memory even with {step.describe()}; close other programs or use a"
                    " smaller region"
                ) from exc
            warnings.append(
                f"out of memory with {step.describe()}; retried with {steps[i + 1].describe()}"
            )
    raise EngineError("no device to run on")  # only reached with an empty ladder


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---- model cache ---------------------------------------------------------------------------
@dataclass
class _Loaded:
    net: Any
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)


_CACHE: dict[tuple, _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(card: ModelCard, device: str) -> tuple:
    return (card.id, card.version, device, tuple(sorted(card.files.items())), str(card.path))


def loaded_network(card: ModelCard, device: str) -> _Loaded:
    """The card's network on ``device``, loaded once (hashes verified) and cached."""
    from inference.card import CardError
    from inference.weights import WeightsError, load_network

    key = _cache_key(card, device)
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            try:
                net = load_network(card)
            except (WeightsError, CardError) as exc:
                raise EngineError(f"model {card.id!r} cannot be used: {exc}") from exc
            entry = _CACHE[key] = _Loaded(net.to(device), device)
        return entry


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


# ---- one run -------------------------------------------------------------------------------
def forward(net: Any, x: Any) -> Any:
    """One forward pass (the single place a network is called; tests patch it)."""
    return net(x)


@dataclass
class RunContext:
    """What a task needs from the engine: the network, compute with fallback, progress, cancel."""

    card: ModelCard
    device: str
    entry: _Loaded
    progress: Progress | None
    cancel: Callable[[], bool] | None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: the device chosen before any out-of-memory fallback (``device`` may already be the CPU)
    requested: str = ""
    #: stage -> (rung it finally ran on, precision): what produced the result, not what was asked
    ran: dict[str, tuple[Step, str]] = field(default_factory=dict)
    windows_run: int = 0
    last_fraction: float = 0.0

    def report(self, fraction: float, sentence: str) -> None:
        # Never moves backwards, even when an out-of-memory retry starts the windows again.
        self.last_fraction = max(self.last_fraction, min(max(float(fraction), 0.0), 1.0))
        if self.progress is not None:
            self.progress(self.last_fraction, sentence)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("analysis cancelled")

    def net_on(self, device: str) -> Any:
        if device == self.device:
            return self.entry.net
        return loaded_network(self.card, device).net

    def lock_for(self, device: str):
        """The lock of the copy on ``device`` (the run already holds its own device's lock)."""
        import contextlib

        if device == self.device:
            return contextlib.nullcontext()
        return loaded_network(self.card, device).lock

    def autocast(self, device: str):
        import contextlib

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

    def infer(self, x: Any, roi: tuple[int, ...] | None, lo: float = 0.1, hi: float = 0.85) -> Any:
        """Network output for one (C, *spatial) input, by sliding window when ``roi`` is given;
        walks the OOM ladder; returns a float32 CPU tensor (C_out, *spatial)."""
        from inference.tasks.segment import sliding_window

        steps = fallback_steps(self.device, int(self.card.inference.get("sw_batch_size", 1)))
        return self.run_stage(
            "inference", lambda step: sliding_window(self, x, roi, step, lo, hi), steps
        )


class Engine:
    """Runs model packages on numpy images; one run at a time per loaded model."""

    def __init__(self, device: str = "auto", num_threads: int | None = None) -> None:
        self.device_preference = device
        self.num_threads = num_threads

    def load(self, card: ModelCard) -> str:
        """Verify and load ``card``'s network now (e.g. on a worker when a series opens), so the
        first ``run`` does not pay for it; returns the device it landed on."""
        device = choose_device(self.device_preference)
        loaded_network(card, device)
        return device

    def run(
        self,
        image: np.ndarray,
        spacing: Any,
        direction: Any,
        modality: str,
        card: ModelCard,
        progress: Progress | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> AnalysisResult:
        """Analyse ``image`` ((z, y, x) or (y, x), optional trailing RGB axis) with ``card``.

        Every array and box in the result is in the input's own voxel index space."""
        import torch

        t0 = time.perf_counter()
        image = np.asarray(image)
        self._check_input(image, modality, card)
        device = requested = choose_device(self.device_preference)
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        if progress is not None:
            progress(0.0, "loading model")
        early_warnings: list[str] = []
        try:
            entry = loaded_network(card, device)
        except Exception as exc:
            if device == "cpu" or not is_out_of_memory(exc):
                raise
            _free_memory()
            early_warnings.append(f"the model does not fit in {device} memory; running on the CPU")
            device = "cpu"
            entry = loaded_network(card, device)
        ctx = RunContext(
            card, device, entry, progress, cancel, warnings=early_warnings, requested=requested
        )
        ctx.timings["load"] = time.perf_counter() - t0
        if card.source == "monai_bundle":
            ctx.warnings.append("MONAI bundle: its weights have no published SHA-256 to verify")
        with entry.lock, torch.inference_mode(mode=card.task != "classification"):
            ctx.check_cancel()
            result = AnalysisResult(
                model_id=card.id,
                model_version=card.version,
                task=card.task,
                device=device,
                precision="float32",
                intended_use=card.intended_use,
            )
            task = _task_module(card.task)
            task.run(image, spacing, direction, ctx, result)
        # What ran, not what was asked: an out-of-memory fallback may have moved to the CPU.
        result.device, result.precision = describe_run(requested, ctx.ran)
        result.warnings = ctx.warnings
        result.timings = {**ctx.timings, "total": time.perf_counter() - t0}
        ctx.report(1.0, "done")
        return result

    @staticmethod
    def _check_input(image: np.ndarray, modality: str, card: ModelCard) -> None:
        mods = set(card.modalities)
        if modality.upper() not in mods and not mods & {"ANY", "OT"}:
            raise EngineError(
                f"model {card.name!r} is for {', '.join(card.modalities)} images; this one is {modality or 'unknown'}"
            )
        if image.dtype.kind not in "uif" or image.size == 0:
            raise EngineError(
                f"cannot analyse an image of type {image.dtype} and shape {image.shape}"
            )
        spatial = spatial_shape(image, card)
        if card.spatial_dims == 3 and (len(spatial) != 3 or spatial[0] < 2):
            raise EngineError(
                f"model {card.name!r} needs a volume; this image has shape {image.shape}"
            )
        if card.spatial_dims == 2 and len(spatial) == 3 and spatial[0] != 1:
            raise EngineError(
                f"model {card.name!r} works on single 2D images; this is a volume of shape {image.shape}"
            )


def spatial_shape(image: np.ndarray, card: ModelCard) -> tuple[int, ...]:
    """The image's spatial shape without a trailing RGB(A) axis."""
    if (
        image.ndim >= 3
        and image.shape[-1] in (3, 4)
        and (image.ndim == 4 or card.spatial_dims == 2)
    ):
        return tuple(image.shape[:-1])
    return tuple(image.shape)


def _task_module(task: str):
    from inference.tasks import classify, detect, segment

    return {"segmentation": segment, "detection": detect, "classification": classify}[task]
