"""The Train dialog while a real trainer runs: main-thread tick gaps, time to first epoch, Stop.

A 10 ms QTimer records the longest gap between its ticks for the whole run (the child
process must not block the window); the run is stopped after its third epoch and the time
from Stop to the child's exit is measured. Numbers land in extra_info; run with
``pytest tests/benchmarks/test_bench_train_dialog.py --benchmark-only -s``.
"""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from viewer.ui.train_dialog import TrainDialog, TrainRequest

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from inference.training.dataset import write_case
    from phantoms.chest import chest_ct

    root = tmp_path_factory.mktemp("bench-ds")
    for i in range(6):
        ct = chest_ct(shape=(32, 64, 64), seed=i, n_nodules=2)
        labels = {1: "lung", 2: "nodule"}
        write_case(root, f"case{i}", ct.hu, ct.labels, ct.spacing, labels, patient_id=f"p{i}")
    return root


def test_train_dialog_stays_responsive_and_stops_promptly(benchmark, qtbot, dataset, tmp_path):
    numbers: dict[str, float] = {}

    def run() -> None:
        dialog = TrainDialog()
        qtbot.addWidget(dialog)
        out = tmp_path / f"run{len(numbers)}"
        dialog.set_request(
            TrainRequest(
                dataset,
                "segmentation",
                out,
                1000,
                steps_per_epoch=4,
                patch=(64, 64, 32),
                threads=2,
                publish=False,
            )  # fmt: skip
        )
        clock, gaps = QElapsedTimer(), [0]
        clock.start()
        last = [clock.elapsed()]

        def tick() -> None:
            now = clock.elapsed()
            gaps[0] = max(gaps[0], now - last[0])
            last[0] = now

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(10)
        t0 = time.perf_counter()
        dialog.start()
        qtbot.waitUntil(lambda: len(dialog.history) >= 1, timeout=300_000)
        numbers["first_epoch_s"] = time.perf_counter() - t0
        qtbot.waitUntil(lambda: len(dialog.history) >= 3, timeout=300_000)
        t1 = time.perf_counter()
        with qtbot.waitSignal(dialog.training_finished, timeout=60_000):
            dialog.stop()
        numbers["stop_to_exit_s"] = time.perf_counter() - t1
        timer.stop()
        numbers["max_tick_gap_ms"] = float(gaps[0])
        assert dialog.runner.outcome.ok and (out / "model.json").is_file()

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(numbers)
    print(numbers)
