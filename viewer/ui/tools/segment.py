"""Segment editor tools (Qt-free): click-to-segment, pick an island, and the panel's
one-shot operations on the current label.

Each operation is computed by ``work(cancelled) -> MaskEdit`` (reading the label map and
the image, writing nothing) and applied by ``done`` as one undo step, through
``ToolContext.run_job``: the window runs heavy work on a worker under its progress bar and
drops a result when the labels changed meanwhile. A promptable model plugs in the same way:
a tool whose ``work`` asks the engine for a mask and returns its ``label_mask_edit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from radlens_core.progress import CancelCheck, Cancelled
from viewer.labels import edit_ops
from viewer.labels.labelmap import MaskEdit
from viewer.labels.mask_edits import label_mask_edit
from viewer.labels.model import LabelError
from viewer.labels.region_grow import RegionGrower
from viewer.ui.tools.base import PlaneEvent, Preview, Tool, ToolContext

#: regions up to this many voxels are computed at once on the UI thread (well under a
#: frame); bigger ones on a worker
SYNC_VOXELS = 2_000_000


def _label_mask(array: np.ndarray, label: int) -> np.ndarray:
    return array == label


class ClickSegmentTool(Tool):
    """Click: grow a region from the clicked voxel's statistics and add it to the current
    label (2D on the slice shown, or 3D); Shift+click: remove the grown region from it."""

    name, title = "click_segment", "Click to segment"

    def __init__(self, ctx: ToolContext) -> None:
        super().__init__(ctx)
        self.cursor: PlaneEvent | None = None
        self._grower: RegionGrower | None = None

    def grower(self) -> RegionGrower:
        """The image's RegionGrower (made once per image)."""
        if self.ctx.hu is None:
            raise LabelError("click-to-segment needs a greyscale image")
        if self._grower is None or self._grower.image is not self.ctx.hu:
            self._grower = RegionGrower(self.ctx.hu, self.ctx.spacing_zyx)
        return self._grower

    def press(self, ev: PlaneEvent) -> bool:
        ctx = self.ctx
        grower = self.grower()
        label, remove = int(ctx.label), ev.shift
        axis = None if ctx.segment_3d else ev.plane.slice_axis
        zyx, tolerance = ev.zyx, float(ctx.tolerance)
        array = ctx.sink.label_array()
        what = "remove region" if remove else "grow region"

        def work(cancelled: CancelCheck) -> MaskEdit:
            # A click refines what is there (on an empty label it grows from the clicked voxel's
            # statistics; at the label's border it fills the missed rim); Shift+click removes
            # the region grown from the clicked voxel.
            if remove:
                grown = grower.grow(zyx, tolerance, axis, cancelled)
            else:
                grown = grower.refine(zyx, array, label, True, tolerance, axis, cancelled)
            current = array[grown.region] == label
            new = current & ~grown.mask if remove else current | grown.mask
            return label_mask_edit(
                array, label, new, f"{what} ({'3D' if axis is None else '2D'})", region=grown.region
            )

        heavy = axis is None and array.size > SYNC_VOXELS
        ctx.run_job(
            f"Growing a region from the click{' in 3D' if heavy else ''}…",
            work,
            ctx.sink.apply_mask_edit,
            heavy,
        )
        return True

    def hover(self, ev: PlaneEvent) -> None:
        self.cursor = ev

    def preview(self) -> list[Preview]:
        ev = self.cursor
        if ev is None:
            return []
        where = "3D" if self.ctx.segment_3d else "2D"
        return [
            Preview(
                "point",
                ev.plane.name,
                ev.slice_index,
                (ev.rc,),
                f"grow {where} ±{self.ctx.tolerance:g}σ",
            )
        ]


class IslandTool(Tool):
    """Click an island of the current label: keep only it, or remove it (``ctx.island_mode``);
    in 3D, or on the slice shown (``ctx.segment_3d`` off)."""

    name, title = "island", "Pick island"

    def press(self, ev: PlaneEvent) -> bool:
        ctx = self.ctx
        mode, label = ctx.island_mode, int(ctx.label)
        if mode not in ("keep_selected", "remove_selected"):
            raise LabelError(f"a click keeps or removes an island, not {mode!r}")
        at = ev.zyx
        array = ctx.sink.label_array()
        spacing = ctx.spacing_zyx
        axis = None if ctx.segment_3d else ev.plane.slice_axis

        def work(cancelled: CancelCheck) -> MaskEdit:
            if axis is None:
                mask, region = _label_mask(array, label), None
            else:  # the slice shown only: cheap whatever the series' size
                index = int(round(float(at[axis])))
                cut = [slice(None)] * 3
                cut[axis] = slice(index, index + 1)
                region = tuple(cut)
                mask = array[region] == label
            if cancelled():
                raise Cancelled()
            point = list(at)
            if axis is not None:
                point[axis] = 0
            new = edit_ops.islands(mask, mode, spacing, at_zyx=point)
            word = "keep island" if mode == "keep_selected" else "remove island"
            where = "3D" if axis is None else "2D"
            return label_mask_edit(array, label, new, f"{word} ({where})", region=region)  # type: ignore[arg-type]

        heavy = axis is None and array.size > SYNC_VOXELS
        ctx.run_job("Finding islands…", work, ctx.sink.apply_mask_edit, heavy)
        return True


# ---- the panel's operations ----------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    """One panel operation on the current label, with its settings."""

    kind: str  # islands | margin | hollow | smooth | logical | fill_holes
    mode: str = ""  # island mode, hollow mode, smoothing method, logical op
    mm: float = 0.0  # margin (+ grow, - shrink), shell thickness, kernel size
    min_mm3: float = 0.0
    other: int = 0  # the other label of a logical operator
    axis: int | None = None  # fill holes per slice along this axis (None: 3D)

    @property
    def title(self) -> str:
        return {
            "islands": "Islands",
            "margin": "Margin",
            "hollow": "Hollow",
            "smooth": "Smoothing",
            "logical": "Logical operator",
            "fill_holes": "Fill holes",
        }.get(self.kind, self.kind)


OPERATION_KINDS = ("islands", "margin", "hollow", "smooth", "logical", "fill_holes")


def operation_work(
    op: Operation, array: np.ndarray, label: int, spacing_zyx, image: np.ndarray | None
) -> Callable[[CancelCheck], MaskEdit]:
    """``work(cancelled)`` computing ``op`` on ``label`` as one MaskEdit (split islands is
    the panel's own: it adds label classes)."""
    if op.kind not in OPERATION_KINDS:
        raise LabelError(f"unknown segment editor operation {op.kind!r}")

    def work(cancelled: CancelCheck) -> MaskEdit:
        mask = array == label
        if not mask.any() and not (op.kind == "logical" and op.mode in ("union", "invert")):
            raise LabelError(f"label {label} is empty: paint it first")
        if cancelled():
            raise Cancelled()
        if op.kind == "islands":
            new = edit_ops.islands(mask, op.mode, spacing_zyx, op.min_mm3)
        elif op.kind == "margin":
            new = edit_ops.margin(mask, op.mm, spacing_zyx)
        elif op.kind == "hollow":
            new = edit_ops.hollow(mask, op.mm, spacing_zyx, op.mode or "inside")
        elif op.kind == "smooth":
            new = edit_ops.smooth(mask, op.mode, op.mm, spacing_zyx)
        elif op.kind == "fill_holes":
            new = edit_ops.fill_holes(mask, op.axis)
        else:
            within = None
            if op.mode == "invert":
                if image is None:
                    raise LabelError("inverting within the body needs a greyscale image")
                within = edit_ops.body_mask(image)
            elif op.other == label or op.other <= 0:
                raise LabelError("choose another label to combine with")
            new = edit_ops.combine(mask, array == op.other, op.mode, within)
        if cancelled():
            raise Cancelled()
        # A union takes the other label's voxels (a voxel has one label); the rest protect them.
        overwrite = op.kind == "logical" and op.mode == "union"
        return label_mask_edit(
            array, label, new, f"{op.title.lower()} {op.mode}".strip(), overwrite=overwrite
        )

    return work
