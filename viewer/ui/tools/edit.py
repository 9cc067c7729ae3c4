"""Select and edit boxes (the user's and the model's): move, resize by handles, accept/reject/delete."""

from __future__ import annotations

import numpy as np

from viewer.ui.tools.base import BoxInfo, PlaneEvent, Preview, Tool
from viewer.ui.tools.planes import Plane, box_on_plane


def _edges(plane: Plane, rect: tuple[float, float, float, float]) -> tuple[float, ...]:
    """Pixel-edge rectangle (top, left, bottom, right) around inclusive voxel rows/cols."""
    r0, c0, r1, c1 = rect
    return min(r0, r1) - 0.5, min(c0, c1) - 0.5, max(r0, r1) + 0.5, max(c0, c1) + 0.5


class BoxEditTool(Tool):
    """Click a box to select it; drag inside to move it, drag an edge or corner to resize it.

    Keys on the selected box: A accept, X reject, Delete remove. A drag is one edit, sent
    on release, so undo restores the box where it was before the drag.
    """

    name, title = "select", "Select / edit boxes"
    pans = True

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.box: BoxInfo | None = None
        self.grab: tuple[bool, bool, bool, bool] | None = None  # top, left, bottom, right
        self.anchor: PlaneEvent | None = None
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None
        self.plane: Plane | None = None
        self.slice_index = 0

    @property
    def busy(self) -> bool:
        return self.anchor is not None

    def cancel(self) -> None:
        self.anchor = self.grab = None
        self.lo = self.hi = None

    def _tolerance(self, plane: Plane) -> float:
        return max(1.0, 0.012 * max(plane.size))

    def hit(self, ev: PlaneEvent) -> tuple[BoxInfo, tuple[bool, bool, bool, bool]] | None:
        """The box under the pointer and which of its edges are grabbed (none = move)."""
        tol = self._tolerance(ev.plane)
        boxes = self.ctx.sink.boxes()
        # The selected box wins ties, so a handle of a small selected box inside a big one works.
        boxes.sort(key=lambda b: b.id != self.ctx.selected)
        for box in boxes:
            rect = box_on_plane(ev.plane, box.lo_zyx, box.hi_zyx, ev.slice_index)
            if rect is None:
                continue
            top, left, bottom, right = _edges(ev.plane, rect)
            if not (top - tol <= ev.row <= bottom + tol and left - tol <= ev.col <= right + tol):
                continue
            grab = (
                abs(ev.row - top) <= tol,
                abs(ev.col - left) <= tol,
                abs(ev.row - bottom) <= tol,
                abs(ev.col - right) <= tol,
            )
            inside = top <= ev.row <= bottom and left <= ev.col <= right
            if any(grab) or inside:
                return box, grab
        return None

    def press(self, ev: PlaneEvent) -> bool:
        found = self.hit(ev)
        if found is None:
            self.ctx.selected = None
            self.box = None
            return False  # empty space: let the view pan
        self.box, self.grab = found
        self.ctx.selected = self.box.id
        self.anchor, self.plane, self.slice_index = ev, ev.plane, ev.slice_index
        self.lo = np.asarray(self.box.lo_zyx, dtype=float)
        self.hi = np.asarray(self.box.hi_zyx, dtype=float)
        return True

    def move(self, ev: PlaneEvent) -> bool:
        if self.anchor is None or self.box is None:
            return False
        plane = self.anchor.plane
        _, ra, ca = plane.axes
        lo = np.asarray(self.box.lo_zyx, dtype=float)
        hi = np.asarray(self.box.hi_zyx, dtype=float)
        d_row = round(ev.row - self.anchor.row)
        d_col = round(ev.col - self.anchor.col)
        top, left, bottom, right = self.grab or (False, False, False, False)
        if not any((top, left, bottom, right)):
            rows, cols = plane.size
            # Keep the whole box inside the image while moving it.
            d_row = int(np.clip(d_row, -lo[ra], rows - 1 - hi[ra]))
            d_col = int(np.clip(d_col, -lo[ca], cols - 1 - hi[ca]))
            lo[ra] += d_row
            hi[ra] += d_row
            lo[ca] += d_col
            hi[ca] += d_col
        else:
            rows, cols = plane.size
            if top:
                lo[ra] = np.clip(lo[ra] + d_row, 0, hi[ra])
            if bottom:
                hi[ra] = np.clip(hi[ra] + d_row, lo[ra], rows - 1)
            if left:
                lo[ca] = np.clip(lo[ca] + d_col, 0, hi[ca])
            if right:
                hi[ca] = np.clip(hi[ca] + d_col, lo[ca], cols - 1)
        self.lo, self.hi = lo, hi
        return True

    def release(self, ev: PlaneEvent) -> bool:
        if self.anchor is None or self.box is None:
            return False
        self.move(ev)
        lo, hi, box = self.lo, self.hi, self.box
        self.cancel()
        if lo is not None and hi is not None:
            if not (np.allclose(lo, box.lo_zyx) and np.allclose(hi, box.hi_zyx)):
                self.ctx.sink.move_box(box.id, lo, hi)
                self.ctx.changed = [box.id]
        return True

    def wants_key(self, key: str) -> bool:
        if self.ctx.selected is not None and key in ("A", "X", "Delete", "Backspace"):
            return True
        return super().wants_key(key)

    def key(self, key: str) -> bool:
        target = self.ctx.selected
        if target is not None and not self.busy:
            status = {"A": "accepted", "X": "rejected"}.get(key.upper())
            if status:
                self.ctx.sink.set_status(target, status)
                self.ctx.changed = [target]
                return True
            if key in ("Delete", "Backspace"):
                self.ctx.sink.remove(target)
                self.ctx.selected = None
                return True
        return super().key(key)

    def preview(self) -> list[Preview]:
        if self.anchor is None or self.lo is None or self.hi is None or self.plane is None:
            return []
        rect = box_on_plane(self.plane, self.lo, self.hi, self.slice_index)
        if rect is None:
            return []
        top, left, bottom, right = _edges(self.plane, rect)
        return [
            Preview(
                "rect", self.plane.name, self.slice_index, ((top, left), (bottom, right)), "edit"
            )
        ]
