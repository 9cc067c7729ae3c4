"""The window loads a compressed series through decoder processes from its loading thread."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import RLELossless

from tests.dicom_factory import write_ct_series
from viewer.study import decode
from viewer.ui.main_window import MainWindow

pytestmark = pytest.mark.gui


def test_window_shows_a_compressed_series_decoded_in_parallel(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv(decode.WORKERS_ENV, "2")
    frames = decode.MIN_PARALLEL_FRAMES + 4
    truth = write_ct_series(tmp_path / "ct", shape=(frames, 32, 32), transfer_syntax=RLELossless)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    try:
        with qtbot.waitSignal(window.series_loaded, timeout=30000) as blocker:
            window.open_path(tmp_path)
        qtbot.waitUntil(lambda: not window.tasks, timeout=10000)
        volume = blocker.args[0]
        assert np.array_equal(volume.array, truth.values)
        assert not volume.warnings
        axial = window.area.views["axial"]
        assert np.array_equal(axial.image.image, truth.values[axial.index()])
    finally:
        window.cancel_work()
        window.wait_idle()


def test_a_running_task_whose_last_reference_is_dropped_finishes_instead_of_aborting(qtbot):
    """Qt aborts the program when a QThread is destroyed while running: a Task nobody holds
    any more (a closed panel's) is kept until its thread has finished."""
    import gc
    import threading

    from viewer.ui import workers

    release = threading.Event()
    done = threading.Event()

    def job(ctx):
        release.wait(10)
        done.set()
        return 1

    before = set(workers._LIVE)  # tasks of earlier tests still ending are not this one
    task = workers.Task(job)
    task.start()
    ours = id(task)
    del task
    gc.collect()  # without the registry this destroys the running QThread: abort
    assert any(id(t) == ours for t in workers._LIVE - before)
    release.set()
    qtbot.waitUntil(lambda: done.is_set() and not (workers._LIVE - before), timeout=10000)
