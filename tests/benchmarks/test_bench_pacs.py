"""Retrieval throughput from a real Orthanc: RadLens (C-GET, C-MOVE to its storage SCP,
WADO-RS) against dcmtk's getscu on the same study, in the same run, as MB/s and ratios.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_pacs.py --benchmark-enable \
     --benchmark-only -q -s
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.orthanc import (  # noqa: F401 (fixtures)
    ORTHANC_AET,
    dcmtk,
    free_port,
    loopback_network,
    orthanc_factory_fixture,
    orthanc_server,
    write_study,
)
from viewer.pacs import DimseNode, PacsCache, WebNode, connect, retrieve

pytestmark = pytest.mark.slow

SLICES, SIZE, ROUNDS = 200, 512, 3


def _mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def test_retrieval_throughput_against_getscu(benchmark, orthanc, tmp_path):
    getscu = dcmtk("getscu")
    study = write_study(tmp_path / "src", series=1, slices=SLICES, size=SIZE)
    orthanc.upload(study.paths)
    dimse = DimseNode("bench", ORTHANC_AET, "127.0.0.1", orthanc.dimse_port,
                      local_port=orthanc.radlens_port)  # fmt: skip
    runs: dict[str, list[float]] = {}
    counter = iter(range(10_000))

    def radlens(method: str) -> Path:
        node = WebNode("bench", orthanc.web_url) if method == "wado" else dimse
        if method == "move":
            node = DimseNode(dimse.name, dimse.aet, dimse.host, dimse.port,
                             local_port=dimse.local_port, retrieve="move")  # fmt: skip
        cache = PacsCache(tmp_path / f"{method}{next(counter)}")
        with connect(node) as client:
            report = retrieve(client, cache, study.study_uid)
        assert report.fetched == SLICES
        return cache.root

    def dcmtk_get() -> Path:
        out = tmp_path / f"getscu{next(counter)}"
        out.mkdir()
        run = subprocess.run(
            [getscu, "-S", "-aet", "GETSCU", "-aec", ORTHANC_AET, "-k", "QueryRetrieveLevel=STUDY",
             "-k", f"StudyInstanceUID={study.study_uid}", "-od", str(out),
             "127.0.0.1", str(orthanc.dimse_port)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert len(list(out.iterdir())) == SLICES
        return out

    sides = {
        "getscu": dcmtk_get,
        "radlens C-GET": lambda: radlens("get"),
        "radlens C-MOVE": lambda: radlens("move"),
        "radlens WADO-RS": lambda: radlens("wado"),
    }
    sizes: dict[str, float] = {}
    for _ in range(ROUNDS):  # interleaved, so machine load hits every side alike
        for name, fn in sides.items():
            start = time.perf_counter()
            folder = fn()
            runs.setdefault(name, []).append(time.perf_counter() - start)
            sizes[name] = _mb(folder)
    benchmark.pedantic(lambda: radlens("get"), rounds=1, iterations=1)
    best = {name: min(times) for name, times in runs.items()}
    rate = {name: sizes[name] / best[name] for name in best}
    lines = [f"study: {SLICES} x {SIZE}x{SIZE} CT, {sizes['getscu']:.0f} MB; best of {ROUNDS}"]
    for name in sides:
        lines.append(
            f"  {name:16s} {best[name]:6.2f} s  {rate[name]:7.1f} MB/s  "
            f"{rate[name] / rate['getscu']:5.2f} x getscu"
        )
    print("\n" + "\n".join(lines))
    benchmark.extra_info.update({f"{k} MB/s": round(v, 1) for k, v in rate.items()})
