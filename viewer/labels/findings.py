"""Model findings as proposed annotations, and what the user finally made of each of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from radlens_core.results import AnalysisResult, LabelClass
from radlens_core.results import Box as CoreBox
from viewer.labels.document import (
    AnnotationEdit,
    CompoundEdit,
    Document,
    Edit,
    LabelSetEdit,
    LayerEdit,
)
from viewer.labels.model import Annotation, Box, LabelError, LabelSet, ModelMask, model_source
from viewer.labels.planar import is_planar, masks_on_one_plane
from viewer.labels.results import ResultRecord

#: A box given by hand: (lo, hi, label, score) with (z, y, x) or (y, x) corners; the label
#: is a model label index or name, the score may be None.
BoxTuple = tuple[Sequence[float], Sequence[float], "int | str", "float | None"]


def _box_from(item: CoreBox | BoxTuple, source: str) -> Box | tuple[Box, str]:
    """A proposed Box from an engine box (``radlens_core.results.Box``, label a name) or a
    tuple (lo_zyx, hi_zyx, label, score). 2D boxes (corners of length 2) land on slice 0."""
    if isinstance(item, CoreBox):
        lo, hi, label, score = item.lo, item.hi, item.label, item.score
    else:
        lo, hi, label, score = (*item, 1, None)[:4]  # type: ignore[assignment]
    lo_f, hi_f = [float(v) for v in lo], [float(v) for v in hi]
    score_f = None if score is None else float(score)
    name = label if isinstance(label, str) else None
    idx = 1 if name is not None else int(label)  # type: ignore[arg-type]
    if len(lo_f) == 2:
        corners = (*lo_f, *hi_f)
        box = Box(idx, source=source, status="proposed", score=score_f, corners=corners, z=0)
    elif len(lo_f) == 3:
        box = Box(idx, source=source, status="proposed", score=score_f, corners=(*lo_f, *hi_f))
    else:
        raise LabelError(f"a model box needs 2 or 3 coordinates per corner, got {lo_f}")
    return box if name is None else (box, name)  # a named label is resolved by propose()


def _resolve_labels(
    doc: Document, names: dict[int, str], colors: dict[int, str]
) -> tuple[dict[int, int], LabelSet]:
    """Model label index -> document label index, matched by name; unknown names are added."""
    ls = doc.label_set
    mapping: dict[int, int] = {}
    for idx, name in names.items():
        try:
            mapping[idx] = ls.by_name(name).index
        except LabelError:
            ls = ls.add(name, colors.get(idx, "#ff00ff"))
            mapping[idx] = ls.by_name(name).index
    return mapping, ls


@dataclass(frozen=True, eq=False)
class Proposal:
    """A model's findings planned for one document: ``plan_proposal`` (cheap), then
    ``prepare_proposal`` (one pass over the voxels, safe on a worker thread), then
    ``apply_proposal`` (cheap, on the document's thread)."""

    source: str
    #: the label set the mapping was made against, and the one applying it leaves behind
    base_label_set: LabelSet
    label_set: LabelSet
    boxes: tuple[Box, ...]
    label_map: np.ndarray | None = None  # in the model's label indices
    lut: np.ndarray | None = None  # model index -> document index (None: identity)
    mapped: np.ndarray | None = None  # in the document's indices, once prepared
    present: tuple[int, ...] = ()  # non-zero document labels in ``mapped``

    @property
    def prepared(self) -> bool:
        return self.label_map is None or self.mapped is not None

    @property
    def voxels(self) -> int:
        return 0 if self.label_map is None else int(self.label_map.size)


def plan_proposal(
    doc: Document,
    model_id: str,
    version: str,
    boxes: Iterable[CoreBox | BoxTuple] = (),
    label_map: np.ndarray | None = None,
    label_names: dict[int, str] | None = None,
    label_colors: dict[int, str] | None = None,
) -> Proposal:
    """Parse boxes and match label names to the document's classes; touches no voxel."""
    source = model_source(model_id, version)
    names = dict(label_names or {})
    parsed: list[Box] = []
    for i, item in enumerate(boxes):  # string labels (engine records) name a class
        b = _box_from(item, source)
        if isinstance(b, tuple):
            box, name = b
            idx = next((k for k, v in names.items() if v == name), None)
            if idx is None:
                idx = max(names, default=0) + 1000 + i
                names[idx] = name
            b = replace(box, label=idx)
        parsed.append(b)
    arr = None
    if label_map is not None:
        arr = np.asarray(label_map)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.shape != doc.shape:
            raise LabelError(
                f"model {source}: label map {arr.shape} does not match the series {doc.shape}"
            )
    mapping: dict[int, int] = {}
    new_set = doc.label_set
    if names:
        mapping, new_set = _resolve_labels(doc, names, label_colors or {})
    lut = None
    if any(k != v for k, v in mapping.items() if 0 <= k < 256):
        lut = np.arange(256, dtype=np.uint8)
        for k, v in mapping.items():
            if 0 <= k < 256:
                lut[k] = v
    mapped_boxes = tuple(replace(b, label=mapping.get(b.label, b.label)) for b in parsed)
    return Proposal(source, doc.label_set, new_set, mapped_boxes, arr, lut)


#: Voxels per step of ``prepare_proposal``: small enough that no single numpy call keeps
#: the interpreter lock long from the UI thread, large enough that the loop costs nothing.
_SLAB_VOXELS = 1 << 20


def prepare_proposal(p: Proposal) -> Proposal:
    """Map the label map to document indices and list the labels present (the one pass over
    the voxels: about a second on 300x512x512). Pure numpy; call it on a worker thread."""
    if p.prepared or p.label_map is None:
        return p
    src = p.label_map
    out = np.empty(src.shape, np.uint8)
    seen = np.zeros(256, bool)
    step = max(1, _SLAB_VOXELS // max(1, int(np.prod(src.shape[1:]))))
    for z in range(0, src.shape[0], step):
        slab = src[z : z + step]
        if slab.dtype != np.uint8:
            slab = slab.astype(np.uint8)  # the engine's maps are uint8; others wrap as before
        if p.lut is not None:
            np.take(p.lut, slab, out=out[z : z + step])
        else:
            out[z : z + step] = slab
        seen |= np.bincount(out[z : z + step].ravel(), minlength=256).astype(bool)
    present = tuple(int(v) for v in np.flatnonzero(seen) if v)
    out.setflags(write=False)  # the document shares it as the layer (see frozen_layer)
    return replace(p, mapped=out, present=present)


def apply_proposal(doc: Document, p: Proposal) -> list[Annotation]:
    """Add a prepared proposal to ``doc`` as one undoable step (copies one array at most)."""
    if not p.prepared:
        raise LabelError(f"model {p.source}: the proposal was applied before it was prepared")
    if doc.label_set != p.base_label_set:
        raise LabelError(
            f"model {p.source}: the label classes changed while its findings were prepared"
        )
    edits: list[Edit] = []
    added: list[Annotation] = []
    if p.label_set != doc.label_set:
        edits.append(LabelSetEdit(doc.label_set, p.label_set, "labels of a model"))
    for b in p.boxes:
        added.append(b)
        edits.append(AnnotationEdit(None, b, "model box"))
    if p.mapped is not None:
        # The old layer's array is read-only and replaced, never written: shared, not copied.
        before = doc.layers[p.source].array if p.source in doc.layers else None
        edits.append(LayerEdit(p.source, before, p.mapped))
        for label in p.present:
            m = ModelMask(label, source=p.source, status="proposed", layer=p.source)
            added.append(m)
            edits.append(AnnotationEdit(None, m, "model mask"))
    if edits:
        doc.apply(CompoundEdit(tuple(edits), f"findings of {p.source}"))
    return added


def propose(
    doc: Document,
    model_id: str,
    version: str,
    boxes: Iterable[CoreBox | BoxTuple] = (),
    label_map: np.ndarray | None = None,
    label_names: dict[int, str] | None = None,
    label_colors: dict[int, str] | None = None,
) -> list[Annotation]:
    """Add a model's boxes and/or label map as proposed annotations, one undoable step.

    A label map becomes a model layer plus one ``ModelMask`` per label it contains. With
    ``label_names`` (the card's table) model labels map to the document's classes by name,
    and names the document lacks are added to its label set."""
    plan = plan_proposal(doc, model_id, version, boxes, label_map, label_names, label_colors)
    return apply_proposal(doc, prepare_proposal(plan))


def provenance_marks(result: ResultRecord | AnalysisResult) -> str:
    """Build metadata added to a model version in the provenance of its proposals (semver
    "+..."), so a result run outside its intended use or flagged stays marked in the
    document, its journal and every export: "1.0.0+outside-intended-use.flagged". "" when
    the result is plain."""
    if isinstance(result, ResultRecord):
        outside, flagged = result.outside_intended_use, bool(result.flags)
    else:
        outside, flagged = result.run.outside_intended_use, bool(result.run.flags)
    marks = [m for m, on in (("outside-intended-use", outside), ("flagged", flagged)) if on]
    return ".".join(marks)


def plan_result(
    doc: Document,
    result: ResultRecord | AnalysisResult,
    model_id: str | None = None,
    version: str | None = None,
) -> Proposal:
    """``plan_proposal`` for a ``viewer.labels.results.ResultRecord`` or an engine
    ``radlens_core.results.AnalysisResult`` (its boxes, label map and label table)."""
    model_id = model_id or result.model_id
    version = version or result.model_version
    if not model_id or not version:
        raise LabelError("a model finding needs the model's id and version for its provenance")
    marks = provenance_marks(result)
    if marks:
        version = f"{version}{'.' if '+' in version else '+'}{marks}"
    labels: Sequence[LabelClass]
    if isinstance(result, ResultRecord):
        lm, labels = result.label_map, result.labels
    elif result.label_map is not None:
        lm, labels = result.label_map.array, result.label_map.labels
    else:
        lm, labels = None, ()
    names = {int(i.index): str(i.name) for i in labels}
    colors = {int(i.index): str(i.color) for i in labels}
    return plan_proposal(doc, str(model_id), str(version), result.boxes, lm, names, colors)


def propose_result(
    doc: Document,
    result: ResultRecord | AnalysisResult,
    model_id: str | None = None,
    version: str | None = None,
) -> list[Annotation]:
    """Add an engine AnalysisResult or a ResultRecord as proposed annotations (see
    ``plan_result``), planned, prepared and applied at once."""
    return apply_proposal(doc, prepare_proposal(plan_result(doc, result, model_id, version)))


def box_overlap(a: Box, b: Box) -> tuple[float, float]:
    """(Dice, IoU) of two boxes treated as voxel blocks (inclusive centre corners)."""
    (alo, ahi), (blo, bhi) = a.bounds_zyx(), b.bounds_zyx()
    ea = np.maximum(np.subtract(ahi, alo) + 1, 0)
    eb = np.maximum(np.subtract(bhi, blo) + 1, 0)
    ei = np.maximum(np.minimum(ahi, bhi) - np.maximum(alo, blo) + 1, 0)
    va, vb, vi = float(np.prod(ea)), float(np.prod(eb)), float(np.prod(ei))
    if va + vb == 0:
        return 1.0, 1.0
    return 2 * vi / (va + vb), vi / (va + vb - vi)


def mask_overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    inter = float(np.count_nonzero(a & b))
    sa, sb = float(np.count_nonzero(a)), float(np.count_nonzero(b))
    if sa + sb == 0:
        return 1.0, 1.0
    return 2 * inter / (sa + sb), inter / (sa + sb - inter)


def model_vs_final(doc: Document) -> list[dict[str, Any]]:
    """For each model finding: what the user did and Dice/IoU between model and final."""
    rows: list[dict[str, Any]] = []
    dice: float | None
    iou: float | None
    for fid, orig in doc.originals.items():
        final = doc.annotations.get(fid)
        row: dict[str, Any] = {
            "id": fid,
            "kind": orig.kind,
            "label": orig.label,
            "source": orig.source,
            "score": orig.score,
            "model": orig.to_dict(),
        }
        if final is None:
            row.update(action="deleted", final=None, dice=None, iou=None)
        elif isinstance(orig, ModelMask):
            layer = doc.layers.get(orig.layer)
            model_m = layer.array == orig.label if layer is not None else np.zeros(doc.shape, bool)
            final_m = doc.labelmap.array == orig.label
            dice, iou = mask_overlap(model_m, final_m) if final.status != "rejected" else (0.0, 0.0)
            action = final.status
            if action == "accepted" and dice < 1.0:
                action = "edited"  # accepted, then painted over
            row.update(
                action=action,
                final=final.to_dict(),
                dice=dice,
                iou=iou,
                model_voxels=int(model_m.sum()),
                final_voxels=int(final_m.sum()),
            )
        else:
            if isinstance(orig, Box) and isinstance(final, Box):
                dice, iou = box_overlap(orig, final)
            elif is_planar(orig) and is_planar(final):
                dice, iou = mask_overlap(*masks_on_one_plane(orig, final, doc.shape))
            else:
                dice, iou = (
                    (1.0, 1.0)
                    if orig.to_dict() | {"status": ""} == final.to_dict() | {"status": ""}
                    else (None, None)
                )
            if final.status == "rejected":
                dice, iou = 0.0, 0.0
            row.update(action=final.status, final=final.to_dict(), dice=dice, iou=iou)
        rows.append(row)
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["action"]] = out.get(r["action"], 0) + 1
    return out
