"""The Prompt tool (Qt-free): clicks, a dragged box and scribbles turn into a 3D mask of the
current label by a promptable model (``inference.interactive``); every new prompt refines the
mask (the label's current mask is the model's previous-mask input) and is one undo step.

Gestures: a click is a point; a drag draws a box, or a scribble (a stroke along the
structure, or along background when negative) -- the panel's "drag draws" setting says which,
Ctrl+drag draws the other. Clicks and scribbles are positive unless the panel's negative mode
is on; Shift swaps the sign for one prompt. The model runs on a worker through
``ToolContext.run_job``; Escape, Reset prompts or a change of label starts a new structure
(the prompts are forgotten, the mask stays)."""

from __future__ import annotations

import math
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

#: a press and a pointer further apart than this (pixels of the slice, |rows| + |cols|) at
#: any time before the release is a drag, else a click
BOX_MIN_PIXELS = 3.0
#: most voxels one scribble keeps (the engine thins what it is given to its own limit)
SCRIBBLE_MAX_VOXELS = 2048

Voxel = tuple[float, float, float]


@dataclass
class PromptState:
    """The prompts given for one structure (one label) so far, in (z, y, x) voxels."""

    label: int
    positive: list[Voxel] = field(default_factory=list)
    negative: list[Voxel] = field(default_factory=list)
    box: tuple[float, float, float, float, float, float] | None = None
    scribble_positive: list[Voxel] = field(default_factory=list)
    scribble_negative: list[Voxel] = field(default_factory=list)
    #: the newest click (a model with "focus" keeps only the changes connected to it);
    #: None after a box or a scribble, which may change the whole patch
    focus: Voxel | None = None
    #: the newest prompt when it is a box ("box") or a stroke ("scribble+", "scribble-"),
    #: with the stroke's voxels: a model with "focus" changes only what it asked for
    latest: str = ""
    stroke: list[Voxel] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Prompts given: clicks, the box, and each scribble voxel list counts once."""
        return (
            len(self.positive)
            + len(self.negative)
            + (self.box is not None)
            + bool(self.scribble_positive)
            + bool(self.scribble_negative)
        )

    def describe(self) -> str:
        parts = []
        if self.positive or self.negative:
            parts.append(f"{len(self.positive)} + / {len(self.negative)} − clicks")
        if self.box is not None:
            parts.append("a box")
        for word, voxels in (("+", self.scribble_positive), ("−", self.scribble_negative)):
            if voxels:
                parts.append(f"{word} scribble ({len(voxels)} voxels)")
        return ", ".join(parts) or "no prompts yet"


def promptable_models() -> list[Any]:
    """The verified promptable models, the user's own before the shipped demo."""
    from inference.registry import usable_models
    from radlens_core.paths import shipped_models_dir

    shipped = shipped_models_dir().resolve()
    cards = [c for c in usable_models().cards if c.task == "interactive"]
    cards.sort(key=lambda c: (c.path.resolve().is_relative_to(shipped), c.id))
    return cards


def find_promptable_model(model_id: str = "") -> Any:
    """The promptable model to use: ``model_id`` when given, else the user's own before the
    shipped demo; verified only."""
    cards = promptable_models()
    if not cards:
        raise LabelError("no promptable model is installed (Models panel: import one)")
    if model_id:
        chosen = [c for c in cards if c.id == model_id]
        if not chosen:
            raise LabelError(
                f"the promptable model {model_id!r} is not installed or failed its check"
            )
        return chosen[0]
    return cards[0]


def stroke_voxels(events: list[PlaneEvent], shape: tuple[int, ...]) -> list[Voxel]:
    """The voxels a stroke through ``events`` (one slice) passes, each once, in order:
    every segment sampled at half-pixel steps, capped at ``SCRIBBLE_MAX_VOXELS``."""
    seen: dict[tuple[int, int, int], None] = {}
    hi = np.asarray(shape) - 1
    pts = [(e.row, e.col) for e in events]
    if len(pts) == 1:
        pts = pts * 2
    first = events[0]
    for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:], strict=True):
        n = max(1, math.ceil(2 * max(abs(r1 - r0), abs(c1 - c0))))
        for t in np.linspace(0.0, 1.0, n + 1):
            zyx = first.plane.to_volume(r0 + (r1 - r0) * t, c0 + (c1 - c0) * t, first.slice_index)
            v = np.clip(np.rint(np.asarray(zyx, float)), 0, hi).astype(int)
            seen.setdefault((int(v[0]), int(v[1]), int(v[2])), None)
    voxels = [tuple(float(a) for a in v) for v in seen]
    if len(voxels) > SCRIBBLE_MAX_VOXELS:
        voxels = voxels[:: math.ceil(len(voxels) / SCRIBBLE_MAX_VOXELS)]
    return voxels  # type: ignore[return-value]


class PromptTool(Tool):
    """Click, drag a box or scribble: the promptable model segments the structure in 3D into
    the current label; each prompt refines it (one undo step)."""

    name, title = "prompt", "Prompt (promptable AI)"

    def __init__(
        self, ctx: ToolContext, find_model: Callable[[str], Any] = find_promptable_model
    ) -> None:
        super().__init__(ctx)
        self.find_model = find_model
        self.state: PromptState | None = None
        self.path: list[PlaneEvent] = []
        self.engine: Any = None
        self.rounds = 0

    # ---- events ----------------------------------------------------------------------------
    def press(self, ev: PlaneEvent) -> bool:
        self.path = [ev]
        return True

    def move(self, ev: PlaneEvent) -> bool:
        if not self.path:
            return False
        if ev.slice_index == self.path[0].slice_index and ev.plane == self.path[0].plane:
            self.path.append(ev)
        return True

    def release(self, ev: PlaneEvent) -> bool:
        if not self.path:
            return False
        start, path = self.path[0], self.path
        self.path = []
        state = self._state()
        negative = self.ctx.prompt_negative != ev.shift
        dragged = max(abs(e.row - start.row) + abs(e.col - start.col) for e in [*path, ev]) >= (
            BOX_MIN_PIXELS
        )
        if dragged and self._scribbles(start):
            if ev.slice_index == start.slice_index and ev.plane == start.plane:
                path = [*path, ev]
            voxels = stroke_voxels(path, self.ctx.sink.label_array().shape)
            target = state.scribble_negative if negative else state.scribble_positive
            target.extend(voxels)
            state.focus, state.stroke = None, voxels
            state.latest = "scribble-" if negative else "scribble+"
        elif dragged:
            state.box, state.focus, state.latest = self._box(start, ev), None, "box"
        else:
            state.latest = "click"
            target = state.negative if negative else state.positive  # type: ignore[assignment]
            state.focus = tuple(float(v) for v in ev.zyx)  # type: ignore[assignment]
            target.append(state.focus)  # type: ignore[arg-type]
        self.submit()
        return True

    def _scribbles(self, start: PlaneEvent) -> bool:
        """Whether this drag is a scribble: the panel's setting, Ctrl swapping it."""
        return (self.ctx.prompt_drag == "scribble") != start.ctrl

    def key(self, key: str) -> bool:
        if key == "Escape" and (self.state is not None or self.path):
            self.cancel()
            return True
        return super().key(key)

    def cancel(self) -> None:
        self.state, self.path = None, []

    def reset(self) -> None:
        """Forget the prompts (the mask stays): the next prompt starts a new structure."""
        self.cancel()

    @property
    def busy(self) -> bool:
        return bool(self.path)

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
        if not state.positive and not state.scribble_positive and state.box is None:
            return  # negative prompts alone say nothing yet: wait for a positive one
        from inference.tasks.interactive import Prompts

        prompts = Prompts(
            tuple(state.positive),
            tuple(state.negative),
            state.box,
            scribble_positive=tuple(state.scribble_positive),
            scribble_negative=tuple(state.scribble_negative),
            focus=state.focus,
            latest=state.latest,
            stroke=tuple(state.stroke) if state.latest.startswith("scribble") else (),
        )
        image, spacing, label = ctx.hu, ctx.spacing_zyx, state.label
        modality, model_id = ctx.modality, ctx.prompt_model
        array = ctx.sink.label_array()
        n = state.count
        find_model = self.find_model

        def work(cancelled: CancelCheck) -> MaskEdit:
            from inference.engine import Engine
            from inference.interactive import refine_region

            try:
                card = find_model(model_id)
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
        if len(self.path) > 1:
            a, b = self.path[0], self.path[-1]
            if self._scribbles(a):
                pts = tuple(e.rc for e in self.path)
                out.append(Preview("polyline", a.plane.name, a.slice_index, pts, "scribble"))
            else:
                out.append(Preview("rect", a.plane.name, a.slice_index, (a.rc, b.rc), "box"))
        return out
