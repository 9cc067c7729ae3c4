"""The Prompt tool (Qt-free): clicks (Shift = negative) and a dragged box turn into a 3D mask
of the current label by a promptable model (``inference.interactive``); every new prompt
refines the mask (the label's current mask is the model's previous-mask input) and is one
undo step. The model runs on a worker through ``ToolContext.run_job``; Escape or a change of
label starts a new structure (the prompts are forgotten, the mask stays)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.progress import CancelCheck, Cancelled
from viewer.labels.labelmap import MaskEdit
from viewer.labels.mask_edits import label_mask_edit
from viewer.labels.model import LabelError
from viewer.ui.tools.base import PlaneEvent, Preview, Tool, ToolContext

#: a press and release further apart than this (pixels of the slice) is a box, else a click
BOX_MIN_PIXELS = 3.0


@dataclass
class PromptState:
    """The prompts given for one structure (one label) so far, in (z, y, x) voxels."""

    label: int
    positive: list[tuple[float, float, float]] = field(default_factory=list)
    negative: list[tuple[float, float, float]] = field(default_factory=list)
    box: tuple[float, float, float, float, float, float] | None = None


def find_promptable_model() -> Any:
    """The promptable model to use: the user's own before the shipped demo, verified only."""
    from inference.registry import usable_models
    from radlens_core.paths import shipped_models_dir

    shipped = shipped_models_dir().resolve()
    cards = [c for c in usable_models().cards if c.task == "interactive"]
    if not cards:
        raise LabelError("no promptable model is installed (Models panel: import one)")
    cards.sort(key=lambda c: (c.path.resolve().is_relative_to(shipped), c.id))
    return cards[0]


class PromptTool(Tool):
    """Click (Shift+click: not the structure) or drag a box: the promptable model segments
    the structure in 3D into the current label; each prompt refines it (one undo step)."""

    name, title = "prompt", "Prompt (promptable AI)"

    def __init__(
        self, ctx: ToolContext, find_model: Callable[[], Any] = find_promptable_model
    ) -> None:
        super().__init__(ctx)
        self.find_model = find_model
        self.state: PromptState | None = None
        self.drag: tuple[PlaneEvent, PlaneEvent] | None = None
        self.engine: Any = None
        self.rounds = 0

    # ---- events ----------------------------------------------------------------------------
    def press(self, ev: PlaneEvent) -> bool:
        self.drag = (ev, ev)
        return True

    def move(self, ev: PlaneEvent) -> bool:
        if self.drag is None:
            return False
        self.drag = (self.drag[0], ev)
        return True

    def release(self, ev: PlaneEvent) -> bool:
        if self.drag is None:
            return False
        start = self.drag[0]
        self.drag = None
        state = self._state()
        if max(abs(ev.row - start.row), abs(ev.col - start.col)) >= BOX_MIN_PIXELS:
            state.box = self._box(start, ev)
        elif ev.shift:
            state.negative.append(tuple(float(v) for v in ev.zyx))  # type: ignore[arg-type]
        else:
            state.positive.append(tuple(float(v) for v in ev.zyx))  # type: ignore[arg-type]
        self.submit()
        return True

    def key(self, key: str) -> bool:
        if key == "Escape" and (self.state is not None or self.drag is not None):
            self.cancel()
            return True
        return super().key(key)

    def cancel(self) -> None:
        self.state, self.drag = None, None

    @property
    def busy(self) -> bool:
        return self.drag is not None

    # ---- prompts -> mask ---------------------------------------------------------------------
    def _state(self) -> PromptState:
        label = int(self.ctx.label)
        if self.state is None or self.state.label != label:
            self.state = PromptState(label)
        return self.state

    def _box(self, a: PlaneEvent, b: PlaneEvent) -> tuple[float, float, float, float, float, float]:
        """A box dragged on a slice, as deep (in mm) as its smaller side, centred on the slice."""
        za, zb = np.asarray(a.zyx, float), np.asarray(b.zyx, float)
        lo, hi = np.minimum(za, zb), np.maximum(za, zb)
        axis = a.plane.slice_axis
        sp = np.asarray(self.ctx.spacing_zyx, float)
        sides = [(hi[i] - lo[i]) * sp[i] for i in range(3) if i != axis]
        half = max(min(sides), sp[axis]) / 2.0 / sp[axis]
        lo[axis], hi[axis] = za[axis] - half, za[axis] + half
        return (*lo.tolist(), *hi.tolist())  # type: ignore[return-value]

    def submit(self) -> None:
        """Run the model on the prompts so far (on a worker) and apply the mask (one undo step)."""
        ctx, state = self.ctx, self._state()
        if ctx.hu is None:
            raise LabelError("the Prompt tool needs a greyscale volume")
        if not state.positive and state.box is None:
            return  # negative clicks alone say nothing yet: wait for a positive prompt
        from inference.tasks.interactive import Prompts

        prompts = Prompts(tuple(state.positive), tuple(state.negative), state.box)
        image, spacing, label = ctx.hu, ctx.spacing_zyx, state.label
        modality = ctx.modality
        array = ctx.sink.label_array()
        n = len(state.positive) + len(state.negative) + (state.box is not None)
        find_model = self.find_model

        def work(cancelled: CancelCheck) -> MaskEdit:
            from inference.engine import Engine
            from inference.interactive import refine_region

            try:
                card = find_model()
                if self.engine is None:
                    self.engine = Engine()
                answer = refine_region(
                    self.engine, image, spacing, modality, card, prompts,
                    previous=array == label, cancel=cancelled,
                )  # fmt: skip
            except Cancelled:
                raise
            except UserError as exc:
                raise LabelError(str(exc)) from exc
            # Outside the patch the label stays as it was: the edit covers the patch only.
            return label_mask_edit(
                array, label, answer.mask, f"prompt ({n} prompts)", region=answer.region
            )

        def done(edit: MaskEdit) -> None:
            self.rounds += 1
            ctx.sink.apply_mask_edit(edit)

        ctx.run_job("Segmenting from the prompts…", work, done, True)

    def preview(self) -> list[Preview]:
        out: list[Preview] = []
        if self.drag is not None:
            a, b = self.drag
            out.append(Preview("rect", a.plane.name, a.slice_index, (a.rc, b.rc), "box"))
        return out
