"""Copies from a GPU to host memory for the engine's full-resolution results.

A 300x512x512 float32 heat map took 0.24 s to come back with ``tensor.cpu()`` on an H200
(the driver stages pageable memory itself, slowly) and 6 ms into pinned memory; pinning
300 MB for each result took 0.31 s. So results come back through one small pinned buffer
per process, allocated once and reused: GPU -> pinned chunk (DMA) -> the result's own numpy
array (a host memcpy). Only the box around a map's non-zero values is copied at all.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

#: Bytes of the reusable pinned buffer (allocated on a GPU run's first copy).
STAGING_BYTES = 32 << 20

_LOCK = threading.Lock()
_STAGING: dict[str, Any] = {}  # "buffer": pinned uint8 tensor, or "failed": True


def numpy_dtype(t: Any) -> np.dtype:
    """The numpy dtype of a torch tensor's elements."""
    import torch

    return np.dtype(torch.empty((), dtype=t.dtype).numpy().dtype)


def staged_copy(src: Any, out: np.ndarray, buffer: Any) -> np.ndarray:
    """Copy tensor ``src`` into the C-contiguous array ``out`` (same size and element type)
    through ``buffer`` (a uint8 tensor, pinned for a GPU source), one buffer-full at a time."""
    import torch

    flat_src = src.contiguous().reshape(-1)
    flat_out = torch.from_numpy(out.reshape(-1))
    per = buffer.numel() // flat_src.element_size()
    if per == 0:
        raise ValueError("the staging buffer holds less than one element")
    stage = buffer[: per * flat_src.element_size()].view(flat_src.dtype)
    for start in range(0, flat_src.numel(), per):
        n = min(per, flat_src.numel() - start)
        stage[:n].copy_(flat_src[start : start + n])  # synchronous: the DMA has finished
        flat_out[start : start + n].copy_(stage[:n])
    return out


def _pinned_buffer() -> Any | None:
    import torch

    if "buffer" in _STAGING or "failed" in _STAGING:
        return _STAGING.get("buffer")
    try:
        _STAGING["buffer"] = torch.empty(STAGING_BYTES, dtype=torch.uint8, pin_memory=True)
    except RuntimeError:  # no pinnable memory (or no CUDA host allocator): plain copies
        _STAGING["failed"] = True
        return None
    return _STAGING["buffer"]


def to_host(t: Any) -> np.ndarray:
    """``t`` as a numpy array in host memory (a CPU tensor's own memory, unchanged)."""
    if t.device.type == "cpu":
        return t.numpy()
    if t.device.type != "cuda" or t.numel() * t.element_size() <= STAGING_BYTES // 4:
        return t.cpu().numpy()  # small copies: staging saves nothing
    with _LOCK:
        buffer = _pinned_buffer()
        if buffer is None:
            return t.cpu().numpy()
        return staged_copy(t, np.empty(tuple(t.shape), dtype=numpy_dtype(t)), buffer)


def nonzero_to_host(t: Any, crop_on_cpu: bool = False) -> np.ndarray:
    """A device tensor as a host array, copying only the box around its non-zero values
    (the rest is zeros the host allocates lazily): a nodule's label map fills a small part of
    a 300x512x512 grid. A CPU tensor is returned as is (``crop_on_cpu``: through the same
    cropping, for tests)."""
    import torch

    if t.device.type == "cpu" and not crop_on_cpu:
        return t.numpy()
    nz = t != 0
    box = []
    for axis in range(t.ndim):
        other = tuple(a for a in range(t.ndim) if a != axis)
        hit = torch.nonzero(nz.any(dim=other) if other else nz).flatten()
        if hit.numel() == 0:
            return np.zeros(tuple(t.shape), dtype=numpy_dtype(t))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    box_t = tuple(box)
    if all(b.stop - b.start == n for b, n in zip(box_t, t.shape, strict=True)):
        return to_host(t)
    out = np.zeros(tuple(t.shape), dtype=numpy_dtype(t))
    out[box_t] = to_host(t[box_t].contiguous())
    return out
