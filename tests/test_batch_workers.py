"""Local batch workers: each starts in a session of its own (Linux shares the CPU between
sessions, so workers in the driver's session would share one share), with the native
libraries' thread counts of --threads in its environment from the start, the user's own
values kept."""

from __future__ import annotations

import multiprocessing
import os

import pytest

pytest.importorskip("torch")

from viewer.batch.runners import LocalPool  # noqa: E402
from viewer.batch.work import Options  # noqa: E402


def test_workers_run_in_sessions_of_their_own_with_their_thread_counts(monkeypatch):
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the user's own value
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with LocalPool(2, Options(threads=1)) as pool:
        assert pool.pool is not None
        sessions = [pool.pool.submit(os.getsid, 0).result(timeout=300) for _ in range(4)]
        workers = {p.pid for p in multiprocessing.active_children()}
        assert os.getsid(0) not in sessions
        assert set(sessions) <= workers  # a session's id is its leader's: the worker itself
        blas = pool.pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result(timeout=300)
        omp = pool.pool.submit(os.getenv, "OMP_NUM_THREADS").result(timeout=300)
        mkl = pool.pool.submit(os.getenv, "MKL_NUM_THREADS").result(timeout=300)
    assert (blas, omp, mkl) == ("1", "1", "3")
    # The driver's own environment is as it was.
    assert "OPENBLAS_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "3"
