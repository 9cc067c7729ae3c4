"""`radlens batch` end to end on a generated archive: model per series, skipped and failed
series with their reasons, summary.csv, resume without duplicates, --retry-failed, and the
same findings from one or two local workers and from a local Ray."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from radlens_core.nifti import read_nifti  # noqa: E402
from tests.batch_factory import make_archive, repair_corrupt  # noqa: E402
from viewer.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def batch(*args: object) -> int:
    return main(["batch", *map(str, args), "--threads", "1"])


def rows(out: Path) -> dict[str, dict]:
    db = sqlite3.connect(out / "manifest.sqlite")
    db.row_factory = sqlite3.Row
    got = {r["key"]: dict(r) for r in db.execute("SELECT * FROM series")}
    db.close()
    return got


def findings(out: Path, key: str) -> dict:
    data = json.loads((out / key / "findings.json").read_text())
    data.pop("timings_s")  # the one part that differs between identical runs
    return data


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def first_run(archive, tmp_path_factory):
    """One worker over the whole archive; later tests copy its output folder."""
    out = tmp_path_factory.mktemp("batch") / "out"
    rc = batch(archive.root, "--out", out, "--workers", 1)
    return out, rc


def test_each_series_done_skipped_or_failed_with_its_reason(archive, first_run):
    out, rc = first_run
    assert rc == 1  # one series failed: the exit status says so, the batch went on
    got = rows(out)
    assert set(got) == archive.keys
    for key in archive.ct:
        assert got[key]["status"] == "done" and got[key]["attempts"] == 1
        assert got[key]["model"] == "radlens-ct-chest-seg@1.0.0"
        data = json.loads((out / key / "findings.json").read_text())
        assert data["model"]["id"] == "radlens-ct-chest-seg" and data["series_uid"]
        assert set(data["volumes_ml"]) >= {"lung"}
        mask, grid = read_nifti(out / key / "mask.nii.gz")
        assert mask.shape == (12, 32, 32) and np.allclose(grid.spacing, (4.0, 4.0, 5.0))
        assert mask.max() >= 1
    mr, sr = archive.skipped
    assert got[mr]["status"] == "skipped"
    assert "no installed model is meant for this MR 3D series" in got[mr]["reason"]
    assert got[sr]["status"] == "skipped" and "no pixels" in got[sr]["reason"]
    bad = got[archive.corrupt]
    assert bad["status"] == "failed" and "cannot decode pixels" in bad["reason"]
    assert "Traceback" not in bad["reason"] and "\n" not in bad["reason"]
    for key in (*archive.skipped, archive.corrupt):
        assert not (out / key).exists()  # nothing half-written for them


def test_summary_csv_lists_every_series(archive, first_run):
    out, _ = first_run
    with open(out / "summary.csv", newline="") as fp:
        lines = list(csv.DictReader(fp))
    assert {r["key"] for r in lines} == archive.keys and len(lines) == len(archive.keys)
    by_key = {r["key"]: r for r in lines}
    assert {by_key[k]["status"] for k in archive.ct} == {"done"}
    assert by_key[archive.corrupt]["status"] == "failed"
    assert "cannot decode pixels" in by_key[archive.corrupt]["reason"]
    assert float(by_key[archive.ct[0]]["total_s"]) > 0
    assert by_key[archive.skipped[0]]["source"].endswith("mr")


def _same_as_first(archive, out, out1) -> None:
    got = rows(out)
    assert {k: r["status"] for k, r in got.items()} == {
        k: r["status"] for k, r in rows(out1).items()
    }
    for key in archive.ct:
        assert findings(out, key) == findings(out1, key)
        a, _ = read_nifti(out / key / "mask.nii.gz")
        b, _ = read_nifti(out1 / key / "mask.nii.gz")
        assert np.array_equal(a, b)


def test_two_local_workers_find_the_same_as_one(archive, first_run, tmp_path):
    out1, _ = first_run
    out2 = tmp_path / "two"
    assert batch(archive.root, "--out", out2, "--workers", 2) == 1
    _same_as_first(archive, out2, out1)


def test_a_local_ray_finds_the_same_as_the_local_pool(archive, first_run, tmp_path):
    pytest.importorskip("ray", reason="Ray is the 'ray' extra: pip install 'radlens[ray]'")
    out1, _ = first_run
    out3 = tmp_path / "ray"
    assert batch(archive.root, "--out", out3, "--workers", 2, "--ray", "auto") == 1
    _same_as_first(archive, out3, out1)


@pytest.fixture
def ray_head_with_a_gpu(tmp_path):
    """An existing Ray cluster, as a user's would be: a head node started with ``ray start``
    on loopback (its own session, stopped after) with token authentication on, declaring one
    GPU Ray may hand out. Yields (address, the environment a client of it needs)."""
    pytest.importorskip("ray", reason="Ray is the 'ray' extra: pip install 'radlens[ray]'")
    import secrets

    from tests.orthanc import free_port

    port = free_port()
    temp = Path(f"/tmp/rl-ray-{os.getpid()}-{port}")  # Ray's socket paths must stay short
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
    env["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    ray_cli = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; main()"]
    head = subprocess.Popen(
        [*ray_cli, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--num-gpus=1", "--include-dashboard=false", f"--temp-dir={temp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        # A Ray node drains for up to 30 s on SIGTERM; nothing of this one needs keeping.
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        # Ray's own processes that left the group: found by the session's own folder
        subprocess.run(["pkill", "-9", "-f", str(temp)], check=False)
        shutil.rmtree(temp, ignore_errors=True)


def test_an_existing_ray_cluster_with_a_gpu_gets_one_gpu_per_actor(
    archive, first_run, tmp_path, ray_head_with_a_gpu
):
    """Issue 15: "GPU workers ask for a GPU", on a cluster the command only connects to. The
    cluster declares one GPU (CI has no CUDA): each actor asks Ray for one, so Ray runs exactly
    one; the actor says which GPU Ray gave it (and, without CUDA, that its series ran on the
    CPU), and its findings are the local pool's. The command runs as a user runs it, in its
    own process with the cluster's token in its environment."""
    address, env = ray_head_with_a_gpu
    out1, _ = first_run
    out = tmp_path / "cluster"
    cmd = [sys.executable, "-m", "viewer", "batch", str(archive.root), "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--ray", address, "--threads", "1"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]  # the corrupt series, as in every run
    assert f"1 Ray actor(s) on the Ray cluster at {address}, one GPU each" in done.stderr
    import torch

    if torch.cuda.is_available():
        assert "Ray actor 1: GPU 0" in done.stderr
    else:
        assert "Ray actor 1: Ray gave it GPU 0, but torch on that node cannot use CUDA" in (
            done.stderr
        )
    _same_as_first(archive, out, out1)


def test_resume_redoes_only_what_is_unfinished_and_retry_failed(archive, first_run, tmp_path):
    src, _ = first_run
    out = tmp_path / "out"
    shutil.copytree(src, out)
    # As if the run had been stopped before one series finished: its row is pending.
    again = archive.ct[1]
    db = sqlite3.connect(out / "manifest.sqlite")
    db.execute("UPDATE series SET status = 'pending', attempts = 0 WHERE key = ?", (again,))
    db.commit()
    db.close()
    shutil.rmtree(out / again)
    stamps = {k: (out / k / "findings.json").stat().st_mtime_ns for k in archive.ct if k != again}
    repair_corrupt(archive)
    try:
        assert batch(archive.root, "--out", out) == 1  # without --retry-failed: still failed
        got = rows(out)
        assert got[again]["status"] == "done" and got[again]["attempts"] == 1
        assert got[archive.corrupt]["status"] == "failed" and got[archive.corrupt]["attempts"] == 1
        for key, stamp in stamps.items():  # done series were not redone
            assert got[key]["attempts"] == 1
            assert (out / key / "findings.json").stat().st_mtime_ns == stamp
        assert batch(archive.root, "--out", out, "--retry-failed") == 0
        got = rows(out)
        assert got[archive.corrupt]["status"] == "done" and got[archive.corrupt]["attempts"] == 2
        assert got[archive.corrupt]["reason"] == ""
        assert {r["attempts"] for k, r in got.items() if k in stamps} == {1}
        assert len(got) == len(archive.keys)
    finally:
        shutil.rmtree(archive.corrupt_folder)
        from tests.batch_factory import write_corrupt_ct

        write_corrupt_ct(archive.corrupt_folder, *archive.corrupt_uids)


def test_ctrl_c_stops_and_the_next_run_finishes_without_duplicates(tmp_path):
    n = 6
    archive = make_archive(tmp_path / "archive", n_ct=n, unsuitable=False, corrupt=False)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "viewer", "batch", str(archive.root), "--out", str(out)]
    cmd += ["--workers", "2", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def as_at_a_terminal() -> None:  # a shell's background job would ignore SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=as_at_a_terminal
    )
    try:
        deadline = time.monotonic() + 240
        # Polled often: a fast machine finished all six between a 0.2 s poll and the interrupt.
        while time.monotonic() < deadline and proc.poll() is None and _done(out) < 1:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in err and "Traceback" not in err
    first = rows(out)
    done_before = {k for k, r in first.items() if r["status"] == "done"}
    assert 1 <= len(done_before) < n
    assert {r["status"] for k, r in first.items() if k not in done_before} == {"pending"}
    assert batch(archive.root, "--out", out) == 0
    got = rows(out)
    assert set(got) == set(archive.ct) and {r["status"] for r in got.values()} == {"done"}
    assert {r["attempts"] for r in got.values()} == {1}  # nothing analysed twice
    assert all((out / k / "findings.json").is_file() for k in done_before)


def test_ray_without_ray_installed_says_so(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert batch(archive.root, "--out", tmp_path / "o", "--ray", "auto") == 2
    assert "--ray needs Ray, which is not installed: pip install 'radlens[ray]'" in (
        capsys.readouterr().err
    )


def test_another_source_into_the_same_folder_is_refused(archive, first_run, tmp_path, capsys):
    out, _ = first_run
    assert batch(tmp_path, "--out", out) == 2
    assert "holds the batch of" in capsys.readouterr().err


def _done(out: Path) -> int:
    try:
        db = sqlite3.connect(out / "manifest.sqlite", timeout=1)
        n = db.execute("SELECT COUNT(*) FROM series WHERE status = 'done'").fetchone()[0]
        db.close()
        return int(n)
    except sqlite3.Error:
        return 0


def test_each_volume_of_a_multi_volume_series_is_its_own_item(tmp_path):
    import nibabel as nib

    from viewer.batch.items import folder_items

    data = np.random.default_rng(0).normal(size=(8, 8, 4, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), tmp_path / "perfusion.nii.gz")
    items, _ = folder_items(tmp_path)
    assert len(items) == 3 and len({i.key for i in items}) == 3
    assert sorted(i.description.split("—")[0].split()[-1] for i in items) == ["1/3", "2/3", "3/3"]
    assert not any(i.skip for i in items)
