"""DICOM-SEG speed: a 100-label label map on a 300 x 512 x 512 CT written as SEG (through
export_case) and read back onto the series (read_seg), LABELMAP (target: <= 10 s in total)
and BINARY (one 1-bit frame per label and slice: the second figure), in the same run.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_seg.py --benchmark-enable --benchmark-only -q -s
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.seg_series import load, write_series
from viewer.labels.document import Document
from viewer.labels.export import export_case
from viewer.labels.model import LabelSet, annotation_class
from viewer.labels.seg_read import read_seg

SHAPE = (300, 512, 512)
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The source series (300 DICOM files) and a document with 100 labelled blocks, each
    on 150 slices (as organs span a scan), 40 x 40 voxels in plane."""
    src = tmp_path_factory.mktemp("seg-bench") / "src"
    write_series(src, shape=SHAPE, spacing_xyz=(0.7, 0.7, 1.0))
    volume = load(src)
    table = LabelSet(
        tuple(
            annotation_class(
                k,
                f"structure {k}",
                f"#{(k * 37) % 256:02x}{(k * 91) % 256:02x}{(k * 53) % 256:02x}",
            )
            for k in range(1, 101)
        )
    )
    doc = Document(volume.shape, volume.series_uid, table)
    for k in range(1, 101):
        i, j = divmod(k - 1, 10)
        doc.labelmap.array[k : k + 150, 5 + i * 50 : 45 + i * 50, 5 + j * 50 : 45 + j * 50] = k
    return volume, doc


def _round_trip(volume, doc, out, seg_type):
    """(write s, read s, write CPU s, read CPU s, bytes). CPU seconds are what a shared,
    loaded machine still measures fairly: the path is single-threaded."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = export_case(
        volume, doc, out, ["dicom-seg"], deid=False, seg_type=seg_type, overwrite=True
    )
    t1, c1 = time.perf_counter(), time.process_time()
    imp = read_seg(res.folder / "seg.dcm", volume)
    t2, c2 = time.perf_counter(), time.process_time()
    assert np.array_equal(imp.array, doc.labelmap.array)
    return t1 - t0, t2 - t1, c1 - c0, c2 - c1, (res.folder / "seg.dcm").stat().st_size


@pytest.mark.parametrize("seg_type", ["labelmap", "binary"])
def test_bench_seg_write_and_read_100_labels(benchmark, case, tmp_path, seg_type):
    volume, doc = case
    write_s, read_s, write_cpu, read_cpu, size = benchmark.pedantic(
        _round_trip, args=(volume, doc, tmp_path / seg_type, seg_type), rounds=1, iterations=1
    )
    FIGURES[seg_type] = write_cpu + read_cpu
    print(
        f"\n{seg_type.upper()} SEG, 100 labels on 300x512x512: write {write_s:.2f} s "
        f"({write_cpu:.2f} s CPU), read {read_s:.2f} s ({read_cpu:.2f} s CPU), total "
        f"{write_s + read_s:.2f} s ({write_cpu + read_cpu:.2f} s CPU), {size / 1e6:.0f} MB"
    )
    if len(FIGURES) == 2:
        print(f"BINARY / LABELMAP total CPU: {FIGURES['binary'] / FIGURES['labelmap']:.1f}x")
