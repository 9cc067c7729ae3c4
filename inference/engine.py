"""The inference engine: device choice, model cache, one run from input checks to the frozen
``AnalysisResult`` (the tasks compute the layers; ``inference.runtime`` holds what they share)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from inference import nnunet
from inference.card import CardError, ModelCard
from inference.components import plausibility_flags
from inference.memory import check_run
from inference.runtime import (
    Cancelled,
    EngineError,
    Loaded,
    RunContext,
    Step,
    TaskRun,
    describe_run,
    fallback_steps,
    forward,
    free_memory,
    is_out_of_memory,
    precision_on,
    run_with_fallback,
    spatial_shape,
)
from inference.weights import WeightsError, load_network, verify_files
from radlens_core.progress import Progress
from radlens_core.results import AnalysisResult, Flag, HeatMap, LabelMap, RunInfo, Task

# Names callers import from here (the engine's public face), defined in inference.runtime.
__all__ = [
    "Cancelled",
    "Engine",
    "EngineError",
    "Progress",
    "RunContext",
    "Step",
    "choose_device",
    "clear_cache",
    "describe_run",
    "fallback_steps",
    "forward",
    "is_out_of_memory",
    "loaded_network",
    "precision_on",
    "run_with_fallback",
    "spatial_shape",
]


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


# ---- model cache ---------------------------------------------------------------------------
_CACHE: dict[tuple[Any, ...], Loaded] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(card: ModelCard, device: str) -> tuple[Any, ...]:
    return (card.id, card.version, device, tuple(sorted(card.files.items())), str(card.path))


def loaded_network(card: ModelCard, device: str) -> Loaded:
    """The card's network on ``device``, loaded once (hashes verified) and cached."""
    key = _cache_key(card, device)
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            try:
                if card.is_nnunet:  # inference.nnunet moves the folds to the device per run
                    verify_files(card)
                    entry = Loaded(nnunet.load_package(card.path), device)
                else:
                    entry = Loaded(load_network(card).to(device), device)
            except (WeightsError, CardError, nnunet.NnunetError) as exc:
                raise EngineError(f"model {card.id!r} cannot be used: {exc}") from exc
            _CACHE[key] = entry
        return entry


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


class Engine:
    """Runs model packages on numpy images; one run at a time per loaded model."""

    #: Where resampling to the model grid and mapping back run: "auto" = in torch on the
    #: run's device when that is a GPU, else the numpy path on the CPU; "torch" = in torch on
    #: the run's device always (CPU tensors on the CPU); "numpy" = the CPU path always.
    RESAMPLE_CHOICES = ("auto", "torch", "numpy")

    def __init__(
        self, device: str = "auto", num_threads: int | None = None, resample: str = "auto"
    ) -> None:
        if resample not in self.RESAMPLE_CHOICES:
            raise ValueError(f"resample must be one of {self.RESAMPLE_CHOICES}, not {resample!r}")
        self.device_preference = device
        self.num_threads = num_threads
        self.resample = resample

    def resample_device(self, device: str) -> str | None:
        """The torch device resampling runs on for a run on ``device`` (None: numpy, CPU)."""
        if self.resample == "torch":
            return device
        if self.resample == "auto" and device.startswith("cuda"):
            import torch

            return device if torch.cuda.is_available() else None
        return None

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
        outside_intended_use: bool = False,
    ) -> AnalysisResult:
        """Analyse ``image`` ((z, y, x) or (y, x), optional trailing RGB axis) with ``card``.

        Every array and box in the result is in the input's own voxel index space. The run's
        memory is estimated from the card first and refused (EngineError) when it would not
        fit. ``outside_intended_use``: the caller ran the model on a series its card does not
        admit, on the user's explicit override; the result is marked and flagged."""
        import torch

        t0 = time.perf_counter()
        image = np.asarray(image)
        self._check_input(image, modality, card)
        device = requested = choose_device(self.device_preference)
        # EngineError when it cannot fit; on CUDA the rung of the ladder the GPU can hold.
        estimate = check_run(
            card,
            spatial_shape(image, card),
            spacing,
            device=device,
            resample_on_gpu=self.resample_device(device) is not None,
        )
        plan = estimate.gpu
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        if progress is not None:
            progress(0.0, "loading model")
        early_warnings: list[str] = [plan.note] if plan is not None and plan.note else []
        first_rung = 0
        resample_device = self.resample_device(device)
        if plan is not None:
            if plan.on_cpu:
                device = "cpu"
                resample_device = self.resample_device(device)
            else:
                first_rung = plan.rung
                resample_device = resample_device if plan.resample_on_gpu else None
        try:
            entry = loaded_network(card, device)
        except Exception as exc:
            if device == "cpu" or not is_out_of_memory(exc):
                raise
            free_memory()
            early_warnings.append(f"the model does not fit in {device} memory; running on the CPU")
            device = "cpu"
            first_rung, resample_device = 0, self.resample_device(device)
            entry = loaded_network(card, device)
        ctx = RunContext(
            card,
            device,
            entry,
            progress,
            cancel,
            loader=loaded_network,
            warnings=early_warnings,
            requested=requested,
            resample_device=resample_device,
            first_rung=first_rung,
        )
        ctx.timings["load"] = time.perf_counter() - t0
        if card.source == "monai_bundle":
            ctx.warnings.append("MONAI bundle: its weights have no published SHA-256 to verify")
        with entry.lock, torch.inference_mode(mode=card.task != "classification"):
            ctx.check_cancel()
            if card.is_nnunet:
                parts = _run_nnunet(image, spacing, direction, ctx)
            else:
                parts = _task_run(card.task)(image, spacing, direction, ctx)
        # What ran, not what was asked: an out-of-memory fallback may have moved to the CPU.
        ran_on, precision = describe_run(requested, ctx.ran)
        flags = _flags(card, parts, image, spacing, outside_intended_use)
        ood_range = card.ood.get("range")
        run = RunInfo(
            model_id=card.id,
            model_version=card.version,
            task=Task(card.task),
            device=ran_on,
            precision=precision,
            timings={**ctx.timings, "total": time.perf_counter() - t0},
            intended_use=card.intended_use,
            warnings=tuple(ctx.warnings),
            model_name=card.name,
            outside_intended_use=outside_intended_use,
            flags=tuple(flags),
            ood_score=parts.ood_score,
            ood_range=(float(ood_range[0]), float(ood_range[1])) if ood_range else None,
        )
        result = AnalysisResult(
            run=run,
            label_map=parts.label_map,
            heat_map=parts.heat_map,
            boxes=parts.boxes,
            classification=parts.classification,
        )
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


def _flags(
    card: ModelCard, parts: Any, image: np.ndarray, spacing: Any, outside: bool
) -> list[Flag]:
    """The result's flags: the override first, then the card's plausibility and OOD checks."""
    from inference.preprocess import axis_spacing

    out: list[Flag] = []
    if outside:
        out.append(
            Flag(
                "outside_intended_use",
                f"outside intended use: {card.name} was run on a series its card does not"
                " admit, on the user's explicit request",
            )
        )
    ndim = (
        parts.label_map.array.ndim
        if parts.label_map is not None
        else len(spatial_shape(image, card))
    )
    sp = axis_spacing(spacing, ndim) if spacing is not None else ()
    sp = (1.0,) * (ndim - len(sp)) + tuple(sp)
    out += plausibility_flags(card, parts.label_map, parts.boxes, sp, parts.ood_score)
    return out


#: What a first run imports besides torch: the tasks and the MONAI parts they use (over a
#: thousand modules, seconds of start-up that hold the interpreter lock).
_WARM_MODULES = (
    "inference.tasks.segment",
    "inference.tasks.detect",
    "inference.tasks.classify",
    "monai.networks.nets",
    "monai.inferers",
    "monai.data.utils",
    "monai.visualize",
)


def warm_up() -> None:
    """Import torch and what the tasks need, so that a first Analyze does not wait for it.
    Meant for a background thread once the window is up; a missing optional part is logged
    and skipped (the run that needs it will say so)."""
    import importlib
    import logging

    import torch  # noqa: F401  (the import is the point)

    for name in _WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            logging.getLogger(__name__).info("warm-up: %s not imported (%s)", name, exc)


def _run_nnunet(image: np.ndarray, spacing: Any, direction: Any, ctx: RunContext) -> Any:
    """An imported nnU-Net model's label map (+ volumes) and the first foreground label's
    probability, via inference.nnunet.predict (nnUNetPredictor's result); CUDA out of memory
    runs it again on the CPU."""
    from inference.preprocess import axis_spacing
    from inference.runtime import TaskOutput

    card = ctx.card
    spatial = np.squeeze(image) if image.ndim == 3 and image.shape[0] == 1 else image
    sp_zyx = axis_spacing(spacing, spatial.ndim) if spacing is not None else (1.0,) * spatial.ndim
    spacing_xyz = tuple(sp_zyx[::-1])
    first = min((e.index for e in card.labels), default=None)
    device = ctx.device
    t = time.perf_counter()
    from inference import postprocess

    def call(dev: str) -> tuple[np.ndarray, np.ndarray | None]:
        return nnunet.predict(
            spatial,
            spacing_xyz,
            direction if spatial.ndim == 3 else None,
            ctx.entry.net,
            mirroring=True,
            device=dev,
            progress=lambda f, s: ctx.report(0.05 + 0.9 * f, s),
            cancel=ctx.cancel,
            probabilities_for=(first,) if first is not None else (),
        )

    try:
        labels, probs = call(device)
    except Exception as exc:
        if device == "cpu" or not is_out_of_memory(exc):
            raise
        free_memory()
        ctx.warnings.append(f"the model does not fit in {device} memory; running on the CPU")
        device = "cpu"
        labels, probs = call(device)
    ctx.ran["inference"] = (Step(1, device, device), "float32")
    ctx.timings["inference"] = time.perf_counter() - t

    names = {e.index: e.name for e in card.labels}
    volumes = postprocess.label_volumes(labels, sp_zyx, names)
    if labels.size == image.size:  # back to the input's own shape, e.g. (1, y, x)
        labels = labels.reshape(image.shape)
    label_map = LabelMap(labels, card.labels, volumes)
    heat_map = None
    if probs is not None and first is not None:
        heat = probs[0].astype(np.float32)
        heat_map = HeatMap(
            heat.reshape(label_map.array.shape), f"{card.label_name(first)} probability"
        )
    return TaskOutput(label_map=label_map, heat_map=heat_map)


def _task_run(task: str) -> TaskRun:
    """The task's ``run`` (imported on first use: the tasks pull in MONAI)."""
    from inference.tasks import classify, detect, segment

    runs: dict[str, TaskRun] = {
        "segmentation": segment.run,
        "detection": detect.run,
        "classification": classify.run,
    }
    return runs[task]
