"""Turn a segment editor result into one undoable edit of a Document's label map.

An operation computes a new mask for one label (or new label values for a region); these
helpers compare it with the label map as it is, keep only the slices that change (cropped
to what changed) and apply them as a single ``MaskEdit`` -- one undo step, journalled like
a brush stroke. Other labels are protected unless ``overwrite`` says otherwise.
"""

from __future__ import annotations

import numpy as np

from viewer.labels.document import CompoundEdit, Document, LabelSetEdit
from viewer.labels.edit_ops import Region, bounding_region
from viewer.labels.labelmap import MaskEdit, SliceDiff
from viewer.labels.model import LabelError, LabelSet, annotation_class

#: distinct colours for labels made by "split islands" (cycled)
SPLIT_COLOURS = ("#66bb6a", "#ab47bc", "#26a69a", "#ec407a", "#8d6e63", "#5c6bc0", "#d4e157")


def label_values(
    current: np.ndarray, label: int, new_mask: np.ndarray, overwrite: bool = False
) -> np.ndarray:
    """The values ``current`` takes when ``label`` becomes exactly ``new_mask`` (same shape):
    voxels of ``label`` outside it go to background, voxels inside it take ``label`` --
    unless they belong to another label and ``overwrite`` is False. Whole-array passes, no
    boolean scatter: a region the size of the series (a lung) costs a few copies."""
    is_label = current == label
    take = new_mask if overwrite else new_mask & ((current == 0) | is_label)
    kept = np.where(is_label, np.uint8(0), current)
    return np.where(take, np.asarray(label, current.dtype), kept)


def region_edit(
    array: np.ndarray, region: Region, values: np.ndarray, description: str
) -> MaskEdit:
    """The MaskEdit that writes ``values`` into ``array[region]`` (one diff per changed z,
    cropped to the rows and columns that change)."""
    if values.shape != array[region].shape:
        raise LabelError(f"values of shape {values.shape} do not fit the region {region}")
    z0 = region[0].indices(array.shape[0])[0]
    oy = region[1].indices(array.shape[1])[0]
    ox = region[2].indices(array.shape[2])[0]
    before = array[region]
    changed = before != values
    diffs = []
    for i in np.flatnonzero(changed.any(axis=(1, 2))):
        rows, cols = changed[i].any(axis=1), changed[i].any(axis=0)
        y0, y1 = int(rows.argmax()), len(rows) - int(rows[::-1].argmax())
        x0, x1 = int(cols.argmax()), len(cols) - int(cols[::-1].argmax())
        diffs.append(
            SliceDiff(
                z0 + int(i),
                (y0 + oy, x0 + ox, y1 + oy, x1 + ox),
                np.ascontiguousarray(before[i, y0:y1, x0:x1], dtype=np.uint8).tobytes(),
                np.ascontiguousarray(values[i, y0:y1, x0:x1], dtype=np.uint8).tobytes(),
            )
        )
    return MaskEdit(tuple(diffs), description)


def label_mask_edit(
    array: np.ndarray,
    label: int,
    new_mask: np.ndarray,
    description: str,
    overwrite: bool = False,
    region: Region | None = None,
) -> MaskEdit:
    """The edit making ``label`` equal ``new_mask`` (full series shape, or ``region``'s shape
    when a region is given) in ``array``; nothing is written (safe on a worker thread)."""
    if region is None:
        if new_mask.shape != array.shape:
            raise LabelError(f"mask of shape {new_mask.shape} does not match {array.shape}")
        # Only where the label was or will be can anything change.
        region = bounding_region((array == label) | new_mask)
        if region is None:
            return MaskEdit((), description)
        new_mask = new_mask[region]
    values = label_values(array[region], label, np.asarray(new_mask, bool), overwrite)
    return region_edit(array, region, values, description)


def apply_label_mask(
    document: Document,
    label: int,
    new_mask: np.ndarray,
    description: str,
    overwrite: bool = False,
    region: Region | None = None,
) -> MaskEdit:
    """Make ``label`` equal ``new_mask`` in one undo step (see ``label_mask_edit``); returns
    the edit (empty, and nothing recorded, when nothing changed)."""
    edit = label_mask_edit(document.labelmap.array, label, new_mask, description, overwrite, region)
    if not edit.empty:
        document.apply(edit)
    return edit


def apply_split(
    document: Document, label: int, parts: np.ndarray, description: str = "split islands"
) -> list[int]:
    """Island 1 keeps ``label``; islands 2.. of ``parts`` (numbered, full shape) get new label
    classes named after it; one undo step. Returns the label indices used, in island order."""
    n = int(parts.max()) if parts.size else 0
    if n < 1:
        raise LabelError(f"label {label} has no island to split")
    base = document.label_set.get(label)
    free = [i for i in range(1, 256) if i not in document.label_set]
    if len(free) < n - 1:
        raise LabelError(f"splitting into {n} labels needs {n - 1} free label indices")
    classes = list(document.label_set.classes)
    names = {c.name for c in classes}
    used = [label]
    for k in range(2, n + 1):
        index = free[k - 2]
        name, j = f"{base.name} {k}", k
        while name in names:
            j += 1
            name = f"{base.name} {j}"
        names.add(name)
        classes.append(annotation_class(index, name, SPLIT_COLOURS[(k - 2) % len(SPLIT_COLOURS)]))
        used.append(index)
    after = LabelSet(tuple(classes))
    array = document.labelmap.array
    region = bounding_region((parts > 0) | (array == label))
    assert region is not None
    sub, cur = parts[region], array[region]
    values = cur.copy()
    for k, index in enumerate(used, start=1):
        values[sub == k] = index
    values[(cur == label) & (sub == 0)] = 0  # islands below the size limit are removed
    edits: list = []
    if after != document.label_set:
        edits.append(LabelSetEdit(document.label_set, after, "split labels"))
    mask_edit = region_edit(array, region, values, description)
    if not mask_edit.empty:
        edits.append(mask_edit)
    if edits:
        document.apply(edits[0] if len(edits) == 1 else CompoundEdit(tuple(edits), description))
    return used
