"""SegmentEditor: runs the segment editor's operations (on a worker when heavy, under the
window's one progress bar) and keeps the live preview of grow from seeds.

Results are applied only if the labels did not change while they were computed (a counter
of Document edits), so a late result never overwrites what the user did meanwhile. Grow
from seeds reads the strokes the user paints with the ordinary brush: every edit while it
is on schedules a new preview (strokes coming faster than previews are coalesced: one runs
at a time, the latest strokes win), drawn as the "Grow from seeds (preview)" layer.
Accept writes the full-resolution result as one undo step; Cancel drops the preview.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from radlens_core.progress import CancelCheck, Cancelled, never_cancelled
from viewer.labels.grow import SeedGrower, SeedResult
from viewer.labels.labelmap import MaskEdit
from viewer.labels.mask_edits import apply_split, region_edit
from viewer.labels.model import LabelError
from viewer.ui.layers import Layer
from viewer.ui.tools.segment import Operation, operation_work

PREVIEW_LAYER = "Grow from seeds (preview)"
#: a label class with this name (any case) stands for "not the structure": its result is
#: background once accepted
BACKGROUND_NAME = "background"


class SegmentEditor(QObject):
    """Segment editor state of the open series (controller: AnnotationController)."""

    message_posted = Signal(str)
    #: a preview was drawn (or dropped): the panel updates its buttons and sentence
    seeds_changed = Signal()
    #: an operation's edit was applied (or refused): for the panel and tests
    operation_finished = Signal(str)

    def __init__(self, controller, services=None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.services = services
        self.generation = 0
        self.busy = 0
        self.seeds_on = False
        self.preview: SeedResult | None = None
        self._grower: SeedGrower | None = None
        self._preview_array: np.ndarray | None = None
        self._preview_running = False
        self._preview_wanted = False
        self._applying = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(60)  # coalesce a burst of edits (a stroke ending, an undo)
        self._timer.timeout.connect(self.update_preview)
        controller.document_opened.connect(self._opened)
        controller.document_changed.connect(self._edited)
        self._opened()

    # ---- plumbing ------------------------------------------------------------------------
    def _opened(self) -> None:
        self.generation += 1
        self.cancel_seeds()
        self._grower = None
        if self.controller.ctx is not None:
            self.controller.ctx.run_job = self.run_job

    def _edited(self) -> None:
        self.generation += 1
        if self.seeds_on and not self._applying:
            self._timer.start()

    def _say(self, text: str) -> None:
        self.message_posted.emit(text)

    def run_job(
        self,
        label: str,
        work: Callable[[CancelCheck], Any],
        done: Callable[[Any], None],
        heavy: bool,
    ) -> None:
        """Compute ``work`` (on a worker when ``heavy`` and a window is there) and hand the
        result to ``done`` unless the labels changed meanwhile."""
        document, generation = self.controller.document, self.generation

        def finish(result: Any) -> None:
            self.busy = max(self.busy - 1, 0)
            if self.controller.document is not document or self.generation != generation:
                self._say(f"{label.rstrip('…')} was dropped: the labels changed meanwhile.")
                self.operation_finished.emit("dropped")
                return
            try:
                done(result)
            except LabelError as exc:
                self._say(str(exc))
                self.operation_finished.emit("failed")
                return
            self.operation_finished.emit("done")

        def failed(message: str) -> None:
            self.busy = max(self.busy - 1, 0)
            self._say(message)
            self.operation_finished.emit("failed")

        self.busy += 1
        if not heavy or self.services is None:
            try:
                result = work(never_cancelled)
            except (LabelError, Cancelled) as exc:
                failed(str(exc) or "Cancelled.")
                return
            finish(result)
            return
        task = self.services.run(lambda tctx: work(tctx.cancelled), label, finish, on_failed=failed)
        task.was_cancelled.connect(lambda: failed("Cancelled."))

    def _apply(self, edit: MaskEdit) -> None:
        if self.controller.sink is None:
            raise LabelError("open a series first")
        if edit.empty:
            self._say("Nothing changed.")
            return
        self.controller.sink.apply_mask_edit(edit)

    # ---- one-shot operations ---------------------------------------------------------------
    def apply(self, op: Operation) -> None:
        """Run ``op`` on the current label (one undo step)."""
        ctrl = self.controller
        if ctrl.document is None or ctrl.ctx is None:
            self._say("Open a series first.")
            return
        ctx = ctrl.ctx
        try:
            work = operation_work(
                op, ctrl.document.labelmap.array, int(ctx.label), ctx.spacing_zyx, ctx.hu
            )
        except LabelError as exc:
            self._say(str(exc))
            return
        heavy = ctrl.document.labelmap.array.size > 2_000_000
        self.run_job(f"{op.title}…", work, self._apply, heavy)

    def split_islands(self, min_mm3: float = 0.0) -> None:
        """Every island of the current label as its own label (new classes; one undo step)."""
        from viewer.labels.edit_ops import split_islands

        ctrl = self.controller
        if ctrl.document is None or ctrl.ctx is None:
            return
        document, label, spacing = ctrl.document, int(ctrl.ctx.label), ctrl.ctx.spacing_zyx
        array = document.labelmap.array

        def work(cancelled: CancelCheck) -> np.ndarray:
            if not (array == label).any():
                raise LabelError(f"label {label} is empty: paint it first")
            return split_islands(array == label, spacing, min_mm3)

        def done(parts: np.ndarray) -> None:
            used = apply_split(document, label, parts)
            self._say(f"Split into {len(used)} label(s).")

        self.run_job("Splitting islands…", work, done, array.size > 2_000_000)

    # ---- grow from seeds --------------------------------------------------------------------
    def start_seeds(self) -> None:
        """Turn on the live preview: strokes painted with the brush are the seeds."""
        ctx = self.controller.ctx
        if ctx is None or ctx.hu is None:
            self._say("Grow from seeds needs an open greyscale series.")
            return
        if self._grower is None or self._grower.image is not ctx.hu:
            self._grower = SeedGrower(ctx.hu, ctx.spacing_zyx)
        self.seeds_on = True
        self.update_preview()
        self.seeds_changed.emit()

    def update_preview(self) -> None:
        """Grow the current strokes at preview resolution (one at a time, latest wins)."""
        if not self.seeds_on or self._grower is None or self.controller.document is None:
            return
        if self._preview_running:
            self._preview_wanted = True
            return
        array = self.controller.document.labelmap.array
        if not array.any():
            self._show(None)
            self._say("Paint strokes of the structure and of its surroundings (two labels).")
            return
        seeds, grower = array.copy(), self._grower
        self._preview_running = True
        document = self.controller.document

        def work(cancelled: CancelCheck) -> SeedResult:
            return grower.preview(seeds, cancelled)

        def done(result: SeedResult | None) -> None:
            self._preview_running = False
            if result is not None and self.seeds_on and document is self.controller.document:
                self._show(result)
            if self._preview_wanted:
                self._preview_wanted = False
                self.update_preview()

        def failed(message: str) -> None:
            self._preview_running = False
            self._say(message)

        if self.services is None:
            try:
                done(work(never_cancelled))
            except LabelError as exc:
                failed(str(exc))
            return
        task = self.services.run(
            lambda t: work(t.cancelled), "Growing from seeds (preview)…", done, on_failed=failed
        )
        task.was_cancelled.connect(lambda: done(None))

    def _show(self, result: SeedResult | None) -> None:
        self.preview = result
        layers = self.controller.state.layers
        document = self.controller.document
        if result is None or document is None:
            if PREVIEW_LAYER in layers.names():
                layers.remove(PREVIEW_LAYER)
            self._preview_array = None
            self.seeds_changed.emit()
            return
        if self._preview_array is None or self._preview_array.shape != document.shape:
            self._preview_array = np.zeros(document.shape, np.uint8)
        else:
            self._preview_array[...] = 0
        self._preview_array[result.region] = result.values
        colours = self.controller._colours()
        # The background label's region is "everything else": outlining it only clutters.
        hidden = frozenset(c.index for c in document.label_set if c.name.lower() == BACKGROUND_NAME)
        if PREVIEW_LAYER in layers.names():
            layers.update(
                PREVIEW_LAYER, data=self._preview_array, colours=colours, hidden_labels=hidden
            )
        else:
            layers.add(
                Layer(
                    PREVIEW_LAYER,
                    "labels",
                    self._preview_array,
                    opacity=0.9,
                    colours=colours,
                    outline=True,
                    hidden_labels=hidden,
                )
            )
        step = "x".join(str(s) for s in result.step[::-1])
        self._say(
            f"Grow from seeds: preview of {len(result.labels)} label(s) "
            f"(every {step} voxel); Accept writes it at full resolution."
        )
        self.seeds_changed.emit()

    def accept_seeds(self) -> None:
        """Grow at full resolution and write the result (one undo step)."""
        ctrl = self.controller
        if not self.seeds_on or self._grower is None or ctrl.document is None:
            return
        document, grower, coarse = ctrl.document, self._grower, self.preview
        array = document.labelmap.array
        seeds = array.copy()
        background = {c.index for c in document.label_set if c.name.lower() == BACKGROUND_NAME}

        def work(cancelled: CancelCheck) -> MaskEdit:
            result = grower.refine(seeds, coarse, cancelled)
            current = array[result.region]
            values = current.copy()
            values[np.isin(current, result.labels)] = 0
            grown = result.values > 0
            values[grown] = result.values[grown]
            values[np.isin(values, list(background))] = 0
            return region_edit(array, result.region, values, "grow from seeds")

        def done(edit: MaskEdit) -> None:
            self._applying = True
            try:
                self._apply(edit)
            finally:
                self._applying = False
            self.cancel_seeds()
            self._say("Grow from seeds accepted (Undo takes it back).")

        self.run_job("Growing from seeds…", work, done, array.size > 2_000_000)

    def cancel_seeds(self) -> None:
        self.seeds_on = False
        self._timer.stop()
        self._preview_wanted = False
        self._show(None)
