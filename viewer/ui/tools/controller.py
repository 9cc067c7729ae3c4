"""AnnotationController: opens the series' LabelStore, forwards view events to the active tool,
and keeps the mask overlay and annotation drawings in step with the Document.

The SliceViews are not modified: the controller installs an event filter on each view's
viewport (mouse) and on the view (keys), and draws with its own items. While a drawing tool
is active, a left press the tool accepts never reaches pyqtgraph, so it does not pan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent

from viewer.labels.document import CompoundEdit, Document, LabelSetEdit
from viewer.labels.model import LabelError
from viewer.labels.store import LabelStore, StoreError
from viewer.ui.layers import Layer
from viewer.ui.tools import Plane, PlaneEvent, Tool, ToolContext, make_tools
from viewer.ui.tools.document_sink import DocumentSink
from viewer.ui.tools.drawing import ViewDrawing

log = logging.getLogger(__name__)
MASK_LAYER = "Annotations (mask)"
_KEYS = {
    Qt.Key.Key_Escape: "Escape",
    Qt.Key.Key_Return: "Return",
    Qt.Key.Key_Enter: "Enter",
    Qt.Key.Key_Backspace: "Backspace",
    Qt.Key.Key_Delete: "Delete",
    Qt.Key.Key_A: "A",
    Qt.Key.Key_X: "X",
    Qt.Key.Key_BracketLeft: "[",
    Qt.Key.Key_BracketRight: "]",
}


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class AnnotationController(QObject):
    """Annotation state of the open series; the tool bar, panel and views talk to it."""

    #: the Document changed (any edit, undo or redo): panels refresh
    document_changed = Signal()
    #: a new Document was opened (another series)
    document_opened = Signal()
    selection_changed = Signal(object)
    tool_changed = Signal(object)
    #: a sentence for the status bar (e.g. why an edit was refused)
    message_posted = Signal(str)

    def __init__(self, state, parent: QObject | None = None) -> None:  # state: ViewerState
        super().__init__(parent)
        self.state = state
        self.store: LabelStore | None = None
        #: Stores closed while their edits could not reach the disk; closed again later.
        self._unsaved_stores: list[LabelStore] = []
        self.document: Document | None = None
        self.sink: DocumentSink | None = None
        self.ctx: ToolContext | None = None
        self.tools: dict[str, Tool] = {}
        self.tool: Tool | None = None
        self.tool_name: str | None = None
        self.views: list = []
        self._drawings: dict[object, ViewDrawing] = {}
        self._pressed_view = None
        self._volume_id: int | None = None
        #: returns the view the user works in (the window's active plane); set by install
        self.active_view: Callable[[], object] | None = None
        state.volume_changed.connect(self._volume_changed)
        state.cursor_moved.connect(self.redraw)

    # ---- views ----------------------------------------------------------------------------
    def attach_view(self, view) -> None:
        """Start forwarding ``view``'s mouse and key events to the active tool."""
        self.views.append(view)
        self._drawings[view] = ViewDrawing(view)
        view.graphics.viewport().installEventFilter(self)
        view.installEventFilter(self)
        view.view_box.sigRangeChanged.connect(lambda *_: self._redraw_view(view))
        self._redraw_view(view)

    def drawing(self, view) -> ViewDrawing:
        return self._drawings[view]

    def tool_plane(self, view) -> Plane | None:
        """The plane the view shows: the same model, read in its stored (unflipped) frame."""
        if self.state.volume is None:
            return None
        return view.geometry_

    def voxel_to_viewport(self, view, zyx) -> QPoint:
        """Viewport pixel of a (z, y, x) voxel position on ``view`` (for tests and tours)."""
        scene = self.voxel_to_scene(view, zyx)
        return view.graphics.mapFromScene(view.view_box.mapViewToScene(scene))

    def voxel_to_scene(self, view, zyx) -> QPointF:
        return self._drawings[view].scene_of(zyx)

    def plane_event(self, view, pos: QPointF, event: QMouseEvent | None = None) -> PlaneEvent:
        """A viewport position on ``view`` as a PlaneEvent on its current slice."""
        g, plane = view.geometry_, self.tool_plane(view)
        mm = view.view_box.mapSceneToView(view.graphics.mapToScene(pos.toPoint()))
        row, col = g.scene_to_pixel(mm.x(), mm.y())
        index = view.index()
        r, c, _ = plane.from_volume(g.to_voxel(index, row, col))
        mods = event.modifiers() if event is not None else Qt.KeyboardModifier.NoModifier
        return PlaneEvent(
            plane,
            index,
            r,
            c,
            shift=bool(mods & Qt.KeyboardModifier.ShiftModifier),
            ctrl=bool(mods & Qt.KeyboardModifier.ControlModifier),
            double=event is not None and event.type() == QEvent.Type.MouseButtonDblClick,
        )

    # ---- the series -----------------------------------------------------------------------
    def _volume_changed(self) -> None:
        volume = self.state.volume
        if volume is not None and id(volume) == self._volume_id:
            return
        self.close()
        if volume is None:
            return
        self._volume_id = id(volume)
        try:
            self.store = LabelStore.open(volume)
            document = self.store.document
            if self.store.recovered_edits:
                self.message_posted.emit(
                    f"Recovered {self.store.recovered_edits} unsaved label edits from the journal."
                )
        except LabelError as exc:
            # Without a store key (or with a mismatched store) labels still work, unsaved.
            self.message_posted.emit(f"Labels are not autosaved: {exc}")
            document = Document(volume.shape, volume.series_uid)
        self._bind(document, volume)

    def _bind(self, document: Document, volume) -> None:
        self.document = document
        self.sink = DocumentSink(document, on_painted=self._painted)
        hu = None if volume.is_rgb else np.asarray(volume.array)
        sx, sy, sz = (float(v) for v in volume.spacing)
        self.ctx = ToolContext(
            sink=self.sink, hu=hu, spacing_zyx=(sz, sy, sx), modality=str(volume.modality)
        )
        if document.label_set.classes:
            self.ctx.label = document.label_set.classes[0].index
        self.tools = make_tools(self.ctx)
        if self.tool_name is not None:
            self.tool = self.tools.get(self.tool_name)
        document.listeners.append(self._document_edited)
        self.state.layers.add(
            Layer(
                MASK_LAYER,
                "labels",
                document.labelmap.array,
                opacity=0.45,
                colours=self._colours(),
            )
        )
        self.document_opened.emit()
        self.redraw()

    def _colours(self) -> dict[int, tuple[int, int, int]]:
        assert self.document is not None
        return {c.index: _rgb(c.color) for c in self.document.label_set}

    def close(self) -> None:
        """Detach from the open series; the store writes its final snapshot."""
        if self.tool is not None:
            self.tool.cancel()
        if self.document is not None and self._document_edited in self.document.listeners:
            self.document.listeners.remove(self._document_edited)
        if self.store is not None:
            self._close_store(self.store)
        self.store = self.document = self.sink = self.ctx = None
        self._volume_id = None
        for drawing in self._drawings.values():
            drawing.clear()
            drawing.clear_preview()

    def _close_store(self, store: LabelStore) -> None:
        """Close ``store``; when its edits cannot reach the disk yet (disk full, read-only),
        say so and keep it alive: it goes on retrying, and the next series change tries to
        close it again, so nothing is dropped while the window is open."""
        for pending in [*self._unsaved_stores, store]:
            try:
                pending.close()
            except StoreError as exc:
                if pending not in self._unsaved_stores:
                    self._unsaved_stores.append(pending)
                self.message_posted.emit(f"Label edits are not saved yet: {exc}")
            else:
                if pending in self._unsaved_stores:
                    self._unsaved_stores.remove(pending)

    # ---- tools ----------------------------------------------------------------------------
    def set_tool(self, name: str | None) -> None:
        """Activate a tool by name (see ``make_tools``), or none (the view's own mouse modes)."""
        if self.tool is not None:
            self.tool.cancel()
        self.tool_name = name
        self.tool = self.tools.get(name) if name else None
        for drawing in self._drawings.values():
            drawing.clear_preview()
        self.tool_changed.emit(name)

    def set_label(self, index: int) -> None:
        if self.ctx is not None:
            self.ctx.label = int(index)

    def select(self, annotation_id: str | None) -> None:
        if self.ctx is not None and self.ctx.selected != annotation_id:
            self.ctx.selected = annotation_id
            self.selection_changed.emit(annotation_id)
            self.redraw()

    def undo(self) -> None:
        if self.document is not None and not (self.tool and self.tool.busy):
            if self.document.undo() is None:
                self.message_posted.emit("Nothing to undo.")

    def redo(self) -> None:
        if self.document is not None and not (self.tool and self.tool.busy):
            if self.document.redo() is None:
                self.message_posted.emit("Nothing to redo.")

    def interpolate(self, view=None) -> None:
        """Fill the slices between drawn slices of the current label (one undo step), along
        the slice axis of ``view`` (default: the active view, else axial)."""
        if self.sink is None or self.ctx is None:
            return
        view = view if view is not None else (self.active_view() if self.active_view else None)
        plane = self.tool_plane(view) if view is not None else None
        axis = plane.slice_axis if plane is not None else 0
        try:
            n = self.sink.interpolate(self.ctx.label, axis)
            where = f" {plane.name}" if plane is not None else ""
            self.message_posted.emit(f"Interpolated {n}{where} slice(s).")
        except LabelError as exc:
            self.message_posted.emit(str(exc))

    # ---- events ---------------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if self.tool is None or self.ctx is None:
            return False
        etype = event.type()
        if etype == QEvent.Type.ShortcutOverride and obj in self._drawings:
            # Keys the tool needs now (A/X on a selected box, Escape mid-outline) must reach
            # it as key presses instead of triggering the window's single-key shortcuts.
            name = _KEYS.get(Qt.Key(event.key()))  # type: ignore[attr-defined]
            mods = event.modifiers()  # type: ignore[attr-defined]
            if (
                name
                and not mods & Qt.KeyboardModifier.ControlModifier
                and self.tool.wants_key(name)
            ):
                event.accept()
                return True
            return False
        if etype == QEvent.Type.KeyPress:
            view = obj if obj in self._drawings else None
            return view is not None and self._key(view, event)  # type: ignore[arg-type]
        view = next((v for v in self.views if v.graphics.viewport() is obj), None)
        if view is None or view.geometry_ is None:
            return False
        if etype in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick):
            if event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
                return False
            view.setFocus()
            return self._dispatch(view, "press", event)  # type: ignore[arg-type]
        if etype == QEvent.Type.MouseMove:
            if self._pressed_view is view:
                return self._dispatch(view, "move", event)  # type: ignore[arg-type]
            self.tool.hover(self.plane_event(view, event.position(), event))  # type: ignore[attr-defined]
            self._show_preview(view)
            return False
        if etype == QEvent.Type.MouseButtonRelease and self._pressed_view is view:
            return self._dispatch(view, "release", event)  # type: ignore[arg-type]
        if etype == QEvent.Type.Leave and self._pressed_view is None:
            self._drawings[view].clear_preview()  # no brush circle left behind
        return False

    def _dispatch(self, view, what: str, event: QMouseEvent) -> bool:
        assert self.tool is not None and self.ctx is not None
        ev = self.plane_event(view, event.position(), event)
        self.ctx.changed = []
        try:
            handler = {"press": self.tool.press, "move": self.tool.move}.get(
                what, self.tool.release
            )
            used = handler(ev)
        except LabelError as exc:
            self.tool.cancel()
            self.message_posted.emit(str(exc))
            used = True
        self._pressed_view = view if (what != "release" and used) else None
        if what == "release":
            self._pressed_view = None
        self._after_tool(view)
        return bool(used)

    def _key(self, view, event: QKeyEvent) -> bool:
        assert self.tool is not None
        name = _KEYS.get(Qt.Key(event.key()))
        if name is None or event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            return False
        try:
            used = self.tool.key(name)
        except LabelError as exc:
            self.message_posted.emit(str(exc))
            used = True
        if used:
            self._after_tool(view)
        return used

    def _after_tool(self, view) -> None:
        assert self.ctx is not None
        if self.ctx.changed:
            self.select(self.ctx.changed[-1])
        elif self.ctx.selected is not None and self.document is not None:
            if self.ctx.selected not in self.document.annotations:
                self.select(None)
        self.selection_changed.emit(self.ctx.selected)
        self._show_preview(view)
        self._redraw_view(view)

    def _show_preview(self, view) -> None:
        plane = self.tool_plane(view)
        for v, drawing in self._drawings.items():
            if v is view and self.tool is not None and plane is not None:
                drawing.show_preview(
                    [p for p in self.tool.preview() if p.plane == plane.name], plane
                )
            else:
                drawing.clear_preview()

    # ---- redraw ---------------------------------------------------------------------------
    def _document_edited(self, edit) -> None:
        if _has(edit, LabelSetEdit):
            self.state.layers.update(MASK_LAYER, colours=self._colours())
        self._refresh_mask()
        self.redraw()
        self.document_changed.emit()

    def _painted(self, region: tuple[slice, slice, slice]) -> None:
        """Live stroke feedback: redraw only the views whose slice the stroke touched."""
        for view in self.views:
            g = view.geometry_
            if g is None:
                continue
            axis = region[g.normal_axis]
            lo, hi, _ = axis.indices(g.n_slices)
            if lo <= view.index() < hi:
                self._refresh_mask(view)

    def _refresh_mask(self, only=None) -> None:
        for view in [only] if only is not None else self.views:
            overlay = view.overlays.get(MASK_LAYER)
            if overlay is not None and view.geometry_ is not None:
                overlay.refresh(view.geometry_, view.index())

    def redraw(self) -> None:
        for view in self.views:
            self._redraw_view(view)

    def _redraw_view(self, view) -> None:
        drawing = self._drawings.get(view)
        if drawing is None:
            return
        if self.document is None:
            drawing.clear()
            return
        drawing.refresh(
            self.document.annotations.values(),
            self.document.label_set,
            self.state.volume,
            self.ctx.selected if self.ctx else None,
        )


def _has(edit: object, kind: type) -> bool:
    """Whether ``edit`` is, or (as a CompoundEdit) contains, an edit of type ``kind``."""
    if isinstance(edit, kind):
        return True
    return isinstance(edit, CompoundEdit) and any(_has(e, kind) for e in edit.edits)
