"""AI results as exportable labels: the label maps of a series' stored analysis runs turned
into a label document, with what the export must say about them (model, version, run,
flags), for `radlens export` of a series that has AI results and no human labels. (The SEG of
one analysis run, for `radlens analyze` and `radlens batch`, is viewer.commands.analyze_outputs'.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from radlens_core.results import LabelClass
from viewer.labels.dicomseg import Algorithm
from viewer.labels.document import Document
from viewer.labels.export import AiSource
from viewer.labels.model import LabelSet, annotation_class
from viewer.labels.results import ResultRecord


def ai_document(
    series_uid: str, shape: Sequence[int], records: Sequence[ResultRecord]
) -> tuple[Document, AiSource] | None:
    """One document holding the label maps of ``records`` (newest run of each model whose
    mask the user did not remove), or None when none has one. Two models' labels never share
    an index; a name two models use is suffixed with the model id."""
    runs = [r for r in records if r.label_map is not None and "mask" in r.layers()]
    if not runs:
        return None
    doc = Document(shape, series_uid, LabelSet(()))
    array = np.zeros(tuple(shape), dtype=np.uint8)
    classes: list[LabelClass] = []
    names: set[str] = set()
    report: list[dict[str, Any]] = []
    for rec in runs:
        assert rec.label_map is not None
        if tuple(rec.label_map.shape) != tuple(shape):
            continue  # a run on another grid of this series (never written by the engine)
        present = [int(v) for v in np.unique(rec.label_map) if v]
        for value in present:
            index = len(classes) + 1
            if index > 255:
                break
            name = rec.label_name(value) or f"label {value}"
            if name in names:
                name = f"{name} ({rec.model_id})"
            names.add(name)
            colour = next((c.color for c in rec.labels if c.index == value), "#ff0000")
            classes.append(annotation_class(index, name[:64], colour))
            array[(rec.label_map == value) & (array == 0)] = index
        report.append(
            {
                "model_id": rec.model_id,
                "model_name": rec.model_name,
                "model_version": rec.model_version,
                "run_id": rec.run_id,
                "created": rec.created,
                "outside_intended_use": rec.outside_intended_use,
                "flags": [f.message for f in rec.flags],
                "labels": [rec.label_name(v) for v in present],
            }
        )
    if not classes:
        return None
    doc.label_set = LabelSet(tuple(classes))
    doc.labelmap.array[...] = array
    algorithm = Algorithm(
        "AUTOMATIC",
        "+".join(dict.fromkeys(str(r["model_id"]) for r in report)),
        "+".join(dict.fromkeys(str(r["model_version"]) for r in report)),
    )
    flagged = any(r["outside_intended_use"] or r["flags"] for r in report)
    summary = ", ".join(f"{r['model_id']}@{r['model_version']} run {r['run_id']}" for r in report)
    if flagged:
        summary += " (FLAGGED: see ai_results)"
    return doc, AiSource(algorithm, report, summary)


def has_human_labels(doc: Document) -> bool:
    """Whether a person labelled the series: painted voxels, or annotations that are not a
    model's unreviewed proposals (accepted or edited model findings count as the person's)."""
    if doc.labelmap.array.any():
        return True
    return any(
        not a.from_model or a.status in ("accepted", "edited") for a in doc.annotations.values()
    )
