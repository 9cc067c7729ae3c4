"""Where the work runs: a local process pool (default) or Ray actors on a cluster.

Both take work items and yield one ``ItemResult`` per item as it finishes, with at most a
few items in flight per worker, so a Ctrl-C loses only the series being analysed."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from radlens_core.errors import UserError
from viewer.batch.items import WorkItem
from viewer.batch.manifest import FAILED, Outcome
from viewer.batch.work import (
    ItemResult,
    Options,
    SeriesWorker,
    analyse_in_process,
    init_process,
    started,
)

#: Items queued per worker beyond the one it is analysing (keeps workers busy, Ctrl-C cheap).
QUEUE_PER_WORKER = 1

CRASHED = (
    "the worker process analysing it ended abruptly (a crash or the system running out of"
    " memory); retry with --retry-failed"
)


#: Thread counts of the native libraries a worker loads (OpenMP, OpenBLAS under numpy, MKL,
#: ITK under SimpleITK), each read once when the library loads: a worker process gets them in
#: its environment from the start (numpy's OpenBLAS loads before any code of the worker runs),
#: as Ray gives its actors OMP_NUM_THREADS, so N workers run N threads, not N per core.
#: A value the user set is kept.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


def thread_env(threads: int) -> dict[str, str]:
    """The worker environment's thread counts (``THREAD_ENV``), the user's own values kept."""
    return {k: os.environ.get(k, str(max(1, threads))) for k in THREAD_ENV}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ while processes are started (they copy it), then restored."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class BatchError(UserError):
    """The batch cannot start or go on (a sentence for the user)."""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of ``workers`` processes: the cores shared out, at least one."""
    return max(1, cores() // max(1, workers))


class LocalPool:
    """``workers`` spawned processes, each loading a model once and keeping it."""

    def __init__(self, workers: int, options: Options) -> None:
        self.workers = max(1, workers)
        self.options = options
        self.pool: ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return f"{self.workers} local worker(s), {self.options.threads} thread(s) each"

    def placement_notes(self) -> list[str]:
        return []  # local workers run where the command runs

    def __enter__(self) -> LocalPool:
        self._start()
        return self

    def _start(self) -> None:
        self.pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_process,
            initargs=(self.options,),
        )
        # The executor starts a process per task submitted while none is idle: one no-op
        # each starts them all now (with their thread counts in their environment), and
        # their initializer loads torch and the models while the driver is still scanning.
        with _environment(thread_env(self.options.threads or 1)):
            for _ in range(self.workers):
                self.pool.submit(started)

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.pool is None:
            return
        # Ctrl-C: the series in flight are redone on resume. After the last result the
        # workers hold nothing unwritten (the driver writes every file): they are ended
        # rather than left to unload torch and MONAI (seconds of interpreter teardown each).
        _terminate(self.pool)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None

    def run(self, items: Iterable[WorkItem]) -> Iterator[ItemResult]:
        todo = iter(items)
        flying: dict[Future, WorkItem] = {}

        def fill() -> None:
            assert self.pool is not None
            while len(flying) < self.workers * (1 + QUEUE_PER_WORKER):
                item = next(todo, None)
                if item is None:
                    return
                flying[self.pool.submit(analyse_in_process, item)] = item

        fill()
        while flying:
            finished, _ = wait(list(flying), return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                item = flying.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    broken = True
                    yield ItemResult(Outcome(item.key, FAILED, reason=CRASHED), (), item.generation)
            if broken:
                # Every series in flight in the dead pool failed with it; a fresh pool goes on.
                for item in list(flying.values()):
                    yield ItemResult(Outcome(item.key, FAILED, reason=CRASHED), (), item.generation)
                flying.clear()
                assert self.pool is not None
                self.pool.shutdown(wait=False, cancel_futures=True)
                self._start()
            fill()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now rather than after their current series (Python < 3.14 has no
    public ``terminate_workers``; the executor's process table is the only handle)."""
    stop = getattr(pool, "terminate_workers", None)
    if callable(stop):
        stop()
        return
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()


# -- Ray ---------------------------------------------------------------------------------------
def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise BatchError(
            "--ray needs Ray, which is not installed: pip install 'radlens[ray]'"
            " (on this machine and on every node of the cluster)"
        ) from None
    return ray


#: The variables a local Ray's workers must share with the driver (which code, which models).
LOCAL_ENV = ("PYTHONPATH", "RADLENS_DATA_DIR", "RADLENS_OFFLINE", "XDG_CONFIG_HOME", "HOME")
#: Object store of a local Ray: the results are small (findings and compressed masks).
LOCAL_OBJECT_STORE = 128 * 1024**2


class RayWorkers:
    """Ray actors, each a ``SeriesWorker`` (one model load per actor). ``address`` "auto"
    starts a Ray instance on this machine (loopback, no dashboard) and stops it after;
    any other address connects to that running cluster. Ray decides where actors run."""

    def __init__(self, address: str, workers: int | None, options: Options) -> None:
        self.address = address
        self.workers = workers
        self.options = options
        self.ray: Any = None
        self.actors: list[Any] = []
        self.gpus = 0.0
        self._placements: list[Any] = []
        self.started_here = False
        self._replaced: dict[int, Any] = {}

    def describe(self) -> str:
        where = "a local Ray" if self.started_here else f"the Ray cluster at {self.address}"
        gpu = ", one GPU each" if self.gpus else ""
        return f"{len(self.actors)} Ray actor(s) on {where}{gpu}"

    def __enter__(self) -> RayWorkers:
        ray = self.ray = import_ray()
        try:
            if self.address == "auto":
                n = self.workers or cores()
                env = {k: os.environ[k] for k in LOCAL_ENV if k in os.environ}
                env.update(thread_env(self.options.threads or 1))
                # The local workers import this very code, wherever it was imported from.
                here = str(Path(__file__).resolve().parents[2])
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (here, env.get("PYTHONPATH", "")) if p
                )
                ray.init(
                    num_cpus=n * (self.options.threads or 1),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    object_store_memory=LOCAL_OBJECT_STORE,
                    runtime_env={"env_vars": env},
                    log_to_driver=False,
                    configure_logging=False,
                )
                self.started_here = True
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise BatchError(
                f"cannot reach the Ray cluster at {self.address}: {' '.join(str(exc).split())}"
            ) from None
        try:
            self._start_actors()
        except BaseException:
            ray.shutdown()
            raise
        return self

    def _start_actors(self) -> None:
        ray = self.ray
        have = ray.cluster_resources()
        threads = self.options.threads or 1
        want_gpu = self.options.device.startswith("cuda") or (
            self.options.device == "auto" and have.get("GPU", 0) >= 1
        )
        if self.options.device.startswith("cuda") and have.get("GPU", 0) < 1:
            raise BatchError(f"--device cuda: the Ray cluster at {self.address} has no GPU")
        self.gpus = 1.0 if want_gpu else 0.0
        if self.workers:
            n = self.workers
        elif want_gpu:
            n = int(have.get("GPU", 1))
        else:
            n = max(1, int(have.get("CPU", 1)) // threads)
        actor = ray.remote(num_cpus=threads, num_gpus=self.gpus)(SeriesWorker)
        self.actors = [actor.remote(self.options) for _ in range(n)]
        for a in self.actors:  # torch and the models load now; an actor runs calls in order
            a.warm.remote()
        # Answered once the actor has warmed up; read after the run (it never holds it up).
        self._placements = [a.placement.remote() for a in self.actors]

    def placement_notes(self) -> list[str]:
        """One sentence per actor: the GPUs Ray assigned it, and a warning when torch in that
        worker cannot use CUDA although it holds a GPU (its series ran on the CPU)."""
        notes = []
        for i, ref in enumerate(self._placements, 1):
            try:
                got = self.ray.get(ref, timeout=30)
            except Exception as exc:  # noqa: BLE001 (a dead or replaced actor: said, not raised)
                notes.append(f"Ray actor {i}: placement unknown ({type(exc).__name__})")
                continue
            if not got["gpus"]:
                notes.append(f"Ray actor {i}: no GPU (CPU)")
            elif got["cuda"]:
                notes.append(f"Ray actor {i}: GPU {', '.join(got['gpus'])}")
            else:
                notes.append(
                    f"Ray actor {i}: Ray gave it GPU {', '.join(got['gpus'])}, but torch on that"
                    " node cannot use CUDA, so its series ran on the CPU (install a CUDA build"
                    " of torch there)"
                )
        return notes

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
        # A cluster we only connected to keeps running; only our own local instance stops.
        self.ray.shutdown()

    def run(self, items: Iterable[WorkItem]) -> Iterator[ItemResult]:
        ray = self.ray
        todo = iter(items)
        idle = list(self.actors) * (1 + QUEUE_PER_WORKER)
        flying: dict[Any, tuple[Any, WorkItem]] = {}

        def fill() -> None:
            while idle:
                item = next(todo, None)
                if item is None:
                    return
                actor = idle.pop(0)
                flying[actor.analyse.remote(item)] = (actor, item)

        fill()
        while flying:
            ready, _ = ray.wait(list(flying), num_returns=1)
            for ref in ready:
                actor, item = flying.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError:
                    result = ItemResult(
                        Outcome(item.key, FAILED, reason=CRASHED), (), item.generation
                    )
                    actor = self._replace(actor)
                except ray.exceptions.RayError as exc:
                    reason = "Ray could not run it: " + " ".join(str(exc).split())[:300]
                    result = ItemResult(
                        Outcome(item.key, FAILED, reason=reason), (), item.generation
                    )
                idle.append(actor)
                yield result
            fill()

    def _replace(self, dead: Any) -> Any:
        """A fresh actor for one that died (the others keep their queue); its other queued
        item fails too and gets the same replacement."""
        if id(dead) in self._replaced:
            return self._replaced[id(dead)]
        threads = self.options.threads or 1
        actor = self.ray.remote(num_cpus=threads, num_gpus=self.gpus)(SeriesWorker)
        fresh = actor.remote(self.options)
        self.actors = [fresh if a is dead else a for a in self.actors]
        self._replaced[id(dead)] = fresh
        return fresh
