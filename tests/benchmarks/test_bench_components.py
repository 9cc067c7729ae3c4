"""Cost of the segmenter's component rules (inference/components.py) at a large CT's size.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_components.py -o addopts=""
The default test run skips benchmarks (--benchmark-skip).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import components  # noqa: E402
from inference.components import ComponentRule  # noqa: E402

#: A 300 x 512 x 512 CT at 0.8 x 0.7 x 0.7 mm on the shipped segmenter's 2.5 x 2.5 x 5 mm grid.
MODEL_SHAPE = (48, 143, 143)
INPUT_SHAPE = (300, 512, 512)


def _lungs_with_specks(shape: tuple[int, int, int]) -> np.ndarray:
    """Two box "lungs", a few cube nodules and scattered single-voxel specks of each label."""
    nz, ny, nx = shape
    lab = np.zeros(shape, np.uint8)
    lab[nz // 6 : 5 * nz // 6, ny // 5 : 4 * ny // 5, nx // 10 : nx // 2 - 2] = 1
    lab[nz // 6 : 5 * nz // 6, ny // 5 : 4 * ny // 5, nx // 2 + 2 : 9 * nx // 10] = 1
    rng = np.random.default_rng(0)
    for z, y, x in zip(*(rng.integers(0, n - 6, 5) for n in shape), strict=True):
        lab[z : z + 5, y : y + 5, x : x + 5] = 2
    for value in (1, 2):
        idx = tuple(rng.integers(0, n, 200) for n in shape)
        lab[idx] = value
    return lab


def test_model_grid_rules_on_a_large_ct(benchmark):
    lab = _lungs_with_specks(MODEL_SHAPE)
    probs = torch.from_numpy(np.stack([lab == k for k in range(3)]).astype(np.float32) * 4)
    probs = probs.softmax(0)
    rules = (ComponentRule(1, keep_largest=2), ComponentRule(2, min_size=0.02))

    def run():
        p = probs.clone()
        return components.apply_on_model_grid(p, "softmax", [0, 1, 2], 0.5, rules, (5, 2.5, 2.5))

    dropped = benchmark(run)
    assert dropped[1] > 0


def test_input_grid_nodule_rule_on_a_large_ct(benchmark):
    lab = _lungs_with_specks(INPUT_SHAPE)
    rules = (ComponentRule(2, min_size=0.02, grid="input"),)

    dropped = benchmark(lambda: components.apply_on_input_grid(lab.copy(), rules, (0.8, 0.7, 0.7)))
    assert dropped[2] > 0
