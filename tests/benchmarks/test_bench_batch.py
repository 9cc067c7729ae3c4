"""`radlens batch` throughput on a generated archive of small phantom CTs (200 by default):
one and two local workers and a local Ray with two actors, each the whole path (pool or Ray
start-up, model loads, scan, analysis, writing); series per hour, speed-up per worker (goal
>= 0.8 x N on N cores) and Ray's overhead against the local pool with as many workers.

The three run in turn, ROUNDS times (1-2-Ray, 1-2-Ray, ...), so each round's ratios compare
runs made seconds apart on a machine whose load changes; the load average is printed with
each run. The folder's scan cache is filled before the first run (as on any resumed or
repeated batch), so no configuration pays the cold scan for the others.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_batch.py --benchmark-enable --benchmark-only -q -s
(RADLENS_BENCH_SERIES=N for another archive size, RADLENS_BENCH_ROUNDS=R for another number
of rounds). Each worker uses one torch thread, so the workers, not torch's threads, are what
scales.
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import statistics
import time

import pytest

pytest.importorskip("torch")

from tests.batch_factory import make_archive  # noqa: E402
from viewer.batch.runners import cores  # noqa: E402
from viewer.cli import main  # noqa: E402

N_SERIES = int(os.environ.get("RADLENS_BENCH_SERIES", "200"))
ROUNDS = int(os.environ.get("RADLENS_BENCH_ROUNDS", "3"))


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


def _busy_seconds(out) -> float:
    """The workers' busy time: the sum of the series' times on their own clocks."""
    db = sqlite3.connect(out / "manifest.sqlite")
    busy = db.execute("SELECT SUM(total_s) FROM series").fetchone()[0]
    db.close()
    return float(busy)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(root, out, workers: int, *extra: str) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    t0, cpu0, kids0 = time.perf_counter(), time.process_time(), _children_cpu()
    args = ["batch", str(root), "--out", str(out), "--threads", "1", "--quiet"]
    rc = main([*args, "--workers", str(workers), *extra])
    seconds = time.perf_counter() - t0
    assert rc == 0
    db = sqlite3.connect(out / "manifest.sqlite")
    done = db.execute("SELECT COUNT(*) FROM series WHERE status = 'done'").fetchone()[0]
    db.close()
    assert done == N_SERIES
    return {
        "seconds": seconds,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "driver_cpu_s": time.process_time() - cpu0,
        "local_workers_cpu_s": _children_cpu() - kids0,  # Ray's workers are not children
        "median_analyse_s": _median_series_seconds(out),
        # The share of the wall time the workers spent on series: 1.0 would be no serial
        # part at all (start-up, scan, writing and tear-down all hidden behind the work).
        # It depends far less on the machine's other load than the wall time does.
        "busy": _busy_seconds(out) / (workers * seconds),
    }


@pytest.mark.timeout(7200)
def test_bench_batch_local_pool_and_ray(benchmark, tmp_path):
    from viewer.study.scan import scan_folder

    archive = make_archive(tmp_path / "archive", n_ct=N_SERIES, unsuitable=False, corrupt=False)
    t0 = time.perf_counter()
    scan_folder(archive.root)  # fills the scan cache
    cold_scan_s = time.perf_counter() - t0
    configs: list[tuple[str, int, tuple[str, ...]]] = [("local-1", 1, ()), ("local-2", 2, ())]
    if _has_ray():
        configs.append(("ray-2", 2, ("--ray", "auto")))
    rounds: list[dict[str, dict[str, float]]] = []

    def run() -> None:
        for _ in range(ROUNDS):
            rounds.append({n: _run(archive.root, tmp_path / n, w, *x) for n, w, x in configs})

    benchmark.pedantic(run, rounds=1, iterations=1)
    table = []
    for i, got in enumerate(rounds, 1):
        row: dict[str, object] = {"round": i}
        for name, m in got.items():
            row[name] = {
                "s": round(m["seconds"], 1),
                "series_per_h": round(N_SERIES / m["seconds"] * 3600),
                "load": f"{m['load_before']:.1f}->{m['load_after']:.1f}",
                "driver_cpu_s": round(m["driver_cpu_s"], 1),
                "workers_cpu_s": round(m["local_workers_cpu_s"], 1),
                "median_analyse_s": round(m["median_analyse_s"], 3),
                "workers_busy": round(m["busy"], 2),
            }
        row["speedup_2_workers"] = round(got["local-1"]["seconds"] / got["local-2"]["seconds"], 2)
        row["per_worker"] = round(row["speedup_2_workers"] / 2, 2)  # type: ignore[operator]
        if "ray-2" in got:
            row["ray_vs_local_2"] = round(got["ray-2"]["seconds"] / got["local-2"]["seconds"], 2)
        table.append(row)
        print(f"\nround {i}: {row}")
    speedups = [r["speedup_2_workers"] for r in table]
    info: dict[str, object] = {
        "series": N_SERIES,
        "cores": cores(),
        "cold_scan_s": round(cold_scan_s, 2),
        "rounds": table,
        "median_speedup_2_workers": statistics.median(speedups),  # type: ignore[arg-type]
    }
    if all("ray_vs_local_2" in r for r in table):
        info["median_ray_vs_local_2"] = statistics.median(r["ray_vs_local_2"] for r in table)  # type: ignore[misc]
    benchmark.extra_info.update(info)
    print(f"\nradlens batch, {N_SERIES} series of 12x32x32: {info}")
