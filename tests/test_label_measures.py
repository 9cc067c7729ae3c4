"""The export's per-label measures in one pass equal the per-label mask statistics."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.labels.stats import label_measures, label_stats
from viewer.study.volume import Volume


def test_one_pass_measures_equal_per_label_statistics():
    rng = np.random.default_rng(5)
    image = rng.normal(40, 300, (7, 30, 40)).astype(np.float32)
    labels = rng.integers(0, 6, image.shape).astype(np.uint8)
    labels[labels == 4] = 200
    labels[0, 0, 0] = 9  # a single voxel: SD 0
    volume = Volume(image, spacing=(0.6, 0.8, 2.5), modality="CT")
    measures = label_measures(volume, labels)
    assert sorted(measures) == [1, 2, 3, 5, 9, 200]
    for index, m in measures.items():
        s = label_stats(volume, labels, index)
        assert m["voxels"] == s.voxels
        assert m["volume_ml"] == pytest.approx(s.volume_ml)
        assert m["mean"] == pytest.approx(s.mean, rel=1e-9, abs=1e-9)
        assert m["sd"] == pytest.approx(s.sd, rel=1e-9, abs=1e-9)
