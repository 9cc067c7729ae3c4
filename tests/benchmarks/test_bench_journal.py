"""How much a SIGKILL loses on a 300 x 512 x 512 series with three model layers, steady and
right after a disk-full episode (the promise: at most the last 2 s of edits).

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_journal.py --benchmark-enable --benchmark-only -q -s
"""

from __future__ import annotations

import signal

import pytest

from tests.test_crash_recovery import kill_while_editing

SHAPE = (300, 512, 512)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize(
    ("kill_at", "full"), [(6.0, (99.0, 99.0)), (7.0, (2.0, 4.0))], ids=["steady", "after-disk-full"]
)
def test_bench_sigkill_loss_with_three_model_layers(benchmark, _isolated_user_data, kill_at, full):
    result: dict[str, float] = {}

    def run() -> None:
        result.update(kill_while_editing(_isolated_user_data, SHAPE, kill_at, full))

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\n{SHAPE} + 3 model layers, SIGKILL at {kill_at} s: {result}")
    assert result["restored"] >= result["older_than_2s"] > 0
