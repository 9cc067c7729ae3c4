"""nnU-Net's sliding window: its tile steps, Gaussian weights (sigma 1/8, scaled to 10) and
mirroring test-time augmentation, accumulated in float16 exactly as ``nnUNetPredictor`` does
(so the argmax agrees with it), with progress and cancel between tiles."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from radlens_core.progress import Cancelled


def compute_steps(image_size, tile_size, tile_step_size: float = 0.5) -> list[list[int]]:
    """nnU-Net's ``compute_steps_for_sliding_window``."""
    target = [i * tile_step_size for i in tile_size]
    num_steps = [
        int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, target, tile_size, strict=True)
    ]
    steps = []
    for dim in range(len(tile_size)):
        max_step = image_size[dim] - tile_size[dim]
        actual = max_step / (num_steps[dim] - 1) if num_steps[dim] > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num_steps[dim])])
    return steps


@lru_cache(maxsize=2)
def gaussian_weights(tile_size: tuple[int, ...]) -> np.ndarray:
    """nnU-Net's ``compute_gaussian(sigma_scale=1/8, value_scaling_factor=10)`` as float16."""
    from scipy.ndimage import gaussian_filter

    tmp = np.zeros(tile_size)
    tmp[tuple(i // 2 for i in tile_size)] = 1
    g = gaussian_filter(tmp, [i / 8 for i in tile_size], 0, mode="constant", cval=0)
    g /= np.max(g) / 10
    g = g.astype(np.float16)
    zero = g == 0
    if zero.any():
        g[zero] = np.min(g[~zero])
    return g


def pad_to_patch(shape, patch) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """acvl_utils' ``pad_nd_image`` to at least ``patch`` (last axes): (padded shape, pads)."""
    lead = len(shape) - len(patch)
    new = list(shape[:lead]) + [max(p, s) for p, s in zip(patch, shape[lead:], strict=True)]
    pads = tuple(
        ((n - s) // 2, (n - s) // 2 + (n - s) % 2) for n, s in zip(new, shape, strict=True)
    )
    return tuple(new), pads


def slicers(image_size, patch) -> list[tuple]:
    """nnU-Net's tile order; a 2d patch on 3D data walks every slice of the first axis."""
    if len(patch) < len(image_size):
        steps = compute_steps(image_size[1:], patch)
        return [
            (slice(None), d, slice(sx, sx + patch[0]), slice(sy, sy + patch[1]))
            for d in range(image_size[0])
            for sx in steps[0]
            for sy in steps[1]
        ]
    steps = compute_steps(image_size, patch)
    return [
        (slice(None), *(slice(s, s + p) for s, p in zip(start, patch, strict=True)))
        for start in itertools.product(*steps)
    ]


def mirror_combinations(axes) -> list[tuple[int, ...]]:
    axes = [a + 2 for a in axes]
    return [c for i in range(len(axes)) for c in itertools.combinations(axes, i + 1)]


def predict_logits(
    network,
    data,
    patch: tuple[int, ...],
    num_classes: int,
    mirror_axes,
    device,
    tick: Callable[[], None],
    cancel: Callable[[], bool],
):
    """Gaussian-weighted sliding-window logits (float16 torch tensor, shape of ``data``
    without channels) for one set of weights; ``data`` is a float32 torch tensor (C, ...)."""
    import torch
    import torch.nn.functional as F

    padded, pads = pad_to_patch(tuple(data.shape[1:]), patch)
    if any(p != (0, 0) for p in pads):
        torch_pads = [v for p in reversed(pads) for v in p]
        data = F.pad(data, torch_pads, "constant", 0)
    revert = tuple(slice(lo, n - hi) for (lo, hi), n in zip(pads, padded, strict=True))
    logits = torch.zeros((num_classes, *padded), dtype=torch.half)
    weights = torch.zeros(padded, dtype=torch.half)
    gaussian = torch.from_numpy(gaussian_weights(tuple(patch)))
    combos = mirror_combinations(mirror_axes) if mirror_axes else []
    autocast = device.type == "cuda"
    for sl in slicers(padded, patch):
        if cancel():
            raise Cancelled()
        tile = torch.clone(data[sl][None], memory_format=torch.contiguous_format).to(device)
        with torch.autocast(device.type, enabled=autocast):
            pred = network(tile)
            for axes in combos:
                out = network(torch.flip(tile, axes))
                # flipped back a few classes at a time: no second copy of every class
                for c in range(0, out.shape[1], 8):
                    pred[:, c : c + 8] += torch.flip(out[:, c : c + 8], axes)
                del out
        if combos:
            pred /= len(combos) + 1
        pred = pred[0].to("cpu")
        pred *= gaussian
        logits[sl] += pred
        weights[sl[1:]] += gaussian
        del pred, tile
        tick()
    torch.div(logits, weights, out=logits)
    del weights
    for channel in logits:  # one class at a time: a bool copy of every class costs as much
        if torch.any(torch.isinf(channel)):
            raise RuntimeError("infinite logits in the sliding-window sum (float16 overflow)")
    return logits[(slice(None), *revert)]
