"""Load speed of a 300 x 512 x 512 CT series: RadLens against SimpleITK and plain pydicom.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_load.py --benchmark-enable --benchmark-only -q
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests import dicom_factory as f
from viewer.study.scan import scan_folder
from viewer.study.series import SeriesReader, load_series

SHAPE = (300, 512, 512)


@pytest.fixture(scope="session")
def big_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-ct")
    rng = np.random.default_rng(0)
    # One noisy slice reused with a per-slice offset: writing is the slow part, not the values.
    base = rng.integers(-1000, 2000, size=SHAPE[1:], dtype=np.int16)
    values = np.empty(SHAPE, np.int16)
    values[:] = base
    values[:, 0, 0] = np.arange(SHAPE[0])
    truth = f.write_ct_series(
        folder, shape=SHAPE, spacing=(0.7, 0.7, 1.0), values=values, window=None
    )
    (info,) = scan_folder(folder).series
    return folder, truth, info


def _pydicom_loop(paths):
    slices = [pydicom.dcmread(p) for p in paths]
    normal = np.cross(*np.reshape(np.asarray(slices[0].ImageOrientationPatient, float), (2, 3)))
    slices.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    return np.stack(
        [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices]
    )


def test_simpleitk_series_reader(benchmark, big_series):
    import SimpleITK as sitk

    folder, truth, _ = big_series
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))

    def run():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(names)
        return sitk.GetArrayViewFromImage(reader.Execute())

    arr = benchmark.pedantic(run, rounds=3, iterations=1)
    assert arr.shape == SHAPE


def test_plain_pydicom_loop(benchmark, big_series):
    _, truth, _ = big_series
    arr = benchmark.pedantic(_pydicom_loop, args=(truth.paths,), rounds=2, iterations=1)
    assert np.array_equal(arr, truth.values)


def test_radlens_load_series(benchmark, big_series):
    _, truth, info = big_series
    vol = benchmark.pedantic(load_series, args=(info,), rounds=3, iterations=1)
    assert np.array_equal(vol.array, truth.values)


def test_radlens_load_series_reading_headers_again(benchmark, big_series):
    # A SeriesInfo without the scan's cached headers: the reader parses every header itself.
    _, truth, info = big_series

    def run():
        info.headers, saved = [], info.headers
        try:
            return load_series(info)
        finally:
            info.headers = saved

    vol = benchmark.pedantic(run, rounds=3, iterations=1)
    assert np.array_equal(vol.array, truth.values)


def test_radlens_scan_300_files(benchmark, big_series):
    folder, _, _ = big_series
    result = benchmark.pedantic(scan_folder, args=(folder,), rounds=3, iterations=1)
    assert result.series[0].n_images == SHAPE[0]


def test_radlens_time_to_first_slice(benchmark, big_series):
    _, truth, info = big_series

    def run():
        reader = SeriesReader(info)
        z = reader.slice_order()[0]
        reader.read_slice(z)
        return reader, z

    reader, z = benchmark.pedantic(run, rounds=5, iterations=1)
    assert np.array_equal(reader.volume.array[z], truth.values[z])


def test_radlens_time_to_first_slice_reading_headers_again(benchmark, big_series):
    # Worst case for the UI: a SeriesInfo without the scan's headers (all 300 parsed first).
    _, truth, info = big_series

    def run():
        info.headers, saved = [], info.headers
        try:
            reader = SeriesReader(info)
        finally:
            info.headers = saved
        z = reader.slice_order()[0]
        reader.read_slice(z)
        return reader, z

    reader, z = benchmark.pedantic(run, rounds=3, iterations=1)
    assert np.array_equal(reader.volume.array[z], truth.values[z])
