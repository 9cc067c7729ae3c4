"""`radlens batch` throughput on a generated archive of small phantom CTs (200 by default):
one and two local workers and a local Ray with two actors, each the whole path (pool or Ray
start-up, model loads, scan, analysis, writing); series per hour, speed-up per worker (goal
>= 0.8 x N on N cores) and Ray's overhead against the local pool with as many workers.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_batch.py --benchmark-enable --benchmark-only -q -s
(RADLENS_BENCH_SERIES=N for another archive size). Each worker uses one torch thread, so
the workers, not torch's threads, are what scales.
"""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

pytest.importorskip("torch")

from tests.batch_factory import make_archive  # noqa: E402
from viewer.batch.runners import cores  # noqa: E402
from viewer.cli import main  # noqa: E402

N_SERIES = int(os.environ.get("RADLENS_BENCH_SERIES", "200"))


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _median_series_seconds(out) -> float:
    """The median analysis time of one series (a worker's own clock), to tell a slower
    pool from a busier machine."""
    db = sqlite3.connect(out / "manifest.sqlite")
    times = sorted(r[0] for r in db.execute("SELECT analyse_s FROM series"))
    db.close()
    return times[len(times) // 2]


def _run(root, out, *extra: str) -> float:
    t0 = time.perf_counter()
    rc = main(["batch", str(root), "--out", str(out), "--threads", "1", "--quiet", *extra])
    seconds = time.perf_counter() - t0
    assert rc == 0
    db = sqlite3.connect(out / "manifest.sqlite")
    done = db.execute("SELECT COUNT(*) FROM series WHERE status = 'done'").fetchone()[0]
    db.close()
    assert done == N_SERIES
    return seconds


@pytest.mark.timeout(3600)
def test_bench_batch_local_pool_and_ray(benchmark, tmp_path):
    archive = make_archive(tmp_path / "archive", n_ct=N_SERIES, unsuitable=False, corrupt=False)
    configs = [("local-1", ("--workers", "1")), ("local-2", ("--workers", "2"))]
    if _has_ray():
        configs.append(("ray-2", ("--workers", "2", "--ray", "auto")))
    seconds: dict[str, float] = {}

    def run() -> None:
        for name, extra in configs:
            seconds[name] = _run(archive.root, tmp_path / name, *extra)

    benchmark.pedantic(run, rounds=1, iterations=1)
    per_hour = {k: round(N_SERIES / s * 3600) for k, s in seconds.items()}
    info: dict[str, object] = {
        "series": N_SERIES,
        "cores": cores(),
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "series_per_hour": per_hour,
        "speedup_2_workers": round(seconds["local-1"] / seconds["local-2"], 2),
        "median_series_analyse_s": {
            name: round(_median_series_seconds(tmp_path / name), 3) for name in seconds
        },
    }
    if "ray-2" in seconds:
        info["ray_overhead_vs_local_2"] = round(seconds["ray-2"] / seconds["local-2"] - 1, 3)
    benchmark.extra_info.update(info)
    print(f"\nradlens batch, {N_SERIES} series of 12x32x32: {info}")
