"""Thick slabs: the maximum (MIP), minimum (MinIP) or mean of the slices within a thickness in
millimetres around the current one, along any plane. Qt-free."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.ui.planes import Plane

#: mode -> the name the corner text and the tool bar use
SLAB_MODES: dict[str, str] = {"off": "Thin", "mip": "MIP", "minip": "MinIP", "mean": "Mean"}
#: a slab never reduces more slices than this (a thickness typo must not stall the view)
MAX_SLAB_SLICES = 256


@dataclass(frozen=True)
class Slab:
    """How thick each view is: ``mode`` one of ``SLAB_MODES``, ``thickness_mm`` > 0."""

    mode: str = "off"
    thickness_mm: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in SLAB_MODES:
            raise ValueError(f"unknown slab mode {self.mode!r}; expected one of {list(SLAB_MODES)}")
        if not np.isfinite(self.thickness_mm) or self.thickness_mm <= 0:
            raise ValueError(f"a slab thickness must be positive, got {self.thickness_mm}")

    @property
    def active(self) -> bool:
        return self.mode != "off"

    @property
    def label(self) -> str:
        """Corner text: "MIP 10 mm", or "" for a thin slice."""
        return f"{SLAB_MODES[self.mode]} {self.thickness_mm:g} mm" if self.active else ""

    def count(self, step_mm: float) -> int:
        """How many slices ``step_mm`` apart the slab spans (at least 1)."""
        if step_mm <= 0:
            return 1
        return int(min(max(1, round(self.thickness_mm / step_mm)), MAX_SLAB_SLICES))


def reduce_stack(stack: np.ndarray, mode: str, axis: int = 0) -> np.ndarray:
    """Max / min / mean of ``stack`` along ``axis`` (keeps that axis, length 1)."""
    if mode == "mip":
        return np.max(stack, axis=axis, keepdims=True)
    if mode == "minip":
        return np.min(stack, axis=axis, keepdims=True)
    if mode == "mean":
        return np.mean(stack, axis=axis, keepdims=True, dtype=np.float64).astype(np.float32)
    raise ValueError(f"no reduction for slab mode {mode!r}")


def slab_range(plane: Plane, index: int, slab: Slab) -> tuple[int, int]:
    """[lo, hi) slice indices of the slab centred on ``index`` (clipped to the volume)."""
    n = slab.count(plane.slice_spacing)
    lo = int(index) - (n - 1) // 2
    hi = lo + n
    return max(lo, 0), min(hi, plane.n_slices)


def slab_of(plane: Plane, array: np.ndarray, index: int, slab: Slab) -> np.ndarray:
    """The displayed (rows, cols) image of ``slab`` on ``plane`` around slice ``index``: the
    slices within the thickness reduced along the plane's normal, then flipped as
    ``Plane.slice_of`` shows a thin slice."""
    if not slab.active:
        return plane.slice_of(array, index)
    lo, hi = slab_range(plane, index, slab)
    sl: list[object] = [slice(None)] * array.ndim
    sl[plane.slice_axis] = slice(lo, hi)
    reduced = reduce_stack(array[tuple(sl)], slab.mode, axis=plane.slice_axis)
    return plane.slice_of(reduced, 0)
