"""The Findings dock of a many-label segmentation: organs are one collapsible, sorted
structures group with volumes; lesions, detections and classes stay findings."""

from __future__ import annotations

import numpy as np

from radlens_core.results import LabelClass, LabelMap
from tests.analysis_fakes import analysis_result
from viewer.labels.result_findings import summarise
from viewer.labels.results import record_from_result
from viewer.ui.panels.findings import FindingsPanel


def _many_label_result(n_organs: int = 100):
    """A 100-organ anatomy model's answer (TotalSegmentator-like) with two lung nodules."""
    lm = np.zeros((40, 60, 60), np.uint8)
    labels = []
    for i in range(1, n_organs + 1):
        z, rest = divmod(i - 1, 25)
        y, x = divmod(rest, 5)
        lm[z * 10 : z * 10 + 8, y * 12 : y * 12 + 10, x * 12 : x * 12 + 10] = i
        labels.append(LabelClass(i, f"organ_{n_organs + 1 - i:03d}", "#4fc3f7"))
    nodule = n_organs + 1
    lm[2:5, 2:5, 2:5] = nodule
    lm[30:33, 50:53, 50:53] = nodule
    labels.append(LabelClass(nodule, "lung_nodules", "#ff7043"))
    return analysis_result(label_map=LabelMap(lm, tuple(labels)))


def test_a_100_label_result_lists_lesions_as_findings_and_organs_as_one_closed_group(qtbot):
    rec = record_from_result(_many_label_result())
    summary = summarise(rec, (1.0, 1.0, 2.0))
    assert [f.label for f in summary.findings] == ["lung_nodules", "lung_nodules"]
    assert len(summary.structures) == 100
    panel = FindingsPanel()
    qtbot.addWidget(panel)
    panel.add_run(rec, summary)
    ((title, rows, expanded),) = panel.structure_rows()
    assert title.startswith("Structures (100, ")
    assert not expanded  # dozens of organs stay folded so the findings are in view
    assert rows[:2] == ["organ_001: 1.55 mL", "organ_002: 1.6 mL"]  # 001 lost 27 voxels to a nodule
    assert rows == sorted(rows, key=str.casefold)
    top = panel.tree.topLevelItem(0)
    texts = [top.child(i).text(0) for i in range(top.childCount())]
    assert len(texts) == 3  # the group and the two nodules: not 100 "findings"
    assert sum("lung_nodules" in t for t in texts) == 2
    assert len(panel.findings()) == 2


def test_a_small_lung_model_lists_its_lungs_inline_and_nodules_as_findings(qtbot):
    lm = np.zeros((20, 40, 40), np.uint8)
    lm[2:18, 5:35, 5:18] = 1
    lm[2:18, 5:35, 22:35] = 1
    lm[8:11, 10:13, 10:13] = 2
    labels = (LabelClass(1, "lung", "#4fc3f7"), LabelClass(2, "nodule", "#ff7043"))
    rec = record_from_result(analysis_result(label_map=LabelMap(lm, labels)))
    panel = FindingsPanel()
    qtbot.addWidget(panel)
    panel.add_run(rec, summarise(rec, (1.0, 1.0, 1.0)))
    assert panel.structure_rows() == []  # no group for one structure
    top = panel.tree.topLevelItem(0)
    assert top.child(0).text(0) == "lung: 12.5 mL (structure)"  # (2 x 16 x 30 x 13 - 27) voxels
    assert [f.label for f in panel.findings()] == ["nodule"]


def test_an_unnamed_label_of_a_small_model_is_still_a_finding_but_not_of_a_big_one():
    from viewer.labels.result_findings import is_finding_label

    assert is_finding_label("label_3", 10, 10_000, n_labels=3)
    assert not is_finding_label("label_3", 10, 10_000, n_labels=40)
    assert is_finding_label("Liver tumor", 900, 10_000, n_labels=40)  # a lesion, even large
    assert not is_finding_label("liver", 10, 10_000, n_labels=2)
