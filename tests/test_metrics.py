"""Metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.training import metrics as m


def test_dice_and_iou_of_overlapping_squares_match_hand_count():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0:2, 0:2] = True  # 4 voxels
    b[0:2, 1:3] = True  # 4 voxels, 2 shared
    assert m.dice(a, b) == pytest.approx(2 * 2 / 8)
    assert m.iou(a, b) == pytest.approx(2 / 6)


def test_empty_prediction_of_empty_truth_is_perfect_and_one_empty_is_undefined_distance():
    z = np.zeros((3, 3), bool)
    one = z.copy()
    one[1, 1] = True
    assert m.dice(z, z) == 1.0 and m.iou(z, z) == 1.0 and m.hausdorff95(z, z) == 0.0
    assert m.dice(one, z) == 0.0
    assert math.isnan(m.hausdorff95(one, z))


def test_hausdorff95_uses_spacing_in_xyz_order():
    # Two single voxels 3 rows apart (axis y): distance 3 * y-spacing.
    a = np.zeros((1, 5, 5), bool)
    b = np.zeros((1, 5, 5), bool)
    a[0, 0, 2] = True
    b[0, 3, 2] = True
    assert m.hausdorff95(a, b, spacing=(1.0, 2.0, 5.0)) == pytest.approx(6.0)
    assert m.hausdorff95(a, b, spacing=(2.0, 1.0, 5.0)) == pytest.approx(3.0)


def test_hausdorff95_of_shifted_block_is_the_shift():
    a = np.zeros((12, 12), bool)
    a[2:8, 2:8] = True
    b = np.roll(a, 2, axis=1)
    assert m.hausdorff95(a, b) == pytest.approx(2.0)


def test_per_label_scores_each_index_separately():
    pred = np.array([[1, 1, 2, 0]])
    truth = np.array([[1, 0, 2, 2]])
    d = m.dice_per_label(pred, truth, [1, 2])
    assert d[1] == pytest.approx(2 / 3) and d[2] == pytest.approx(2 / 3)
    assert m.iou_per_label(pred, truth, [2])[2] == pytest.approx(0.5)


def test_box_iou_of_half_overlapping_boxes():
    a = [[0, 0, 2, 2]]
    b = [[1, 0, 3, 2]]
    assert m.box_iou(a, b)[0, 0] == pytest.approx(2 / 6)


def test_match_boxes_counts_duplicate_hit_as_false_positive():
    truth = [[0, 0, 10, 10], [20, 20, 30, 30]]
    preds = [[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]]
    match = m.match_boxes(preds, [0.9, 0.8, 0.7], truth, rule="iou", min_iou=0.5)
    assert match.is_tp.tolist() == [True, False, False]
    assert match.matched.tolist() == [0, -1, -1]
    assert match.n_true == 2


def test_match_boxes_centre_rule_needs_centre_inside_truth():
    truth = [[0, 0, 0, 4, 4, 4]]
    inside = [[1, 1, 1, 7, 7, 3]]  # centre (4, 4, 2): on the border counts
    outside = [[3, 3, 3, 9, 9, 9]]  # centre (6, 6, 6)
    assert m.match_boxes(inside, [1.0], truth, rule="centre").is_tp.tolist() == [True]
    assert m.match_boxes(outside, [1.0], truth, rule="centre").is_tp.tolist() == [False]


def test_froc_and_average_precision_on_two_cases():
    # Case 1: truths A, B; predictions: hit A (0.9), miss (0.8). Case 2: truth C; hit C (0.6), miss (0.95).
    c1 = m.match_boxes(
        [[0, 0, 2, 2], [10, 10, 12, 12]], [0.9, 0.8], [[0, 0, 2, 2], [5, 5, 7, 7]], min_iou=0.5
    )
    c2 = m.match_boxes([[0, 0, 2, 2], [8, 8, 9, 9]], [0.6, 0.95], [[0, 0, 2, 2]], min_iou=0.5)
    # Pooled by score: 0.95 FP, 0.9 TP, 0.8 FP, 0.6 TP; 3 truths, 2 cases.
    f = m.froc([c1, c2], fp_rates=(0.25, 0.5, 1.0))
    assert f.at == {0.25: 0.0, 0.5: pytest.approx(1 / 3), 1.0: pytest.approx(2 / 3)}
    # PR points: (r=0,p=0) (1/3,1/2) (1/3,1/3) (2/3,1/2); envelope -> AP = 1/3*1/2 + 1/3*1/2
    assert m.average_precision([c1, c2]) == pytest.approx(1 / 3)
    assert m.mean_average_precision({1: [c1, c2], 2: []}) == pytest.approx(1 / 3)


def test_roc_auc_counts_ties_half():
    y = [0, 0, 1, 1]
    assert m.roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert m.roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    fpr, tpr, thr = m.roc_curve(y, [0.1, 0.4, 0.35, 0.8])
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]
    assert math.isnan(m.roc_auc([1, 1], [0.2, 0.3]))


def test_confusion_matrix_and_classification_report_by_hand():
    y_true = [1, 1, 1, 0, 0, 0, 0, 1]
    y_pred = [1, 1, 0, 0, 0, 1, 0, 1]
    cm = m.confusion_matrix(y_true, y_pred, 2)
    assert cm.tolist() == [[3, 1], [1, 3]]
    r = m.classification_report(y_true, y_pred)
    assert r["accuracy"] == pytest.approx(6 / 8)
    assert r["sensitivity"] == pytest.approx(3 / 4)
    assert r["specificity"] == pytest.approx(3 / 4)
    assert r["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    with pytest.raises(ValueError, match="class indices"):
        m.confusion_matrix([0, 2], [0, 1], 2)


def test_predictions_on_a_case_without_truth_are_all_false_positives():
    for rule in ("iou", "centre"):
        match = m.match_boxes([[0, 0, 2, 2], [5, 5, 6, 6]], [0.9, 0.2], [], rule=rule)
        assert match.is_tp.tolist() == [False, False] and match.n_true == 0
    f = m.froc([match, m.match_boxes([[0, 0, 2, 2]], [0.5], [[0, 0, 2, 2]])], fp_rates=(1.0,))
    assert f.at[1.0] == 1.0  # 2 FPs over 2 cases = 1 per case, and the one true box was found
