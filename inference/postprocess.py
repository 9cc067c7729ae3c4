"""Postprocessing: map model-grid outputs back onto the input's voxel grid, clean label maps."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from inference.preprocess import Frame, upsample_chunks


def from_model_axes(array: np.ndarray, frame: Frame) -> np.ndarray:
    """Undo ``preprocess.reorient``: an array on the oriented grid -> the input's axes."""
    out = array
    for k, f in enumerate(frame.flip):
        if f:
            out = np.flip(out, axis=k)
    return np.ascontiguousarray(np.transpose(out, np.argsort(frame.perm)))


def labels_to_input(
    probs, frame: Frame, output: str, indices: list[int], threshold: float = 0.5
) -> np.ndarray:
    """Class probabilities (C, *model_shape) -> uint8 label map in the input grid.

    Probabilities are resampled back first and the decision taken at full resolution, so
    boundaries are smooth and exact. ``softmax``: channel k is label index k (0 = background).
    ``sigmoid``: channel k is ``indices[k]``, above ``threshold``; later channels win overlaps.
    """
    out = np.zeros(frame.oriented_shape, dtype=np.uint8)
    lut = np.asarray(indices, dtype=np.uint8)
    for z0, z1, slab in upsample_chunks(probs, frame.oriented_shape):
        if output == "sigmoid":
            res = np.zeros(slab.shape[1:], dtype=np.uint8)
            above = (slab >= threshold).numpy()
            for k in range(slab.shape[0]):
                res[above[k]] = lut[k]
        else:
            res = slab.argmax(dim=0).numpy().astype(np.uint8)
        out[z0:z1] = res
    return from_model_axes(out, frame)


def heat_to_input(channel, frame: Frame) -> np.ndarray:
    """One probability channel (*model_shape) -> float32 in [0, 1] in the input grid."""
    out = np.empty(frame.oriented_shape, dtype=np.float32)
    for z0, z1, slab in upsample_chunks(channel[None], frame.oriented_shape):
        out[z0:z1] = slab[0].clamp(0.0, 1.0).numpy()
    return from_model_axes(out, frame)


def box_to_input(corners: tuple[float, ...], frame: Frame) -> tuple[float, ...]:
    """Model-grid box corners (lo..., hi...) -> input-grid corners in the input's axis order."""
    d = len(corners) // 2
    lo = np.empty(d)
    hi = np.empty(d)
    for k in range(d):
        s = frame.scale[k]
        a = (corners[k] + 0.5) * s - 0.5
        b = (corners[k + d] + 0.5) * s - 0.5
        if frame.flip[k]:
            n = frame.oriented_shape[k] - 1
            a, b = n - b, n - a
        axis = frame.perm[k]
        lo[axis] = max(0.0, a)
        hi[axis] = min(float(frame.input_shape[axis] - 1), b)
    return tuple(float(v) for v in lo) + tuple(float(v) for v in hi)


def clean_components(label_map: np.ndarray, thresholds: dict[str, Any]) -> np.ndarray:
    """Drop components smaller than ``min_component_voxels``; keep only the largest component of
    each label listed in ``largest_component`` (e.g. the body, one organ). In place."""
    min_size = int(thresholds.get("min_component_voxels", 0) or 0)
    largest = set(thresholds.get("largest_component", []) or [])
    if not min_size and not largest:
        return label_map
    for idx in np.unique(label_map):
        if idx == 0 or (idx not in largest and not min_size):
            continue
        mask = label_map == idx
        comps, n = ndimage.label(mask)
        if n == 0:
            continue
        sizes = np.bincount(comps.ravel())
        sizes[0] = 0
        drop = sizes < min_size
        if idx in largest:
            drop |= np.arange(len(sizes)) != int(np.argmax(sizes))
        drop[0] = False
        if drop.any():
            label_map[drop[comps] & mask] = 0
    return label_map


def label_volumes(label_map: np.ndarray, spacing: Any, names: dict[int, str]) -> dict[str, float]:
    """Label name -> volume in mL (3D) or area in mm^2 (2D images)."""
    sp = [float(s) for s in spacing]
    counts = np.bincount(label_map.ravel(), minlength=256)
    if label_map.ndim == 3:
        unit = sp[0] * sp[1] * sp[2] / 1000.0
    else:
        unit = sp[0] * sp[1]
    return {name: float(counts[idx] * unit) for idx, name in names.items() if idx > 0}
