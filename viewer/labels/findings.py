"""Model findings as proposed annotations, and what the user finally made of each of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

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


def _box_from(item: Any, source: str, label_default: int = 1) -> Any:
    """A Box from an engine box (attributes lo/hi, zyx_min/zyx_max or corners) or a tuple
    (lo_zyx, hi_zyx, label, score). 2D results (lo/hi of length 2) land on slice 0."""
    if isinstance(item, (tuple, list)):
        lo, hi, label, score = (list(item) + [label_default, None])[:4]
    else:
        lo = next((getattr(item, k) for k in ("lo", "zyx_min", "start") if hasattr(item, k)), None)
        hi = next((getattr(item, k) for k in ("hi", "zyx_max", "end") if hasattr(item, k)), None)
        if lo is None and hasattr(item, "corners"):
            c = list(item.corners)
            lo, hi = c[: len(c) // 2], c[len(c) // 2 :]
        if lo is None or hi is None:
            raise LabelError(f"cannot read the corners of model box {item!r}")
        label = getattr(item, "label", label_default)
        score = getattr(item, "score", None)
    lo, hi = [float(v) for v in lo], [float(v) for v in hi]
    score = None if score is None else float(score)
    name = label if isinstance(label, str) else None
    idx = 1 if name is not None else int(label)
    if len(lo) == 2:
        box = Box(idx, source=source, status="proposed", score=score, corners=(*lo, *hi), z=0)
    elif len(lo) == 3:
        box = Box(idx, source=source, status="proposed", score=score, corners=(*lo, *hi))
    else:
        raise LabelError(f"a model box needs 2 or 3 coordinates per corner, got {lo}")
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


def propose(
    doc: Document,
    model_id: str,
    version: str,
    boxes: Iterable[Any] = (),
    label_map: np.ndarray | None = None,
    label_names: dict[int, str] | None = None,
    label_colors: dict[int, str] | None = None,
) -> list[Annotation]:
    """Add a model's boxes and/or label map as proposed annotations, one undoable step.

    A label map becomes a model layer plus one ``ModelMask`` per label it contains. With
    ``label_names`` (the card's table) model labels map to the document's classes by name,
    and names the document lacks are added to its label set."""
    source = model_source(model_id, version)
    names = dict(label_names or {})
    edits: list[Edit] = []
    added: list[Annotation] = []
    parsed = [_box_from(item, source) for item in boxes]
    for i, b in enumerate(parsed):  # string labels (engine records) name a class
        if isinstance(b, tuple):
            name = b[1]
            idx = next((k for k, v in names.items() if v == name), None)
            if idx is None:
                idx = max(names, default=0) + 1000 + i
                names[idx] = name
            parsed[i] = replace(b[0], label=idx)
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
    if names:
        mapping, new_set = _resolve_labels(doc, names, label_colors or {})
        if new_set != doc.label_set:
            edits.append(LabelSetEdit(doc.label_set, new_set, "labels of a model"))
    for b in parsed:
        b = replace(b, label=mapping.get(b.label, b.label))
        added.append(b)
        edits.append(AnnotationEdit(None, b, "model box"))
    if arr is not None:
        if mapping:
            lut = np.arange(256, dtype=np.uint8)
            for k, v in mapping.items():
                if 0 <= k < 256:
                    lut[k] = v
            arr = lut[arr.astype(np.uint8)]
        before = doc.layers[source].array.copy() if source in doc.layers else None
        edits.append(LayerEdit(source, before, arr.astype(np.uint8)))
        for label in (int(v) for v in np.unique(arr) if v):
            m = ModelMask(label, source=source, status="proposed", layer=source)
            added.append(m)
            edits.append(AnnotationEdit(None, m, "model mask"))
    if edits:
        doc.apply(CompoundEdit(tuple(edits), f"findings of {source}"))
    return added


def propose_result(
    doc: Document, result: Any, model_id: str | None = None, version: str | None = None
) -> list[Annotation]:
    """Add an engine AnalysisResult or a ``viewer.labels.results.ResultRecord`` (read by
    attribute: ``boxes``, ``label_map``, ``labels``, ``model_id``/``model_version`` or
    ``card.id``/``card.version``) as proposed annotations."""
    card = getattr(result, "card", None)
    model_id = model_id or getattr(result, "model_id", None) or getattr(card, "id", None)
    version = version or getattr(result, "model_version", None) or getattr(card, "version", None)
    if not model_id or not version:
        raise LabelError("a model finding needs the model's id and version for its provenance")
    lm_obj = getattr(result, "label_map", None)
    lm = lm_obj if lm_obj is None or isinstance(lm_obj, np.ndarray) else lm_obj.array
    # The label table: on the record, on the engine's LabelMapResult, or on the card.
    infos = (
        getattr(result, "labels", None)
        or getattr(lm_obj, "labels", None)
        or getattr(card, "labels", None)
        or []
    )
    names = {int(i.index): str(i.name) for i in infos if hasattr(i, "index")}
    colors = {int(i.index): str(i.color) for i in infos if hasattr(i, "color")}
    return propose(
        doc, str(model_id), str(version), getattr(result, "boxes", None) or (), lm, names, colors
    )


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
