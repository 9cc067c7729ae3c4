"""Model findings planned, prepared (off the UI thread) and applied to a label Document."""

from __future__ import annotations

import numpy as np
import pytest

import viewer.labels.findings as findings
from viewer.labels.document import Document
from viewer.labels.findings import apply_proposal, plan_proposal, prepare_proposal, propose
from viewer.labels.model import LabelClass, LabelError, LabelSet


def _classes() -> LabelSet:
    # "lung" is missing and "nodule" sits at another index than the model's: a real mapping.
    return LabelSet((LabelClass(1, "vessel", "#00ff00"), LabelClass(4, "nodule", "#ff0000")))


def _label_map() -> np.ndarray:
    lm = np.zeros((9, 6, 7), np.uint8)
    lm[1:4, 1:3, 1:3] = 1
    lm[7, 4, 5] = 2  # one voxel in the last slab: every slab must be looked at
    return lm


def test_prepared_map_uses_document_indices_across_slabs(monkeypatch):
    monkeypatch.setattr(findings, "_SLAB_VOXELS", 2 * 6 * 7)  # two slices per step
    doc = Document((9, 6, 7), "uid", _classes())
    plan = plan_proposal(
        doc, "seg", "1", label_map=_label_map(), label_names={1: "lung", 2: "nodule"}
    )
    assert plan.mapped is None and plan.voxels == 9 * 6 * 7  # planning touches no voxel
    prepared = prepare_proposal(plan)
    assert prepared.label_set.by_name("lung").index == 5  # added after the document's classes
    assert prepared.present == (4, 5)
    assert prepared.mapped[7, 4, 5] == 4 and prepared.mapped[2, 1, 1] == 5
    assert int(np.count_nonzero(prepared.mapped)) == int(np.count_nonzero(_label_map()))


def test_applied_proposal_is_one_undo_step_and_layer_is_read_only():
    doc = Document((9, 6, 7), "uid", _classes())
    added = propose(doc, "seg", "1", label_map=_label_map(), label_names={1: "lung", 2: "nodule"})
    assert sorted(a.kind for a in added) == ["ModelMask", "ModelMask"]
    layer = doc.layers["model:seg@1"].array
    with pytest.raises(ValueError):
        layer[0, 0, 0] = 1  # the model's original must stay what the model said
    doc.undo()
    assert doc.annotations == {} and doc.layers == {} and doc.label_set == _classes()


def test_proposal_prepared_for_old_label_classes_is_refused():
    doc = Document((9, 6, 7), "uid", _classes())
    prepared = prepare_proposal(
        plan_proposal(doc, "seg", "1", label_map=_label_map(), label_names={1: "lung"})
    )
    doc.set_label_set(doc.label_set.add("bone", "#ffffff"))  # the user edits classes meanwhile
    with pytest.raises(LabelError, match="label classes changed"):
        apply_proposal(doc, prepared)


def test_model_layer_comes_back_from_journal_and_snapshot_read_only():
    from viewer.labels.store import LabelStore
    from viewer.study.volume import Volume

    vol = Volume(np.zeros((9, 6, 7), np.int16), series_uid="1.2.3.77", modality="CT")
    store = LabelStore.open(vol)
    propose(store.document, "seg", "1", label_map=_label_map(), label_names={1: "lung"})
    store.flush()
    store._abandon()  # as a crash would: only the journal has the layer
    recovered = LabelStore.open(vol)
    layer = recovered.document.layers["model:seg@1"].array
    assert int(np.count_nonzero(layer)) == int(np.count_nonzero(_label_map()))
    assert not layer.flags.writeable
    recovered.close()  # snapshot written from the shared (uncopied) read-only layer
    again = LabelStore.read(vol).layers["model:seg@1"].array
    assert np.array_equal(again, layer) and not again.flags.writeable
