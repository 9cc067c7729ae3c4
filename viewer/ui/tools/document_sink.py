"""The AnnotationSink on a label Document: every tool edit becomes one undoable, journalled Edit.

Brush strokes paint straight into the label map so the overlay follows the pointer; when
the stroke ends the touched slices become a single ``MaskEdit`` (one diff per slice, taken
against the slice as it was before the stroke) that is applied through the Document, so
undo removes the whole stroke and the store journals it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from viewer.labels.document import CompoundEdit, Document
from viewer.labels.labelmap import MaskEdit, slice_diff
from viewer.labels.model import (
    Box,
    LabelError,
    Point,
    Polygon,
    RoiEllipse,
    RoiRect,
    Ruler,
    in_plane_axes,
)
from viewer.ui.tools.base import BoxInfo
from viewer.ui.tools.planes import Plane

#: called with the (z, y, x) region whose mask voxels just changed (live overlay refresh)
PaintListener = Callable[[tuple[slice, slice, slice]], None]


def _t(v: np.ndarray) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(v, dtype=float))


class DocumentSink:
    """Turns tool intents into Document edits (see ``viewer.ui.tools.base.AnnotationSink``)."""

    def __init__(self, document: Document, on_painted: PaintListener | None = None) -> None:
        self.document = document
        self.on_painted = on_painted
        self._saved: dict[int, np.ndarray] | None = None  # z -> slice before the stroke
        self._touched: dict[int, np.ndarray] = {}  # z -> which pixels ``_saved`` holds
        self._bbox: dict[int, tuple[int, int, int, int]] = {}  # z -> y0, y1, x0, x1 touched
        self._description = "paint"

    # ---- vector annotations ----------------------------------------------------------------
    def add_box(self, lo_zyx: np.ndarray, hi_zyx: np.ndarray, label: int, dims: int) -> str:
        lo, hi = _t(lo_zyx), _t(hi_zyx)
        if dims == 2 and lo[0] == hi[0]:
            box = Box(label, corners=(*lo[1:], *hi[1:]), z=int(lo[0]))
        else:
            # A 2D box drawn on a coronal/sagittal slice is a 3D box one voxel thick.
            box = Box(label, corners=(*lo, *hi))
        return self.document.add(box).id

    def add_polygon(
        self, points_zyx: np.ndarray, label: int, plane: Plane, slice_index: int
    ) -> str:
        axis = plane.slice_axis
        u, v = in_plane_axes(axis)  # stored in array-axis order, whatever the view shows
        verts = tuple((float(p[u]), float(p[v])) for p in np.asarray(points_zyx, dtype=float))
        polygon = Polygon(label, z=int(slice_index), vertices=verts, axis=axis)
        return self.document.add(polygon).id

    def add_point(self, zyx: np.ndarray, label: int) -> str:
        return self.document.add(Point(label, zyx=_t(zyx))).id  # type: ignore[arg-type]

    def add_ruler(self, a_zyx: np.ndarray, b_zyx: np.ndarray, label: int) -> str:
        ruler = Ruler(label, start=_t(a_zyx), end=_t(b_zyx))  # type: ignore[arg-type]
        return self.document.add(ruler).id

    def add_roi(
        self, shape: str, lo_zyx: np.ndarray, hi_zyx: np.ndarray, plane: Plane, label: int
    ) -> str:
        lo, hi = _t(lo_zyx), _t(hi_zyx)
        axis = plane.slice_axis
        u, v = in_plane_axes(axis)
        cls = RoiEllipse if shape == "ellipse" else RoiRect
        roi = cls(label, z=int(lo[axis]), bounds=(lo[u], lo[v], hi[u], hi[v]), axis=axis)
        return self.document.add(roi).id

    # ---- mask strokes -----------------------------------------------------------------------
    @property
    def stroking(self) -> bool:
        return self._saved is not None

    def begin_stroke(self, description: str = "paint") -> None:
        if self._saved is not None:
            self.end_stroke()
        self._saved, self._touched, self._bbox = {}, {}, {}
        self._description = description

    def paint(self, region: tuple[slice, slice, slice], mask: np.ndarray, value: int) -> None:
        auto = self._saved is None
        if auto:
            self.begin_stroke()
        assert self._saved is not None
        arr = self.document.labelmap.array
        sub = arr[region]  # basic slicing: a view, writes go through
        m = np.broadcast_to(np.asarray(mask, dtype=bool), sub.shape)
        z0 = region[0].indices(arr.shape[0])[0]
        y0, y1, _ = region[1].indices(arr.shape[1])
        x0, x1, _ = region[2].indices(arr.shape[2])
        for i in range(sub.shape[0]):
            z = z0 + i
            if z not in self._saved:
                # Untouched pages of np.empty/np.zeros cost nothing: only painted pixels are
                # copied, so a stroke across many slices stays cheap.
                self._saved[z] = np.empty(arr.shape[1:], np.uint8)
                self._touched[z] = np.zeros(arr.shape[1:], bool)
                self._bbox[z] = (y0, y1, x0, x1)
            else:
                a, b, c, d = self._bbox[z]
                self._bbox[z] = (min(a, y0), max(b, y1), min(c, x0), max(d, x1))
            touched = self._touched[z][y0:y1, x0:x1]
            first = m[i] & ~touched
            self._saved[z][y0:y1, x0:x1][first] = sub[i][first]
            touched |= m[i]
        sub[m] = value
        if self.on_painted:
            self.on_painted(region)
        if auto:
            self.end_stroke()

    def end_stroke(self) -> None:
        saved, self._saved = self._saved, None
        if not saved:
            return
        arr = self.document.labelmap.array
        diffs = []
        for z in sorted(saved):
            by0, by1, bx0, bx1 = self._bbox[z]
            after = arr[z, by0:by1, bx0:bx1]
            # Pixels never painted keep their current value as their "before".
            before = np.where(self._touched[z][by0:by1, bx0:bx1], saved[z][by0:by1, bx0:bx1], after)
            d = slice_diff(z, before, after, by0, bx0)
            if d is not None:
                diffs.append(d)
        self._touched, self._bbox = {}, {}
        if diffs:
            # Applying writes the "after" bytes the map already holds: idempotent, and it
            # records the stroke for undo and tells the store to journal it.
            self.document.apply(MaskEdit(tuple(diffs), self._description))

    def cancel_stroke(self) -> None:
        saved, self._saved = self._saved, None
        if not saved:
            return
        arr = self.document.labelmap.array
        for z, before in saved.items():
            touched = self._touched[z]
            arr[z][touched] = before[touched]
        self._touched, self._bbox = {}, {}
        if self.on_painted:
            zs = sorted(saved)
            self.on_painted((slice(zs[0], zs[-1] + 1), slice(None), slice(None)))

    def interpolate(self, label: int, axis: int = 0) -> int:
        """Fill every gap between drawn slices of ``label`` along array ``axis`` (0: axial,
        1: coronal, 2: sagittal for an axial acquisition); one undo step.

        Returns the number of slices filled in."""
        lm = self.document.labelmap
        others = tuple(a for a in range(3) if a != axis)
        drawn = [int(s) for s in np.nonzero((lm.array == label).any(axis=others))[0]]
        if len(drawn) < 2:
            raise LabelError(f"label {label} must be drawn on at least two slices to interpolate")
        edits: list[MaskEdit] = []
        for s0, s1 in zip(drawn, drawn[1:], strict=False):
            if s1 - s0 > 1:
                edit = lm.interpolate_between_slices(label, s0, s1, axis)
                if not edit.empty:
                    edits.append((edit, s1 - s0 - 1))
        if not edits:
            return 0
        # The label map already holds the result; applying it again is idempotent.
        self.document.apply(
            edits[0][0]
            if len(edits) == 1
            else CompoundEdit(tuple(e for e, _ in edits), "interpolate")
        )
        if self.on_painted:
            region: list[slice] = [slice(None)] * 3
            region[axis] = slice(drawn[0], drawn[-1] + 1)
            self.on_painted(tuple(region))  # type: ignore[arg-type]
        return sum(n for _, n in edits)

    # ---- editing ----------------------------------------------------------------------------
    def boxes(self) -> list[BoxInfo]:
        out = []
        for a in self.document.annotations.values():
            if isinstance(a, Box):
                lo, hi = a.bounds_zyx()
                out.append(BoxInfo(a.id, lo, hi, a.source, a.status, a.label))
        return out

    def move_box(self, box_id: str, lo_zyx: np.ndarray, hi_zyx: np.ndarray) -> None:
        before = self.document.get(box_id)
        if not isinstance(before, Box):
            raise LabelError(f"annotation {box_id} is a {before.kind}, not a box")
        lo, hi = _t(lo_zyx), _t(hi_zyx)
        if before.z is not None and lo[0] == hi[0]:
            after = replace(before, corners=(*lo[1:], *hi[1:]), z=int(lo[0]))
        else:
            after = replace(before, corners=(*lo, *hi), z=None)
        self.document.update(after)  # a model box whose geometry changes becomes "edited"

    def set_status(self, annotation_id: str, status: str) -> None:
        self.document.set_status(annotation_id, status)

    def remove(self, annotation_id: str) -> None:
        self.document.remove(annotation_id)

    # ---- segment editor ---------------------------------------------------------------------
    def label_array(self) -> np.ndarray:
        return self.document.labelmap.array

    def apply_mask_edit(self, edit: MaskEdit) -> None:
        if edit.empty:
            return
        if self._saved is not None:
            self.end_stroke()  # a stroke in progress is its own undo step, before this one
        self.document.apply(edit)
