"""Folder to image, whole paths, RadLens against SimpleITK in the same run (issue 14).

Each side runs in a fresh process of its own, sides alternating round by round; the time
is measured inside the process from just before the first call (folder path in hand,
libraries imported) to the finished array, so it includes RadLens's whole scan and load (the first-slice lines: the scan up to the
first series found, as the viewer opens it while the scan goes on, and that slice)
and SimpleITK's ``GetGDCMSeriesFileNames`` sort and ``ImageSeriesReader.Execute``. Both
read the same files from a warm page cache; the scan cache is off unless a line says it
is on. ``cores`` pins both sides to that many CPUs (``os.sched_setaffinity``): RadLens
then starts that many decoder processes for a compressed series, SimpleITK uses its own
threads on the same CPUs. Peak RSS is the measuring process's own (VmHWM; RadLens's decoder
processes are not counted: each is a fork of a server that has imported pydicom, numpy
and the decoders). CPU seconds are the measuring process's own (all its threads) and, apart, what RadLens's
decoder processes spent on the frames: a view of the work that a busy machine does not skew.

Run (prints the table; RADLENS_BENCH_DATA keeps the generated series between runs):

    PYTHONPATH=. RADLENS_BENCH_DATA=/tmp/radlens-bench python -m pytest \
        tests/benchmarks/test_bench_folder_load.py --benchmark-enable --benchmark-only -q -s

RADLENS_BENCH_ROUNDS (default 3) sets the rounds per line; the median of each side is used.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from tests import dicom_factory as f

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (300, 512, 512)
ROUNDS = int(os.environ.get("RADLENS_BENCH_ROUNDS", "3"))
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

PIN = r"""
import os, sys
cores = int(sys.argv[2])
if cores and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))

def peak_rss():
    # VmHWM is this program's own peak: Linux carries ru_maxrss across exec, so it would
    # report the (large) benchmark process this one was started from.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""

RADLENS = (
    PIN
    + r"""
import json, resource, time, warnings
warnings.simplefilter("ignore")
from viewer.study.scan import scan_folder
from viewer.study.series import SeriesReader, load_series
folder, what = sys.argv[1], sys.argv[3]
c0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
t0 = time.perf_counter()
shown = {}

def first_slice(found):
    # As the viewer does: the first loadable series found, while the scan goes on.
    usable = [s for s in found if s.kind == "dicom" and s.loadable]
    if what.startswith("first") and usable and not shown:
        reader = SeriesReader(usable[0])
        z = reader.slice_order()[0]
        reader.read_slice(z)
        shown.update(seconds=time.perf_counter() - t0, reader=reader, z=z)

result = scan_folder(folder, use_cache=(what == "first-cached"), on_series=first_slice)
series = [s for s in result.series if s.kind == "dicom" and s.loadable]
if what.startswith("first"):
    first_slice(result.series)  # one folder: found when the scan ends
    z = shown["z"]
    seconds, check = shown["seconds"], int(shown["reader"].volume.array[z].astype("i8").sum())
elif what == "scan":
    seconds, check = time.perf_counter() - t0, sum(s.n_images for s in result.series)
else:
    vol = load_series(series[0])
    seconds, check = time.perf_counter() - t0, int(vol.array[::7, ::5, ::3].astype("i8").sum())
    # After the clock: every page of the volume read once, so a volume that decoder
    # processes wrote into shared memory counts in this process's peak RSS like any other.
    vol.array.sum(dtype="i8")
print(json.dumps({
    "seconds": seconds, "check": check,
    "rss": peak_rss(),
    "children_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - c0,
    "worker_cpu": __import__("viewer.study.decode").study.decode.worker_cpu_seconds,
}))
"""
)

SITK = (
    PIN
    + r"""
import json, resource, time
import SimpleITK as sitk
folder, what = sys.argv[1], sys.argv[3]
c0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
t0 = time.perf_counter()
if what == "scan":
    # GDCM's series listing is per folder: each folder of the tree is asked in turn.
    check = 0
    for here, _, names in sorted(os.walk(folder)):
        if any(n.endswith(".dcm") for n in names):
            for i in sitk.ImageSeriesReader.GetGDCMSeriesIDs(here):
                check += len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(here, i))
    seconds = time.perf_counter() - t0
else:
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    image = reader.Execute()  # kept: the array view below lives in its buffer
    arr = sitk.GetArrayViewFromImage(image)
    seconds, check = time.perf_counter() - t0, int(arr[::7, ::5, ::3].astype("i8").sum())
print(json.dumps({
    "seconds": seconds, "check": check,
    "rss": peak_rss(), "children_rss": 0,
    "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - c0,
}))
"""
)


def _run(code: str, folder: Path, cores: int, what: str, data_dir: Path) -> dict:
    # This checkout first; a PYTHONPATH already set (an extra site folder) stays after it.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path, RADLENS_DATA_DIR=str(data_dir))
    env.pop("RADLENS_DECODE_WORKERS", None)
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(cores), what],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _realistic_ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A body ellipse with lungs and a spine, and CT-like noise (sigma 15 HU)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx].astype(np.float32)
    cy, cx = ny / 2, nx / 2
    out = np.empty(shape, np.int16)
    for z in range(nz):
        t = z / max(nz - 1, 1)
        img = np.full((ny, nx), -1000.0, np.float32)
        body = ((xx - cx) / (0.42 * nx)) ** 2 + ((yy - cy) / (0.32 * ny)) ** 2 < 1
        img[body] = 40
        for side in (-1, 1):
            lung = ((xx - cx - side * 0.18 * nx) / (0.12 * nx * (0.6 + 0.4 * t))) ** 2 + (
                (yy - cy) / (0.2 * ny)
            ) ** 2 < 1
            img[lung] = -850
        spine = ((xx - cx) ** 2 + (yy - cy - 0.22 * ny) ** 2) < (0.05 * nx) ** 2
        img[spine] = 700
        img += rng.normal(0, 15, (ny, nx)).astype(np.float32)
        out[z] = np.clip(np.rint(img), -1024, 3071).astype(np.int16)
    return out


@pytest.fixture(scope="session")
def bench_data(tmp_path_factory) -> Path:
    where = os.environ.get("RADLENS_BENCH_DATA")
    return Path(where) if where else tmp_path_factory.mktemp("folder-load")


def _series(root: Path, syntax: str) -> Path:
    """The 300×512×512 CT in one transfer syntax, written once (old mtimes)."""
    folder = root / f"ct-{syntax}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    values = _realistic_ct(SHAPE)
    write = ExplicitVRLittleEndian if syntax == JPEGLosslessSV1 else syntax
    truth = f.write_ct_series(
        folder,
        shape=SHAPE,
        spacing=(0.7, 0.7, 1.0),
        values=values,
        window=None,
        transfer_syntax=write,
        shuffle_seed=None,
    )
    if syntax == JPEGLosslessSV1:
        f.reencode_jpeg_lossless_sv1(truth.paths)
    for p in truth.paths:
        os.utime(p, (1e9, 1e9))
    (folder / ".complete").touch()
    return folder


def _many(root: Path, n_series: int, per_series: int, size: int = 64) -> Path:
    folder = root / f"many-{n_series}x{per_series}"
    if (folder / ".complete").exists():
        return folder
    for k in range(n_series):
        f.write_ct_series(
            folder / f"series{k:02d}",
            shape=(per_series, size, size),
            shuffle_seed=k,
            description=f"Series {k}",
        )
    for p in folder.rglob("*.dcm"):
        os.utime(p, (1e9, 1e9))
    (folder / ".complete").touch()
    return folder


def _compare(label, folder, cores, what, data_dir, radlens_what=None, sitk=True):
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(_run(RADLENS, folder, cores, radlens_what or what, data_dir))
        if sitk:
            theirs.append(_run(SITK, folder, cores, what, data_dir))
    line = {
        "what": label,
        "cores": cores,
        # The machine's load while this line ran (1-minute average, after the rounds).
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "cpus": os.cpu_count(),
        "radlens_s": statistics.median(r["seconds"] for r in ours),
        "radlens_rss_mib": max(r["rss"] for r in ours) / 2**20,
        "radlens_cpu_s": statistics.median(r["cpu"] for r in ours),
        "radlens_worker_cpu_s": statistics.median(r.get("worker_cpu", 0.0) for r in ours),
    }
    if sitk:
        line["sitk_s"] = statistics.median(r["seconds"] for r in theirs)
        line["sitk_rss_mib"] = max(r["rss"] for r in theirs) / 2**20
        line["sitk_cpu_s"] = statistics.median(r["cpu"] for r in theirs)
        line["ratio"] = line["radlens_s"] / line["sitk_s"]
        if what == "load":
            assert ours[0]["check"] == theirs[0]["check"], "the two sides read other values"
    print("\n" + json.dumps(line), flush=True)
    return line


SYNTAXES = {
    "uncompressed": ExplicitVRLittleEndian,
    "JPEG 2000 lossless": JPEG2000Lossless,
    "JPEG lossless (process 14)": JPEGLosslessSV1,
    "JPEG-LS lossless": JPEGLSLossless,
    "RLE lossless": RLELossless,
}


# Whole paths in fresh processes, several rounds: far beyond the suite's per-test timeout.
pytestmark = pytest.mark.timeout(3600)


@pytest.mark.parametrize("name", list(SYNTAXES))
def test_folder_to_volume_against_simpleitk(benchmark, bench_data, tmp_path, name):
    folder = _series(bench_data, SYNTAXES[name])
    core_counts = [CORES] if name == "uncompressed" else sorted({1, min(2, CORES), CORES})

    def run():
        return [
            _compare(f"folder → volume, {name}", folder, c, "load", tmp_path) for c in core_counts
        ]

    lines = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["lines"] = lines


def test_header_scan_10000_files_against_gdcm(benchmark, bench_data, tmp_path):
    folder = _many(bench_data, 10, 1000, size=32)

    def run():
        return _compare("header scan, 10,000 files in 10 series", folder, CORES, "scan", tmp_path)

    line = benchmark.pedantic(run, rounds=1, iterations=1)
    line["radlens_files_per_s"] = 10_000 / line["radlens_s"]
    line["sitk_files_per_s"] = 10_000 / line["sitk_s"]
    print("\n" + json.dumps(line))
    benchmark.extra_info.update(line)


@pytest.mark.parametrize(
    "shape", [(1, 300), (10, 300)], ids=["300 files", "3000 files in 10 series"]
)
def test_folder_to_first_slice(benchmark, bench_data, tmp_path, shape):
    n_series, per = shape
    folder = (
        _series(bench_data, ExplicitVRLittleEndian)
        if n_series == 1
        else _many(bench_data, 10, 300, 512)
    )

    def run():
        cold = _compare(
            f"folder → first slice, {n_series * per} files",
            folder,
            CORES,
            "first",
            tmp_path,
            sitk=False,
        )
        _run(RADLENS, folder, CORES, "first-cached", tmp_path)  # writes the scan cache
        warm = _compare(
            f"reopened (scan cache), {n_series * per} files",
            folder,
            CORES,
            "first",
            tmp_path,
            radlens_what="first-cached",
            sitk=False,
        )
        return [cold, warm]

    benchmark.extra_info["lines"] = benchmark.pedantic(run, rounds=1, iterations=1)
