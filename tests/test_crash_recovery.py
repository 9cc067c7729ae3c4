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


# ---- the loss bound with model layers, also after a disk-full episode -----------------------------
LAYERS_UID = "1.2.826.0.1.3680043.8.498.434343"
PACED = textwrap.dedent(
    f"""
    import errno, sys, time
    import numpy as np
    from viewer.labels import journal
    from viewer.labels.document import LayerEdit
    from viewer.labels.labelmap import disk_mask
    from viewer.labels.store import LabelStore
    from viewer.study.volume import Volume

    shape = tuple(int(v) for v in sys.argv[1].split("x"))
    full_from, full_until = float(sys.argv[2]), float(sys.argv[3])
    vol = Volume(np.zeros(shape, np.int16), series_uid="{LAYERS_UID}", modality="CT")
    store = LabelStore.open(vol)
    doc = store.document
    for i in range(3):  # three model layers, as after three models ran
        layer = np.zeros(shape, np.uint8)
        layer[i::3, shape[1] // 4 : shape[1] // 2, shape[2] // 4 : shape[2] // 2] = i + 1
        doc.apply(LayerEdit(f"model:m{{i}}@1", None, layer))
    store.flush()
    real_write, full = journal._write, [False]

    def write(fd, data):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    journal._write = write
    dab = disk_mask(shape[1:], (shape[1] // 2, shape[2] // 2), 5)
    t0, i = time.monotonic(), 0
    while True:
        full[0] = full_from <= time.monotonic() - t0 < full_until
        doc.paint(i % shape[0], dab, 1 + (i // shape[0]) % 2)  # each one changes voxels
        print(i, time.monotonic() - t0, store.status.state.value, flush=True)  # acknowledged
        i += 1
        time.sleep(0.01)
    """
)


def expected_paint(shape: tuple[int, int, int], n: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    dab = disk_mask(shape[1:], (shape[1] // 2, shape[2] // 2), 5)
    for i in range(n):
        out[i % shape[0]][dab] = 1 + (i // shape[0]) % 2
    return out


def kill_while_editing(
    data_dir: Path, shape: tuple[int, int, int], kill_at: float, full: tuple[float, float]
) -> dict[str, float]:
    """Edit at a steady pace in a child (three model layers loaded), SIGKILL it ``kill_at``
    seconds into editing, reopen. Answers the edits acknowledged and restored, the edits that
    were acknowledged at least 2 s before the last one, and the seconds of edits lost."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADLENS_DATA_DIR": str(data_dir)}
    size = "x".join(str(v) for v in shape)
    child = subprocess.Popen(
        [sys.executable, "-c", PACED, size, str(full[0]), str(full[1])],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    acks: list[tuple[int, float, str]] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            i, t, state = line.split()
            acks.append((int(i), float(t), state))
            if float(t) >= kill_at:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.stdout is not None
    for line in child.stdout:  # what it printed before it died
        i, t, state = line.split()
        acks.append((int(i), float(t), state))
    vol = Volume(np.zeros(shape, np.int16), series_uid=LAYERS_UID, modality="CT")
    store = LabelStore.open(vol)
    try:
        doc = store.document
        restored = store.recovery.seq - 3  # the three layer edits came first
        assert sorted(doc.layers) == ["model:m0@1", "model:m1@1", "model:m2@1"]
        assert np.array_equal(doc.labelmap.array, expected_paint(shape, restored))
    finally:
        store._abandon()
    last = acks[-1][1]
    return {
        "acknowledged": len(acks),
        "restored": restored,
        "older_than_2s": sum(1 for _, t, _ in acks if t <= last - 2.0),
        "failing_seen": float(any(s == "failing" for _, _, s in acks)),
        "lost_s": last - acks[restored - 1][1] if 0 < restored <= len(acks) else last,
    }


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize(
    ("kill_at", "full"), [(2.5, (99.0, 99.0)), (3.5, (1.0, 2.0))], ids=["steady", "after-disk-full"]
)
def test_sigkill_with_three_model_layers_loses_at_most_two_seconds_of_edits(
    _isolated_user_data, kill_at, full
):
    m = kill_while_editing(_isolated_user_data, (30, 96, 96), kill_at, full)
    print(f"SIGKILL with model layers: {m}")
    assert m["restored"] <= m["acknowledged"]
    # Counted, not timed: every edit acknowledged 2 s or more before the last one is back.
    assert m["restored"] >= m["older_than_2s"] > 0
    if full[0] < kill_at:
        assert m["failing_seen"]  # the episode was reported while it lasted
