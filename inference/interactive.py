"""The engine's entry for promptable models: one prompt round (clicks, a box, a scribble and
the previous mask) through the same model boundary as Analyze -- the card validated (task
"interactive"), the weights verified against their SHA-256 and loaded from safetensors (or an
imported nnU-Net/nnInteractive folder's converted weights), the memory estimated before
anything is allocated, the device chosen and the out-of-memory ladder walked by
``inference.runtime`` -- answering a frozen ``AnalysisResult`` whose label map is the mask."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from inference.card import CardError, ModelCard
from inference.engine import Engine, choose_device, loaded_network
from inference.memory import check_run
from inference.runtime import EngineError, RunContext, describe_run
from inference.tasks.interactive import (
    PatchSpec,
    PromptError,
    Prompts,
    predict_region,
    run_prompts,
)
from radlens_core.progress import Progress
from radlens_core.results import AnalysisResult, RunInfo, Task

__all__ = [
    "PromptAnswer",
    "PromptError",
    "Prompts",
    "mask_of",
    "refine_region",
    "segment_with_prompts",
]

T = TypeVar("T")


def _check(image: np.ndarray, modality: str, card: ModelCard) -> None:
    if card.task != Task.INTERACTIVE.value:
        raise EngineError(f"model {card.name!r} is a {card.task} model, not a promptable one")
    try:
        spec = PatchSpec.from_card(card.inference, card.patch_size)
    except CardError as exc:
        raise EngineError(f"model {card.name!r} cannot be used: {exc}") from exc
    if card.spatial_dims != 3 or card.input_channels != len(spec.channels):
        raise EngineError(
            f"model {card.name!r}: a promptable model takes a volume and one input channel"
            f" per entry of inference.interactive.channels ({len(spec.channels)}); its card"
            f" says {card.input_channels}"
        )
    mods = set(card.modalities)
    if modality.upper() not in mods and not mods & {"ANY", "OT"}:
        raise EngineError(
            f"model {card.name!r} is for {', '.join(card.modalities)} images;"
            f" this one is {modality or 'unknown'}"
        )
    if image.ndim != 3 or min(image.shape) < 2 or image.dtype.kind not in "uif":
        raise EngineError(
            f"model {card.name!r} needs a volume; this image has shape {image.shape}"
            f" and type {image.dtype}"
        )


def _run(
    engine: Engine,
    image: np.ndarray,
    spacing_zyx: Sequence[float],
    modality: str,
    card: ModelCard,
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
    work: Callable[[RunContext], T],
) -> tuple[T, RunInfo]:
    """``work(ctx)`` within the model boundary: checks, memory estimate, device, load."""
    import torch

    t0 = time.perf_counter()
    _check(image, modality, card)
    device = requested = choose_device(engine.device_preference)
    # The run reads one patch; the estimate is taken over the whole image (an upper bound).
    estimate = check_run(card, tuple(image.shape), tuple(spacing_zyx)[::-1], device=device)
    if estimate.gpu is not None and estimate.gpu.on_cpu:
        device = "cpu"
    if engine.num_threads:
        torch.set_num_threads(int(engine.num_threads))
    entry = loaded_network(card, device)
    ctx = RunContext(
        card, device, entry, progress, cancel, loader=loaded_network, requested=requested
    )
    ctx.timings["load"] = time.perf_counter() - t0
    with entry.lock, torch.inference_mode():
        ctx.check_cancel()
        value = work(ctx)
    ran_on, precision = describe_run(requested, ctx.ran)
    run = RunInfo(
        model_id=card.id,
        model_version=card.version,
        task=Task.INTERACTIVE,
        device=ran_on,
        precision=precision,
        timings={**ctx.timings, "total": time.perf_counter() - t0},
        intended_use=card.intended_use,
        warnings=tuple(ctx.warnings),
        model_name=card.name,
    )
    ctx.report(1.0, "done")
    return value, run


def segment_with_prompts(
    engine: Engine,
    image: np.ndarray,
    spacing_zyx: Sequence[float],
    modality: str,
    card: ModelCard,
    prompts: Prompts,
    previous: np.ndarray | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> AnalysisResult:
    """One prompt round of ``card`` on ``image`` (z, y, x): the refined mask as the result's
    label map (the card's first label where the structure is, 0 elsewhere), in the image's
    own voxels. Raises EngineError (bad card, does not fit) or PromptError (bad prompts)."""
    image = np.asarray(image)
    parts, run = _run(
        engine, image, spacing_zyx, modality, card, progress, cancel,
        lambda ctx: run_prompts(image, spacing_zyx, prompts, previous, ctx),
    )  # fmt: skip
    return AnalysisResult(run=run, label_map=parts.label_map)


@dataclass(frozen=True)
class PromptAnswer:
    """One prompt round where it changed anything: the mask inside ``region`` (bool, the
    region's shape); outside the region the previous mask stands."""

    region: tuple[slice, slice, slice]
    mask: np.ndarray
    run: RunInfo


def refine_region(
    engine: Engine,
    image: np.ndarray,
    spacing_zyx: Sequence[float],
    modality: str,
    card: ModelCard,
    prompts: Prompts,
    previous: np.ndarray | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> PromptAnswer:
    """``segment_with_prompts`` for an editor: the answer only where the patch lies, so that
    a click on a 300x512x512 series never walks the whole volume to apply its edit."""
    image = np.asarray(image)
    prev = None if previous is None else np.asarray(previous, bool)
    answer, run = _run(
        engine, image, spacing_zyx, modality, card, progress, cancel,
        lambda ctx: predict_region(image, spacing_zyx, prompts, prev, ctx),
    )  # fmt: skip
    return PromptAnswer(answer.region, answer.inside, run)


def mask_of(result: AnalysisResult) -> np.ndarray:
    """The result's mask as bool (what the Segment Editor writes into a label)."""
    if result.label_map is None:
        raise EngineError("the promptable model returned no mask")
    return np.asarray(result.label_map.array) > 0
