"""Label editing and saving speed on a 300 x 512 x 512 series: brush edit, undo, journal, export.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_labels.py --benchmark-enable --benchmark-only -q
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from viewer.labels.document import Document
from viewer.labels.export import export_case
from viewer.labels.labelmap import disk_mask
from viewer.labels.store import LabelStore
from viewer.study.volume import Volume

SHAPE = (300, 512, 512)


@pytest.fixture(scope="module")
def volume():
    return Volume(
        np.zeros(SHAPE, np.int16), spacing=(0.7, 0.7, 1.0), series_uid="1.2.3.bench", modality="CT"
    )


def test_bench_brush_dab_with_undo(benchmark):
    doc = Document(SHAPE)
    dab = disk_mask(SHAPE[1:], (256, 256), 15)
    zs = itertools.cycle(range(SHAPE[0]))

    def stroke():
        doc.paint(next(zs), dab, 2)
        doc.undo()

    benchmark(stroke)


def test_bench_sphere_brush_10mm(benchmark):
    doc = Document(SHAPE)
    benchmark(lambda: (doc.paint_sphere((150, 256, 256), 10.0, 2, (0.7, 0.7, 1.0)), doc.undo()))


def test_bench_edit_journalled_and_fsynced(benchmark, volume):
    store = LabelStore.open(volume, compact_every=10**9)
    dab = disk_mask(SHAPE[1:], (256, 256), 15)
    zs = itertools.cycle(range(SHAPE[0]))
    try:
        benchmark(lambda: (store.document.paint(next(zs), dab, 1), store.flush()))
    finally:
        store.close()


def test_bench_reopen_with_200_journalled_edits(benchmark, volume):
    store = LabelStore.open(volume, compact_every=10**9)
    for z in range(200):
        store.document.paint(z, disk_mask(SHAPE[1:], (256, 256), 20), 1)
    store.flush()
    store._abandon()  # leave the journal un-compacted, as after a crash

    def reopen():
        LabelStore.open(volume)._abandon()

    benchmark.pedantic(reopen, rounds=1, iterations=1)


def test_bench_export_nifti_mask(benchmark, volume, tmp_path):
    doc = Document(SHAPE, volume.series_uid)
    doc.labelmap.array[100:200, 100:400, 100:400] = 1
    benchmark.pedantic(
        lambda: export_case(volume, doc, tmp_path, ["nifti", "json"], overwrite=True),
        rounds=3,
        iterations=1,
    )
