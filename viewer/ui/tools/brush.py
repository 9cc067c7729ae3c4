"""Mask tools: brush, eraser and threshold-limited brush (disc on the slice, or a sphere).

A stroke (press → drag → release) is one undoable edit: the sink opens it on press, each
dab paints into the label map at once (so the overlay follows the pointer), and release
closes it. Dabs are spaced along the pointer's path so a fast drag leaves no gaps.
"""

from __future__ import annotations

import numpy as np

from viewer.ui.tools.base import PlaneEvent, Preview, Tool
from viewer.ui.tools.planes import Plane, ball_region

MIN_RADIUS_MM, MAX_RADIUS_MM = 0.5, 100.0


def disc_region(
    plane: Plane, slice_index: int, center_rc: tuple[float, float], radius_mm: float
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """(region, mask) of a disc on one slice, as a 3D region one voxel thick."""
    pr, pc = plane.pixel_mm
    rows, cols = plane.size
    er, ec = radius_mm / pr, radius_mm / pc
    r0, r1 = (
        max(int(np.floor(center_rc[0] - er)), 0),
        min(int(np.ceil(center_rc[0] + er)) + 1, rows),
    )
    c0, c1 = (
        max(int(np.floor(center_rc[1] - ec)), 0),
        min(int(np.ceil(center_rc[1] + ec)) + 1, cols),
    )
    r1, c1 = max(r1, r0), max(c1, c0)
    rr = np.arange(r0, r1)[:, None]
    cc = np.arange(c0, c1)[None, :]
    disc = ((rr - center_rc[0]) * pr) ** 2 + ((cc - center_rc[1]) * pc) ** 2 <= radius_mm**2
    cr, cc_ = int(round(center_rc[0])), int(round(center_rc[1]))
    if r0 <= cr < r1 and c0 <= cc_ < c1:
        disc[cr - r0, cc_ - c0] = True  # a brush smaller than a pixel still paints its pixel
    region: list[slice] = [slice(0, 0)] * 3
    s, r, c = plane.axes
    region[s] = slice(int(slice_index), int(slice_index) + 1)
    region[r], region[c] = slice(r0, r1), slice(c0, c1)
    mask = np.expand_dims(disc, 0)  # (1, rows, cols) in (slice, row, col) order
    # Reorder (slice, row, col) into the volume's (z, y, x) axis order.
    mask = np.moveaxis(mask, (0, 1, 2), (s, r, c))
    return tuple(region), mask  # type: ignore[return-value]


class BrushTool(Tool):
    """Paint (label), erase (0) or paint only where the intensity lies in ``ctx.threshold``."""

    def __init__(self, ctx, mode: str = "paint") -> None:
        super().__init__(ctx)
        if mode not in ("paint", "erase", "threshold"):
            raise ValueError(f"brush mode must be paint, erase or threshold, not {mode!r}")
        self.mode = mode
        self.name = {"paint": "brush", "erase": "eraser", "threshold": "threshold_brush"}[mode]
        self.title = {"paint": "Brush", "erase": "Eraser", "threshold": "Threshold brush"}[mode]
        self.last: PlaneEvent | None = None
        self.cursor: PlaneEvent | None = None

    @property
    def busy(self) -> bool:
        return self.last is not None

    @property
    def value(self) -> int:
        return 0 if self.mode == "erase" else int(self.ctx.label)

    def press(self, ev: PlaneEvent) -> bool:
        self.ctx.sink.begin_stroke()
        self.last = self.cursor = ev
        self._dab(ev.plane, ev.slice_index, ev.rc)
        return True

    def move(self, ev: PlaneEvent) -> bool:
        self.cursor = ev
        if self.last is None:
            return False
        if ev.plane != self.last.plane or ev.slice_index != self.last.slice_index:
            self._dab(ev.plane, ev.slice_index, ev.rc)  # scrolled mid-stroke: no line across
        else:
            self._line(self.last, ev)
        self.last = ev
        return True

    def hover(self, ev: PlaneEvent) -> None:
        self.cursor = ev

    def release(self, ev: PlaneEvent) -> bool:
        if self.last is None:
            return False
        self.last = None
        self.ctx.sink.end_stroke()
        return True

    def cancel(self) -> None:
        if self.last is not None:
            self.last = None
            self.ctx.sink.cancel_stroke()

    def wants_key(self, key: str) -> bool:
        return key in ("[", "]") or super().wants_key(key)

    def key(self, key: str) -> bool:
        if key in ("[", "]"):
            factor = 1 / 1.25 if key == "[" else 1.25
            r = self.ctx.brush_radius_mm * factor
            self.ctx.brush_radius_mm = float(min(max(r, MIN_RADIUS_MM), MAX_RADIUS_MM))
            return True
        return super().key(key)

    def _line(self, a: PlaneEvent, b: PlaneEvent) -> None:
        pr, pc = a.plane.pixel_mm
        length_mm = float(np.hypot((b.row - a.row) * pr, (b.col - a.col) * pc))
        # Dabs half a radius apart overlap enough to leave a solid line.
        n = max(int(np.ceil(length_mm / max(self.ctx.brush_radius_mm / 2, 1e-3))), 1)
        for t in np.linspace(0, 1, n + 1)[1:]:
            rc = (a.row + t * (b.row - a.row), a.col + t * (b.col - a.col))
            self._dab(a.plane, a.slice_index, rc)

    def _dab(self, plane: Plane, slice_index: int, rc: tuple[float, float]) -> None:
        if self.ctx.brush_3d and plane.shape[0] > 1:
            region, mask = ball_region(
                plane.shape,
                plane.spacing_zyx,
                plane.to_volume(rc[0], rc[1], slice_index),
                self.ctx.brush_radius_mm,
            )
        else:
            region, mask = disc_region(plane, slice_index, rc, self.ctx.brush_radius_mm)
        if self.mode == "threshold" and self.ctx.hu is not None:
            lo, hi = sorted(self.ctx.threshold)
            values = self.ctx.hu[region]
            mask = mask & (values >= lo) & (values <= hi)
        if mask.any():
            self.ctx.sink.paint(region, mask, self.value)

    def preview(self) -> list[Preview]:
        ev = self.cursor
        if ev is None:
            return []
        pr, pc = ev.plane.pixel_mm
        r = self.ctx.brush_radius_mm
        return [
            Preview(
                "circle",
                ev.plane.name,
                ev.slice_index,
                (ev.rc,),
                f"{r:.1f} mm{' sphere' if self.ctx.brush_3d else ''}",
                radius_rc=(r / pr, r / pc),
            )
        ]
