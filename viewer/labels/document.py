"""Document: every label of a series with undo/redo (~400 lines: one class, the edit algebra).

Annotations, label map and model layers.

Every change is an ``Edit`` value applied through ``Document.apply``; undo applies the
inverse. Listeners in ``Document.listeners`` (plain callables, no Qt) receive each edit as it
was applied, which is exactly what the store journals.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np

from viewer.labels.labelmap import LabelMap, MaskEdit, SliceDiff
from viewer.labels.model import (
    Annotation,
    LabelError,
    LabelSet,
    ModelMask,
    annotation_from_dict,
)

DOCUMENT_FORMAT = 1


@dataclass(frozen=True)
class AnnotationEdit:
    """Add (before None), remove (after None) or replace one annotation."""

    before: Annotation | None
    after: Annotation | None
    description: str = "annotation"

    def inverse(self) -> AnnotationEdit:
        return AnnotationEdit(self.after, self.before, f"undo {self.description}")


@dataclass(frozen=True)
class LabelSetEdit:
    before: LabelSet
    after: LabelSet
    description: str = "label classes"

    def inverse(self) -> LabelSetEdit:
        return LabelSetEdit(self.after, self.before, f"undo {self.description}")


@dataclass(frozen=True, eq=False)
class LayerEdit:
    """Add (before None) or remove (after None) a model's label-map layer."""

    name: str
    before: np.ndarray | None
    after: np.ndarray | None
    description: str = "model layer"

    def inverse(self) -> LayerEdit:
        return LayerEdit(self.name, self.after, self.before, f"undo {self.description}")


@dataclass(frozen=True)
class CompoundEdit:
    edits: tuple[Edit, ...]
    description: str = "edit"

    def inverse(self) -> CompoundEdit:
        return CompoundEdit(
            tuple(e.inverse() for e in reversed(self.edits)), f"undo {self.description}"
        )


Edit = Union[AnnotationEdit, MaskEdit, LabelSetEdit, LayerEdit, CompoundEdit]  # noqa: UP007
Listener = Callable[[Edit], None]


class Document:
    """All labels of one series. Mutate only through ``apply`` (or the helpers that call it)."""

    def __init__(
        self, shape: Sequence[int], series_uid: str = "", label_set: LabelSet | None = None
    ):
        self.series_uid = series_uid
        self.label_set = label_set or LabelSet()
        self.labelmap = LabelMap(shape=shape)
        self.annotations: dict[str, Annotation] = {}
        #: model layers: name ("model:<id>@<version>") -> that model's label map
        self.layers: dict[str, LabelMap] = {}
        #: the first, unedited version of every model finding (for model_vs_final)
        self.originals: dict[str, Annotation] = {}
        self.listeners: list[Listener] = []
        self._undo: list[Edit] = []
        self._redo: list[Edit] = []

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.labelmap.shape

    # ---- the one way to change a document ------------------------------------------------
    def apply(self, edit: Edit, record: bool = True) -> Edit:
        self._do(edit)
        if record:
            self._undo.append(edit)
            self._redo.clear()
        self._notify(edit)
        return edit

    def undo(self) -> Edit | None:
        if not self._undo:
            return None
        edit = self._undo.pop()
        inv = edit.inverse()
        self._do(inv)
        self._redo.append(edit)
        self._notify(inv)
        return inv

    def redo(self) -> Edit | None:
        if not self._redo:
            return None
        edit = self._redo.pop()
        self._do(edit)
        self._undo.append(edit)
        self._notify(edit)
        return edit

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _notify(self, edit: Edit) -> None:
        for listener in list(self.listeners):
            listener(edit)

    def _do(self, edit: Edit) -> None:
        if isinstance(edit, MaskEdit):
            self._map(edit.layer).apply(edit)
        elif isinstance(edit, AnnotationEdit):
            if edit.before is not None and edit.after is None:
                self.annotations.pop(edit.before.id, None)
            elif edit.after is not None:
                a = edit.after
                self.annotations[a.id] = a
                if a.from_model and a.status == "proposed" and a.id not in self.originals:
                    self.originals[a.id] = a
        elif isinstance(edit, LabelSetEdit):
            self.label_set = edit.after
        elif isinstance(edit, LayerEdit):
            if edit.after is None:
                self.layers.pop(edit.name, None)
            else:
                self.layers[edit.name] = LabelMap(array=frozen_layer(edit.after))
        elif isinstance(edit, CompoundEdit):
            for e in edit.edits:
                self._do(e)
        else:
            raise LabelError(f"unknown edit {type(edit).__name__}")

    def _map(self, layer: str) -> LabelMap:
        if not layer:
            return self.labelmap
        if layer not in self.layers:
            raise LabelError(f"no model layer {layer!r} in this document")
        return self.layers[layer]

    # ---- annotation helpers --------------------------------------------------------------
    def add(self, annotation: Annotation) -> Annotation:
        if annotation.id in self.annotations:
            raise LabelError(f"an annotation with id {annotation.id} already exists")
        self.apply(AnnotationEdit(None, annotation, f"add {annotation.kind}"))
        return annotation

    def remove(self, annotation_id: str) -> None:
        self.apply(AnnotationEdit(self.get(annotation_id), None, "delete"))

    def update(self, annotation: Annotation) -> Annotation:
        """Replace an annotation's value; a model finding whose geometry changes becomes 'edited'."""
        before = self.get(annotation.id)
        after = annotation
        if (
            before.from_model
            and _geometry(before) != _geometry(after)
            and after.status in ("proposed", "accepted")
        ):
            after = replace(after, status="edited")
        self.apply(AnnotationEdit(before, after, f"edit {after.kind}"))
        return after

    def get(self, annotation_id: str) -> Annotation:
        try:
            return self.annotations[annotation_id]
        except KeyError:
            raise LabelError(f"no annotation with id {annotation_id}") from None

    def set_status(self, annotation_id: str, status: str) -> None:
        before = self.get(annotation_id)
        after = replace(before, status=status)  # type: ignore[arg-type]
        edits: list[Edit] = [AnnotationEdit(before, after, status)]
        if isinstance(before, ModelMask) and before.status != "accepted" and status == "accepted":
            # Accepting a model mask adds its voxels to the user's map (never removes the user's).
            layer = self._map(before.layer).array == before.label
            edits.insert(0, self.labelmap.replace_label(layer, before.label, clear_label=False))
            self.labelmap.revert(edits[0])  # type: ignore[arg-type]  # applied below, once
        self.apply(CompoundEdit(tuple(edits), status) if len(edits) > 1 else edits[0])

    def accept(self, annotation_id: str) -> None:
        self.set_status(annotation_id, "accepted")

    def reject(self, annotation_id: str) -> None:
        self.set_status(annotation_id, "rejected")

    def set_label_set(self, label_set: LabelSet) -> None:
        self.apply(LabelSetEdit(self.label_set, label_set))

    # ---- label-map helpers (each one undoable step) ----------------------------------------
    def paint(self, z: int, mask2d: np.ndarray, label: int, **kw: Any) -> MaskEdit:
        return self._mask(self.labelmap.paint(z, mask2d, label, **kw))

    def erase(self, z: int, mask2d: np.ndarray, label: int | None = None) -> MaskEdit:
        return self._mask(self.labelmap.erase(z, mask2d, label))

    def paint_sphere(
        self,
        center_zyx: Sequence[float],
        radius_mm: float,
        label: int,
        spacing_xyz: Sequence[float],
        erase: bool = False,
    ) -> MaskEdit:
        return self._mask(
            self.labelmap.paint_sphere(center_zyx, radius_mm, label, spacing_xyz, erase)
        )

    def fill_polygon(
        self, z: int, vertices_yx: Sequence[tuple[float, float]], label: int
    ) -> MaskEdit:
        return self._mask(self.labelmap.fill_polygon(z, vertices_yx, label))

    def interpolate_between_slices(self, label: int, s0: int, s1: int, axis: int = 0) -> MaskEdit:
        return self._mask(self.labelmap.interpolate_between_slices(label, s0, s1, axis))

    def _mask(self, edit: MaskEdit) -> MaskEdit:
        if not edit.empty:  # an edit that changed nothing is not worth an undo step
            self.apply(edit)
        return edit

    # ---- persistence ------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able dict, arrays) — the snapshot the store writes."""
        meta = {
            "format": DOCUMENT_FORMAT,
            "series_uid": self.series_uid,
            "shape": list(self.shape),
            "label_table": self.label_set.to_table(),
            "annotations": [a.to_dict() for a in self.annotations.values()],
            "originals": [a.to_dict() for a in self.originals.values()],
            "layers": list(self.layers),
        }
        arrays = {"labelmap": self.labelmap.array}
        for i, name in enumerate(self.layers):
            arrays[f"layer{i}"] = self.layers[name].array
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Document:
        if meta.get("format") != DOCUMENT_FORMAT:
            raise LabelError(f"label snapshot format {meta.get('format')!r} is not supported")
        doc = cls(
            meta["shape"], meta.get("series_uid", ""), LabelSet.from_table(meta["label_table"])
        )
        doc.labelmap = LabelMap(array=np.array(arrays["labelmap"]))
        for i, name in enumerate(meta.get("layers", [])):
            doc.layers[name] = LabelMap(array=frozen_layer(arrays[f"layer{i}"]))
        for d in meta.get("annotations", []):
            a = annotation_from_dict(d)
            doc.annotations[a.id] = a
        for d in meta.get("originals", []):
            a = annotation_from_dict(d)
            doc.originals[a.id] = a
        return doc


def frozen_layer(array: np.ndarray) -> np.ndarray:
    """A model layer's array as the document keeps it: read-only, so it is the model's
    original for good (model_vs_final compares against it) and can be shared with the edit
    that installed it. An array that is already read-only is shared, not copied: copying a
    300x512x512 map costs the UI thread 20-300 ms."""
    if not array.flags.writeable and array.dtype == np.uint8 and array.flags.c_contiguous:
        return array
    out = np.array(array, dtype=np.uint8, order="C")
    out.setflags(write=False)
    return out


def _geometry(a: Annotation) -> dict[str, Any]:
    d = a.to_dict()
    for k in ("id", "source", "status", "score", "note"):
        d.pop(k, None)
    return d


# ---- edits <-> JSON (the journal format) --------------------------------------------------
#: Stores a model layer's array outside the record and answers its reference, e.g.
#: ``{"file": "layer-1a2b.npz"}`` (the label store writes each layer once, never per edit).
ArrayWriter = Callable[[np.ndarray], dict[str, Any]]
#: Reads a reference written by an ``ArrayWriter`` back.
ArrayReader = Callable[[dict[str, Any]], np.ndarray]


def _arr_to(a: np.ndarray | None, put: ArrayWriter | None = None) -> dict[str, Any] | None:
    if a is None:
        return None
    if put is not None:
        return put(a)
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return {
        "shape": list(a.shape),
        "data": base64.b64encode(zlib.compress(a.tobytes(), 6)).decode(),
    }


def _arr_from(d: dict[str, Any] | None, get: ArrayReader | None = None) -> np.ndarray | None:
    if d is None:
        return None
    if "data" not in d:
        if get is None:
            raise LabelError("a model layer stored outside the journal record has no reader")
        return get(d)
    raw = zlib.decompress(base64.b64decode(d["data"]))
    return np.frombuffer(raw, dtype=np.uint8).reshape(d["shape"]).copy()


def edit_to_dict(edit: Edit, put: ArrayWriter | None = None) -> dict[str, Any]:
    """The journal record of ``edit``; ``put`` stores model-layer arrays by reference."""
    if isinstance(edit, MaskEdit):
        return {
            "type": "mask",
            "layer": edit.layer,
            "description": edit.description,
            "diffs": [d.to_dict() for d in edit.diffs],
        }
    if isinstance(edit, AnnotationEdit):
        return {
            "type": "annotation",
            "description": edit.description,
            "before": edit.before.to_dict() if edit.before else None,
            "after": edit.after.to_dict() if edit.after else None,
        }
    if isinstance(edit, LabelSetEdit):
        return {
            "type": "labelset",
            "before": edit.before.to_table(),
            "after": edit.after.to_table(),
        }
    if isinstance(edit, LayerEdit):
        return {
            "type": "layer",
            "name": edit.name,
            "before": _arr_to(edit.before, put),
            "after": _arr_to(edit.after, put),
        }
    if isinstance(edit, CompoundEdit):
        return {
            "type": "compound",
            "description": edit.description,
            "edits": [edit_to_dict(e, put) for e in edit.edits],
        }
    raise LabelError(f"unknown edit {type(edit).__name__}")


def edit_from_dict(d: dict[str, Any], get: ArrayReader | None = None) -> Edit:
    """The edit of a journal record; ``get`` reads model layers stored by reference."""
    t = d.get("type")
    if t == "mask":
        return MaskEdit(
            tuple(SliceDiff.from_dict(x) for x in d["diffs"]),
            d.get("description", "paint"),
            d.get("layer", ""),
        )
    if t == "annotation":
        b, a = d.get("before"), d.get("after")
        return AnnotationEdit(
            annotation_from_dict(b) if b else None,
            annotation_from_dict(a) if a else None,
            d.get("description", ""),
        )
    if t == "labelset":
        return LabelSetEdit(LabelSet.from_table(d["before"]), LabelSet.from_table(d["after"]))
    if t == "layer":
        return LayerEdit(d["name"], _arr_from(d["before"], get), _arr_from(d["after"], get))
    if t == "compound":
        return CompoundEdit(
            tuple(edit_from_dict(e, get) for e in d["edits"]), d.get("description", "")
        )
    raise LabelError(f"unknown edit type {t!r} in the journal")
