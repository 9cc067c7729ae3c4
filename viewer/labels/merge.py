"""Imported labels merged into a label document: their classes join the label table (names
and colours kept) and their voxels the label map, as one undoable step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from radlens_core.results import LabelClass
from viewer.labels.model import LabelError, LabelSet, annotation_class


def merge_labels(
    doc: Any, array: np.ndarray, classes: Sequence[LabelClass], what: str, description: str
) -> tuple[dict[int, LabelClass], list[str]]:
    """Merge ``array`` (uint8 (z, y, x) holding the indices of ``classes``) into ``doc``.

    A class keeps its index unless the document uses that index for another class, or has
    its name at another index (then it joins that one); it moves to a free index otherwise.
    Returns ({imported index: class as merged}, notes naming every move)."""
    from viewer.labels.document import CompoundEdit, LabelSetEdit

    if array.shape != doc.shape:
        raise LabelError(f"{what}: labels of shape {array.shape} do not fit {doc.shape}")
    table = doc.label_set
    used = set(doc.labelmap.labels_present()) | {a.label for a in doc.annotations.values()}
    taken = {k.index for k in table} | {c.index for c in classes}
    lut = np.arange(256, dtype=np.uint8)
    merged: dict[int, LabelClass] = {}
    notes = []
    for c in classes:
        named = [k.index for k in table if k.name == c.name]
        held = c.index in table and table.get(c.index).name != c.name and c.index in used
        final = c
        if (named and named[0] != c.index) or held:
            free = named[0] if named else min(set(range(1, 256)) - taken, default=0)
            if not free:
                raise LabelError(f"{what}: no free label index left for {c.name!r}")
            taken.add(free)
            lut[c.index] = free
            notes.append(f"{c.name!r} imported as label {free}")
            final = annotation_class(free, c.name, c.color)
        table = LabelSet(
            (*(k for k in table if k.index != final.index and k.name != final.name), final)
        )
        merged[c.index] = final
    incoming = lut[array]
    new = doc.labelmap.array.copy()
    on = incoming != 0
    new[on] = incoming[on]
    mask_edit = doc.labelmap.set_array(new)
    doc.apply(CompoundEdit((LabelSetEdit(doc.label_set, table), mask_edit), description))
    return merged, notes
