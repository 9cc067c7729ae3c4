"""A promptable model's intensity steps, fitted once per image: a z-score or min-max step
takes the whole image's statistics (as nnInteractive normalises the image it is given, once),
never the patch's -- a patch in the lung and one in the mediastinum would otherwise scale the
same tissue differently from click to click. The fitted steps are kept per (image, model)
between clicks, so a click never walks the whole series again."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: z slices per pass when fitting (bounds the float copy to a slab, never the series)
CHUNK = 16
#: images whose fitted steps are kept (the series open now and the one before)
KEEP = 2


@dataclass(frozen=True)
class Fitted:
    """Intensity steps with their statistics: ("clip_scale", a_min, a_max, b_min, b_max,
    clip) or ("affine", offset, scale) (x - offset) * scale (a fitted z-score or min-max)."""

    ops: tuple[tuple[Any, ...], ...]

    def apply(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, np.float32)
        for op in self.ops:
            if op[0] == "clip_scale":
                _, a_min, a_max, b_min, b_max, clip = op
                x = (x - a_min) / (a_max - a_min) * (b_max - b_min) + b_min
                if clip:
                    x = np.clip(x, min(b_min, b_max), max(b_min, b_max))
            else:
                x = (x - op[1]) * op[2]
        return x.astype(np.float32, copy=False)


def fit(image: np.ndarray, steps: Sequence[dict[str, Any]]) -> Fitted:
    """The card's steps with each z-score / min-max step's statistics taken over the whole
    image (after the steps before it), in slabs of ``CHUNK`` slices."""
    ops: list[tuple[Any, ...]] = []
    for s in steps:
        op = s.get("op")
        if op == "clip_scale":
            ops.append(
                (
                    "clip_scale",
                    float(s["a_min"]),
                    float(s["a_max"]),
                    float(s.get("b_min", 0.0)),
                    float(s.get("b_max", 1.0)),
                    bool(s.get("clip", True)),
                )
            )
        elif op in ("zscore", "minmax"):
            before = Fitted(tuple(ops))
            n, total, squares, lo, hi = 0, 0.0, 0.0, np.inf, -np.inf
            for z in range(0, image.shape[0], CHUNK):
                slab = before.apply(image[z : z + CHUNK]).astype(np.float64)
                n += slab.size
                total += float(slab.sum())
                squares += float(np.square(slab).sum())
                lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
            if op == "zscore":
                mean = total / max(n, 1)
                std = float(np.sqrt(max(squares / max(n, 1) - mean * mean, 0.0)))
                ops.append(("affine", mean, 1.0 / std if std > 1e-8 else 1.0))
            else:
                ops.append(("affine", lo, 1.0 / (hi - lo) if hi > lo else 1.0))
    return Fitted(tuple(ops))


class FittedCache:
    """Fitted steps per (image, model): an entry holds its image weakly and answers only for
    that very array (a new series, or the same id reused after one was freed, fits again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str], tuple[weakref.ref, Fitted]] = {}

    def get(self, image: np.ndarray, model_key: str, steps: Sequence[dict[str, Any]]) -> Fitted:
        key = (id(image), model_key)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0]() is image:
                return hit[1]
        fitted = fit(image, steps)
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[0]() is not None}
            while len(self._entries) >= KEEP * 4:
                self._entries.pop(next(iter(self._entries)))
            try:
                self._entries[key] = (weakref.ref(image), fitted)
            except TypeError:  # an array view that cannot be referenced weakly: not kept
                pass
        return fitted

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: the engine's one cache
FITTED = FittedCache()
