"""The tool contract: plane events in, label edits out (through an AnnotationSink), previews drawn.

A tool never touches Qt: the slice view turns a mouse event into a ``PlaneEvent`` (row, col
on the slice being shown), calls the tool, then draws ``tool.preview()``. Everything the
tool changes goes through the sink, so every edit is journalled and undoable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from radlens_core.progress import CancelCheck, never_cancelled
from viewer.labels.labelmap import MaskEdit
from viewer.ui.tools.planes import Plane

#: run_job(label, work, done, heavy): ``work(cancelled)`` computes (on a worker thread when
#: ``heavy``, under the window's progress bar), ``done(result)`` applies it on the caller's
#: thread -- or is never called when the labels changed meanwhile or the user cancelled.
JobRunner = Callable[[str, Callable[[CancelCheck], Any], Callable[[Any], None], bool], None]


def run_now(
    label: str, work: Callable[[CancelCheck], Any], done: Callable[[Any], None], heavy: bool
) -> None:
    """The JobRunner without a window: compute and apply at once."""
    done(work(never_cancelled))


#: review status of an annotation; model proposals start "proposed".
STATUSES = ("proposed", "accepted", "rejected", "edited")


@dataclass(frozen=True)
class PlaneEvent:
    """A pointer event in a plane's slice coordinates (continuous row, col)."""

    plane: Plane
    slice_index: int
    row: float
    col: float
    shift: bool = False
    ctrl: bool = False
    double: bool = False

    @property
    def rc(self) -> tuple[float, float]:
        return self.row, self.col

    @property
    def zyx(self) -> np.ndarray:
        return self.plane.to_volume(self.row, self.col, self.slice_index)


@dataclass(frozen=True)
class Preview:
    """Feedback while drawing, in (row, col) of ``plane`` on ``slice_index``.

    kind: "rect" | "ellipse" | "polyline" | "polygon" | "line" | "circle" | "point"; for
    "rect"/"ellipse" the points are two opposite corners, for "circle" the centre plus
    ``radius_rc`` (row, col radii in pixels).
    """

    kind: str
    plane: str
    slice_index: int
    points_rc: tuple[tuple[float, float], ...]
    text: str = ""
    radius_rc: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class BoxInfo:
    """What the box editor needs to know about one box annotation."""

    id: str
    lo_zyx: tuple[float, float, float]
    hi_zyx: tuple[float, float, float]
    source: str = "user"
    status: str = "accepted"
    label: int = 1


class AnnotationSink(Protocol):
    """Edits a tool may make; ``viewer.ui.tools.document_sink`` implements it on a label Document."""

    def add_box(self, lo_zyx: np.ndarray, hi_zyx: np.ndarray, label: int, dims: int) -> str: ...

    def add_polygon(
        self, points_zyx: np.ndarray, label: int, plane: Plane, slice_index: int
    ) -> str: ...

    def add_point(self, zyx: np.ndarray, label: int) -> str: ...

    def add_ruler(self, a_zyx: np.ndarray, b_zyx: np.ndarray, label: int) -> str: ...

    def add_roi(
        self, shape: str, lo_zyx: np.ndarray, hi_zyx: np.ndarray, plane: Plane, label: int
    ) -> str: ...

    def begin_stroke(self) -> None: ...

    def paint(self, region: tuple[slice, slice, slice], mask: np.ndarray, value: int) -> None: ...

    def end_stroke(self) -> None: ...

    def cancel_stroke(self) -> None: ...

    def interpolate(self, label: int, axis: int = 0) -> int: ...

    def boxes(self) -> list[BoxInfo]: ...

    def move_box(self, box_id: str, lo_zyx: np.ndarray, hi_zyx: np.ndarray) -> None: ...

    def set_status(self, annotation_id: str, status: str) -> None: ...

    def remove(self, annotation_id: str) -> None: ...

    def label_array(self) -> np.ndarray:
        """The (z, y, x) label map, to read (segment editor operations compute on it)."""
        ...

    def apply_mask_edit(self, edit: MaskEdit) -> None:
        """Apply a computed label-map edit as one undo step."""
        ...


@dataclass
class ToolContext:
    """Shared tool settings (the tool bar edits these) and the sink edits go to."""

    sink: AnnotationSink
    hu: np.ndarray | None = None  # (z, y, x) intensities, for the threshold brush
    label: int = 1
    brush_radius_mm: float = 5.0
    brush_3d: bool = False
    box_3d: bool = False
    threshold: tuple[float, float] = (-400.0, 400.0)
    selected: str | None = None
    #: voxel spacing (z, y, x) in mm: brush sizes, margins and island volumes are physical
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
    #: the series' modality (a promptable model checks it against its card)
    modality: str = "OT"
    #: how long operations run (the window sets one that uses a worker and the progress bar)
    run_job: JobRunner = run_now
    #: click-to-segment: band half-width in multiples of the clicked neighbourhood's spread
    tolerance: float = 2.5
    #: click-to-segment grows in 3D (else on the slice shown)
    segment_3d: bool = False
    #: what a click with the island tool does: "keep_selected" or "remove_selected"
    island_mode: str = "keep_selected"
    #: Prompt tool: clicks and scribbles say "not the structure" (Shift swaps for one prompt)
    prompt_negative: bool = False
    #: Prompt tool: what a drag draws, "box" or "scribble" (Ctrl+drag draws the other)
    prompt_drag: str = "box"
    #: Prompt tool: the promptable model's id ("" = the user's own before the shipped demo)
    prompt_model: str = ""
    #: ids the last edit touched (the panel selects them)
    changed: list[str] = field(default_factory=list)


class Tool:
    """Base state machine: every handler returns True when it consumed the event."""

    name = "tool"
    title = "Tool"
    shortcut = ""
    #: whether the view should pan with the left button while this tool is active
    pans = False

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx

    def press(self, ev: PlaneEvent) -> bool:
        return False

    def move(self, ev: PlaneEvent) -> bool:
        return False

    def release(self, ev: PlaneEvent) -> bool:
        return False

    def hover(self, ev: PlaneEvent) -> None:
        """Pointer moved with no button down (brush cursor)."""

    def key(self, key: str) -> bool:
        """``key`` is a plain name: "Escape", "Return", "Delete", "A", "X", "[", "]"."""
        if key == "Escape" and self.busy:
            self.cancel()
            return True
        return False

    def cancel(self) -> None:
        """Drop whatever is in progress without editing anything."""

    def wants_key(self, key: str) -> bool:
        """Whether ``key`` means something to this tool now (it then wins over menu shortcuts)."""
        return self.busy and key in ("Escape", "Return", "Enter", "Backspace")

    @property
    def busy(self) -> bool:
        return False

    def preview(self) -> list[Preview]:
        return []
