"""decode_centernet: synthetic centre heat maps decode to boxes where the objects are."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tasks.detect import box_iou, decode_centernet


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _centernet_3d(shape, objects):
    """objects: list of (centre zyx, extent zyx, peak score) -> (4, *shape) output."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    heat = np.zeros(shape, np.float32)
    sizes = np.zeros((3, *shape), np.float32)
    for c, ext, s in objects:
        g = s * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 4.0)
        heat = np.maximum(heat, g)
        for k in range(3):
            sizes[k][tuple(c)] = ext[k]
    return np.concatenate([_logit(heat)[None], sizes]).astype(np.float32)


def test_two_synthetic_centres_decode_to_two_boxes_around_them():
    out = _centernet_3d(
        (16, 32, 32), [((5, 10, 8), (4, 6, 6), 0.9), ((10, 24, 22), (2, 8, 4), 0.7)]
    )
    found = decode_centernet(out, score_threshold=0.5, nms_iou=0.1, max_boxes=10)
    assert len(found) == 2
    (b0, s0), (b1, s1) = found
    assert s0 == pytest.approx(0.9, abs=1e-3) and s1 == pytest.approx(0.7, abs=1e-3)
    assert np.allclose(b0, (3, 7, 5, 7, 13, 11))
    assert np.allclose(b1, (9, 20, 20, 11, 28, 24))


def test_peaks_below_threshold_are_dropped_and_max_boxes_respected():
    objs = [((4, 4 + 6 * i, 4), (2, 2, 2), 0.6 + 0.05 * i) for i in range(4)]
    out = _centernet_3d((8, 32, 8), objs)
    assert decode_centernet(out, score_threshold=0.95) == []
    two = decode_centernet(out, score_threshold=0.5, max_boxes=2)
    assert [round(s, 2) for _, s in two] == [0.75, 0.7]


def test_overlapping_peaks_are_suppressed_by_iou():
    out = _centernet_3d(
        (8, 32, 32), [((4, 10, 10), (4, 10, 10), 0.9), ((4, 13, 10), (4, 10, 10), 0.8)]
    )
    assert len(decode_centernet(out, 0.5, nms_iou=0.9)) == 2
    assert len(decode_centernet(out, 0.5, nms_iou=0.3)) == 1


def test_two_dimensional_output_gives_yx_boxes():
    heat = np.full((1, 20, 30), -8.0, np.float32)
    heat[0, 7, 12] = 3.0
    size = np.zeros((2, 20, 30), np.float32)
    size[:, 7, 12] = (4, 10)
    [(box, score)] = decode_centernet(np.concatenate([heat, size]), 0.5, 0.1, 5)
    assert np.allclose(box, (5, 7, 9, 17)) and score > 0.9


def test_box_iou_of_identical_and_disjoint_boxes():
    a = np.array([[0, 0, 0, 2, 2, 2]], float)
    assert box_iou(a, a)[0, 0] == pytest.approx(1.0)
    assert box_iou(a, a + 5)[0, 0] == 0.0


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match="1 \\+ d"):
        decode_centernet(np.zeros((3, 4, 4, 4), np.float32))
