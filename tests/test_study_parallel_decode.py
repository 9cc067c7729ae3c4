"""Compressed series decoded by decoder processes give the very arrays of a serial decode,
for every transfer syntax this installation can write, and a cancel stops the workers."""

from __future__ import annotations

import multiprocessing
import threading
import time

import numpy as np
import pytest
from pydicom.pixels import get_encoder
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from tests import dicom_factory as f
from viewer.study import decode, frame_codecs
from viewer.study import raw_pixels as raw_pixels_module
from viewer.study.errors import LoadCancelled
from viewer.study.scan import scan_folder
from viewer.study.series import SeriesReader, load_series

#: Enough frames for the load to use decoder processes (decode.MIN_PARALLEL_FRAMES).
FRAMES = max(10, decode.MIN_PARALLEL_FRAMES + 2)


def _write(folder, syntax, shape=(FRAMES, 32, 32)):
    if syntax == JPEGLosslessSV1:
        truth = f.write_ct_series(folder, shape=shape)
        pytest.importorskip("gdcm")
        f.reencode_jpeg_lossless_sv1(truth.paths)
    else:
        if not get_encoder(syntax).is_available:
            pytest.skip(f"no pydicom encoder for {syntax.name} in this installation")
        truth = f.write_ct_series(folder, shape=shape, transfer_syntax=syntax)
    assert str(f.read_back(truth.paths[0]).file_meta.TransferSyntaxUID) == syntax
    return truth


def _load(folder, monkeypatch, workers):
    monkeypatch.setenv(decode.WORKERS_ENV, str(workers))
    (info,) = [s for s in scan_folder(folder).series if s.kind == "dicom"]
    return load_series(info)


SYNTAXES = [JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless]


@pytest.fixture
def processes(monkeypatch):
    """Decoder processes, as with decoders that hold the GIL (imagecodecs, where installed,
    decodes on the loading process's threads instead)."""
    monkeypatch.setattr(raw_pixels_module, "decodes_without_gil", lambda h: False)


@pytest.fixture(params=["decoder processes", "threads without the GIL"])
def parallel_by(request, monkeypatch):
    if request.param == "decoder processes":
        monkeypatch.setattr(raw_pixels_module, "decodes_without_gil", lambda h: False)
    elif frame_codecs._lib("imagecodecs") is None:
        pytest.skip("imagecodecs is not installed: no decoder releases the GIL here")
    return request.param


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda u: u.name)
def test_parallel_decode_gives_the_serial_arrays(tmp_path, monkeypatch, parallel_by, syntax):
    truth = _write(tmp_path, syntax)
    serial = _load(tmp_path, monkeypatch, 1)
    parallel = _load(tmp_path, monkeypatch, 2)
    assert parallel.array.dtype == serial.array.dtype
    assert np.array_equal(parallel.array, serial.array)
    assert np.array_equal(parallel.array, truth.values)
    assert parallel.warnings == serial.warnings


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=lambda u: u.name)
def test_multiframe_file_is_decoded_frame_by_frame_in_parallel(
    tmp_path, monkeypatch, parallel_by, syntax
):
    if not get_encoder(syntax).is_available:
        pytest.skip(f"no pydicom encoder for {syntax.name}")
    values = f.ct_values((FRAMES, 32, 32), seed=3)
    order = list(np.random.default_rng(1).permutation(FRAMES))
    f.write_enhanced(tmp_path / "mf.dcm", values, frame_order=order, transfer_syntax=syntax)
    serial = _load(tmp_path, monkeypatch, 1)
    parallel = _load(tmp_path, monkeypatch, 2)
    assert np.array_equal(serial.array, values)
    assert np.array_equal(parallel.array, values)


def test_a_broken_frame_is_named_the_same_way_in_parallel(tmp_path, monkeypatch, parallel_by):
    truth = _write(tmp_path, RLELossless)
    data = bytearray(truth.paths[3].read_bytes())
    data[-200:] = b"\x00" * 200  # damage the end of one file's RLE segments
    truth.paths[3].write_bytes(bytes(data[: len(data) - 150]))
    serial = _load(tmp_path, monkeypatch, 1)
    parallel = _load(tmp_path, monkeypatch, 2)
    assert np.array_equal(parallel.array, serial.array)
    assert parallel.warnings == serial.warnings
    assert any(truth.paths[3].name in w for w in parallel.warnings)


def test_cancel_stops_a_parallel_load_and_its_workers(tmp_path, monkeypatch, processes):
    _write(tmp_path, JPEG2000Lossless, shape=(48, 128, 128))
    monkeypatch.setenv(decode.WORKERS_ENV, "2")
    (info,) = scan_folder(tmp_path).series
    reader = SeriesReader(info)
    flag = threading.Event()
    workers: list[multiprocessing.process.BaseProcess] = []
    asked = []

    def on_slice(z):
        if not flag.is_set():
            workers.extend(multiprocessing.active_children())
            asked.append(time.monotonic())
            flag.set()

    with pytest.raises(LoadCancelled):
        reader.read_all(cancel=flag.is_set, on_slice=on_slice)
    returned = time.monotonic()
    assert workers, "the load did not use decoder processes"
    assert returned - asked[0] < 1.0
    for p in workers:
        p.join(1.0)
        assert not p.is_alive()
    assert not reader._done.all()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_compressed_multiframe_file_is_never_decoded_whole(
    tmp_path, monkeypatch, parallel_by, workers
):
    import tracemalloc

    nz, ny, nx = 40, 256, 256
    zz, yy, xx = np.mgrid[:nz, :ny, :nx]
    values = ((yy + 3 * zz) % 1500 - 500 + 0 * xx).astype(np.int16)  # rows of one value: RLE runs
    f.write_enhanced(tmp_path / "mf.dcm", values, transfer_syntax=RLELossless)
    monkeypatch.setenv(decode.WORKERS_ENV, str(workers))
    (info,) = scan_folder(tmp_path).series
    reader = SeriesReader(info)
    volume_bytes = reader.volume.array.nbytes
    tracemalloc.start()
    try:
        reader.read_all()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bad = np.argwhere(reader.volume.array != values)
    assert len(bad) == 0, (bad[:3], reader.volume.warnings)
    # The volume was allocated before; decoding the file whole would add as much again.
    assert peak < 0.5 * volume_bytes


def test_decoder_processes_write_into_a_shared_volume_whose_name_is_removed(
    tmp_path, monkeypatch, processes
):
    import mmap
    from multiprocessing import shared_memory

    truth = _write(tmp_path, JPEG2000Lossless)
    monkeypatch.setenv(decode.WORKERS_ENV, "2")
    (info,) = scan_folder(tmp_path).series
    reader = SeriesReader(info)
    shared = reader._shared
    assert shared is not None, "a parallel load should decode into shared memory"
    assert reader.volume.array is shared.array
    assert isinstance(reader.volume.array.base.base.obj, mmap.mmap)
    cpu_before = decode.worker_cpu_seconds
    name = shared.name
    volume = reader.read_all()
    assert np.array_equal(volume.array, truth.values)
    assert decode.worker_cpu_seconds > cpu_before  # the frames came from decoder processes
    # The block's name is gone once the load ends; the volume's mapping stays valid.
    with pytest.raises(FileNotFoundError):
        shared_memory.SharedMemory(name)
    volume.array[0, 0, 0] += 1
    assert reader._shared is None


def test_cancel_stops_a_load_decoding_on_threads_within_a_second(tmp_path, monkeypatch):
    if frame_codecs._lib("imagecodecs") is None:
        pytest.skip("imagecodecs is not installed: no decoder releases the GIL here")
    _write(tmp_path, JPEG2000Lossless, shape=(48, 128, 128))
    monkeypatch.setenv(decode.WORKERS_ENV, "2")
    (info,) = scan_folder(tmp_path).series
    reader = SeriesReader(info)
    assert reader._shared is None, "frames decoded without the GIL need no shared volume"
    flag = threading.Event()
    asked = []

    def on_slice(z):
        if not flag.is_set():
            asked.append(time.monotonic())
            flag.set()

    children = len(multiprocessing.active_children())
    with pytest.raises(LoadCancelled):
        reader.read_all(cancel=flag.is_set, on_slice=on_slice)
    assert time.monotonic() - asked[0] < 1.0
    assert len(multiprocessing.active_children()) == children  # no decoder process started
    assert not reader._done.all()
