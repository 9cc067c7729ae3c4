"""One PACS cache shared by several processes (the viewer, `radlens pacs get`, each batch
worker): opening it never removes another live process's half-written file, eviction never
takes a series another process has pinned, and two processes retrieving the same study at
once from a real Orthanc both finish with every instance once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pydicom
import pytest

from tests.orthanc import (  # noqa: F401 (fixtures: pytest registers them by their own names)
    ORTHANC_AET,
    loopback_network,
    orthanc_factory_fixture,
    orthanc_server,
    write_study,
)
from viewer.pacs import PacsCache

PART_SUFFIX = ".part"

pytestmark = pytest.mark.skipif(os.name != "posix", reason="cross-process pins are POSIX locks")


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _dead_pid() -> int:
    done = subprocess.run(["true"], check=True)
    assert done.returncode == 0
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


def test_opening_keeps_a_live_processes_part_file_and_removes_ended_ones(tmp_path):
    cache = PacsCache(tmp_path / "cache")
    folder = cache.series_dir("1.2.3", "1.2.3.4")
    folder.mkdir(parents=True)
    writer = subprocess.Popen(["sleep", "60"])  # another process, still writing
    try:
        live = folder / f"a.dcm.{writer.pid}-140000{PART_SUFFIX}"
        ended = folder / f"b.dcm.{_dead_pid()}-140000{PART_SUFFIX}"
        older = folder / f"c.dcm.140000{PART_SUFFIX}"  # named by code before per-process names
        for part in (live, ended, older):
            part.write_bytes(b"half a file")
        PacsCache(tmp_path / "cache")  # a second user opens the cache
        assert live.exists()
        assert not ended.exists() and not older.exists()
    finally:
        writer.kill()
        writer.wait()
    PacsCache(tmp_path / "cache")
    assert not live.exists()  # its process ended: nothing finishes it now


PIN_AND_WAIT = """
    import sys
    from pathlib import Path
    from viewer.pacs import PacsCache

    cache = PacsCache(Path(sys.argv[1]))
    with cache.pinned(sys.argv[2], [sys.argv[3]]):
        print("pinned", flush=True)
        sys.stdin.readline()
"""


def test_eviction_leaves_a_series_another_process_has_pinned(tmp_path):
    root = tmp_path / "cache"
    cache = PacsCache(root, limit_bytes=1)
    study = "1.2.3"
    for series in ("1.2.3.1", "1.2.3.2"):
        cache.put(study, series, f"{series}.9", b"x" * 4096)
        cache.touch(cache.series_dir(study, series))
    os.utime(cache.series_dir(study, "1.2.3.1") / ".used", (1, 1))  # the older one
    child = _child(PIN_AND_WAIT, str(root), study, "1.2.3.1")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "pinned"
        evicted = cache.enforce_limit()
        assert evicted == [cache.series_dir(study, "1.2.3.2")]
        assert len(cache.series_files(study, "1.2.3.1")) == 1  # pinned: kept
    finally:
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0
    assert cache.enforce_limit() == [cache.series_dir(study, "1.2.3.1")]
    assert cache.series_files(study, "1.2.3.1") == []


def test_a_series_pinned_in_this_process_is_not_evicted_either(tmp_path):
    cache = PacsCache(tmp_path / "cache", limit_bytes=1)
    cache.put("1.2.3", "1.2.3.1", "1.2.3.1.9", b"x" * 4096)
    with cache.pinned("1.2.3", ["1.2.3.1"]):
        assert cache.enforce_limit() == []
        assert len(cache.series_files("1.2.3", "1.2.3.1")) == 1
    assert len(cache.enforce_limit()) == 1


RETRIEVE = """
    import sys
    from pathlib import Path
    from viewer.pacs import DimseNode, PacsCache, connect, retrieve

    cache = PacsCache(Path(sys.argv[1]))
    node = DimseNode("orthanc", sys.argv[2], "127.0.0.1", int(sys.argv[3]), timeout_s=30)
    print("ready", flush=True)
    sys.stdin.readline()  # both start together
    with connect(node) as client:
        report = retrieve(client, cache, sys.argv[4])
    print(report.fetched + report.reused, flush=True)
"""


def test_two_processes_retrieve_one_study_into_one_cache(orthanc, tmp_path):
    study = write_study(tmp_path / "study", series=2, slices=6)
    orthanc.upload(study.paths)
    root = tmp_path / "cache"
    args = (str(root), ORTHANC_AET, str(orthanc.dimse_port), study.study_uid)
    children = [_child(RETRIEVE, *args) for _ in range(2)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        assert out.strip() == "12"
    cache = PacsCache(root)
    files = [f for s in study.series_uids for f in cache.series_files(study.study_uid, s)]
    assert sorted(str(pydicom.dcmread(f).SOPInstanceUID) for f in files) == sorted(study.sop_uids)
    assert list(root.glob("*/*/*.part")) == []
