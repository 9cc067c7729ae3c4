"""The first stage every task shares: the model's view of the input, preprocessed, timed."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from inference import preprocess
from inference.card import ModelCard
from inference.runtime import RunContext, spatial_shape


def model_view(image: np.ndarray, card: ModelCard) -> tuple[np.ndarray, bool, tuple[int, ...]]:
    """(array the model sees, channels_last, spatial shape results must have)."""
    spatial = spatial_shape(image, card)
    channels_last = len(spatial) < image.ndim
    arr = image
    if card.spatial_dims == 2 and len(spatial) == 3:  # a (1, y, x) single-slice volume
        arr = arr[0]
    return arr, channels_last, spatial


def prepare_input(
    image: np.ndarray, spacing: Any, direction: Any, ctx: RunContext, fraction: float
) -> tuple[Any, preprocess.Frame, tuple[int, ...]]:
    """(model input tensor, frame back to the input grid, result shape); reports ``fraction``,
    records the "preprocess" timing and honours a cancel before the network runs."""
    t = time.perf_counter()
    arr, channels_last, out_shape = model_view(image, ctx.card)
    ctx.report(fraction, "resampling")
    x, frame = ctx.resampled(
        "resampling",
        lambda device: preprocess.prepare(
            arr, spacing, direction, ctx.card, channels_last, device=device
        ),
    )
    ctx.timings["preprocess"] = time.perf_counter() - t
    ctx.check_cancel()
    return x, frame, out_shape


def patch_roi(card: ModelCard) -> tuple[int, ...] | None:
    """The card's patch size in array (z, y, x) order, or None for one whole-image window."""
    return tuple(card.patch_size[::-1]) if card.patch_size else None
