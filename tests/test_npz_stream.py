"""The slab-wise npz writer gives a standard archive that np.load reads back exactly."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from viewer.labels.npz_stream import rows_per_slab, write_npz


def _load(buf: io.BytesIO) -> dict[str, np.ndarray]:
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_arrays_of_every_layout_read_back_identical_with_np_load():
    rng = np.random.default_rng(3)
    members = {
        "labels": rng.integers(0, 4, (37, 19, 23), dtype=np.uint8),
        "heat": rng.random((5, 7, 11), dtype=np.float32),
        "strided": rng.random((9, 12)).T,  # not C-contiguous
        "flat": np.arange(17, dtype=np.int64),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 4), np.int16),
    }
    buf = io.BytesIO()
    write_npz(buf, members, slab_bytes=64)  # tiny slabs: many writes per member
    back = _load(buf)
    assert set(back) == set(members)
    for name, array in members.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape, name
        assert np.array_equal(back[name], array), name


def test_a_member_made_while_written_is_the_concatenation_of_its_slabs():
    source = np.arange(6 * 4 * 3, dtype=np.float32).reshape(6, 4, 3)
    steps = []

    def slabs(step):
        steps.append(step)
        for z in range(0, 6, step):
            yield (source[z : z + step] * 2).astype(np.uint8)

    buf = io.BytesIO()
    write_npz(buf, {"made": ((6, 4, 3), np.dtype(np.uint8), slabs)}, slab_bytes=24)
    assert steps == [2]  # 24 bytes = two rows of 4 x 3 uint8
    assert np.array_equal(_load(buf)["made"], (source * 2).astype(np.uint8))


def test_members_are_deflated_at_the_chosen_level():
    buf = io.BytesIO()
    write_npz(buf, {"zeros": np.zeros((64, 64, 64), np.uint8)}, level=1)
    buf.seek(0)
    with zipfile.ZipFile(buf) as archive:
        (info,) = archive.infolist()
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert info.compress_size < info.file_size // 50


def test_object_arrays_are_refused():
    with pytest.raises(ValueError, match="obj"):
        write_npz(io.BytesIO(), {"obj": np.array([object()])})


def test_rows_per_slab_is_at_least_one_row():
    assert rows_per_slab((300, 512, 512), 1, 1 << 21) == 8
    assert rows_per_slab((3, 4096, 4096), 4, 1 << 21) == 1
    assert rows_per_slab((10,), 8, 64) == 8
