"""A process killed with SIGKILL after editing loses nothing older than two seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from viewer.labels.labelmap import disk_mask
from viewer.labels.store import LabelStore
from viewer.study.volume import Volume

UID = "1.2.826.0.1.3680043.8.498.424242"
REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    f"""
    import sys, time
    import numpy as np
    from viewer.labels.labelmap import disk_mask
    from viewer.labels.model import Box, Ruler
    from viewer.labels.store import LabelStore
    from viewer.study.volume import Volume

    vol = Volume(np.zeros((6, 32, 32), np.int16), series_uid="{UID}", modality="CT")
    store = LabelStore.open(vol)
    doc = store.document
    doc.add(Box(2, id="box1", corners=(1, 2, 3, 4), z=2))
    doc.add(Ruler(1, id="ruler1", start=(0, 0, 0), end=(0, 3, 4)))
    doc.paint(3, disk_mask((32, 32), (12, 12), 4), 2)
    doc.paint_sphere((3, 20, 20), 3.0, 1, (1.0, 1.0, 1.0))
    doc.remove("ruler1")
    print("edited", flush=True)
    time.sleep(600)  # waits to be killed; never closes the store
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_after_two_seconds_then_new_process_restores_edits(_isolated_user_data):
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADLENS_DATA_DIR": str(_isolated_user_data)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "edited"
        time.sleep(2.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    vol = Volume(np.zeros((6, 32, 32), np.int16), series_uid=UID, modality="CT")
    with LabelStore.open(vol) as store:
        doc = store.document
        assert set(doc.annotations) == {"box1"}
        assert doc.annotations["box1"].corners == (1, 2, 3, 4)
        expected = np.zeros((6, 32, 32), np.uint8)
        expected[3][disk_mask((32, 32), (12, 12), 4)] = 2
        zz, yy, xx = np.ogrid[0:6, 0:32, 0:32]
        expected[(zz - 3) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 9] = 1
        assert np.array_equal(doc.labelmap.array, expected)
        assert store.recovered_edits == 5
