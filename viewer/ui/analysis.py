"""The worker-thread bridge to ``inference.engine``: run a model off the main thread, report by signal.

``AnalysisController.start(volume, card)`` runs ``Engine(device).run(...)`` on a QThread,
turns the engine's answer into a ``ResultRecord`` plus its findings, stores it with the
series, and emits ``analysis_finished(AnalysisOutcome)``. Progress arrives throttled as
``analysis_progressed(fraction, sentence)``; ``cancel()`` sets the flag the engine's
``cancel()`` callback reads. The main thread never waits on the worker except, bounded,
when the window closes. torch and ``inference.engine`` are imported inside the worker.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from viewer.labels.result_findings import ResultSummary, summarise
from viewer.labels.results import ResultRecord, ResultStore, record_from_result
from viewer.study.volume import Volume

#: Progress signals closer together than this are dropped (the last one always passes):
#: a sliding window can report hundreds of steps a second, each a queued event to paint.
PROGRESS_INTERVAL_S = 0.05


def volume_key(volume: Volume) -> str:
    """The key results are stored under: the SeriesInstanceUID, else a hash of the pixels."""
    if volume.series_uid:
        return volume.series_uid
    digest = hashlib.sha1(volume.array.tobytes(), usedforsecurity=False).hexdigest()[:20]
    return f"pixels-{digest}"


@dataclass
class AnalysisOutcome:
    """What a finished run hands the window: the record, its findings and where it belongs."""

    record: ResultRecord
    summary: ResultSummary
    series_key: str
    card: Any
    volume: Volume


class _Cancelled(Exception):
    """Raised by our own checks between steps when the engine finished after a cancel."""


def _default_engine_factory(device: str) -> Any:
    from inference.engine import Engine  # lazy: torch loads on the first Analyze only

    _limit_torch_threads()
    return Engine(device)


def _is_cancellation(exc: BaseException) -> bool:
    # The engine's Cancelled is imported lazily, so it is recognised by name as well.
    return isinstance(exc, _Cancelled) or type(exc).__name__ == "Cancelled"


class _JobSignals(QObject):
    """Lives on the main thread; the job emits through it, so every slot runs there."""

    progressed = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()


class _AnalysisJob(QRunnable):
    """One run on a pool thread. A runnable, not a QThread: nothing can destroy it mid-run."""

    def __init__(
        self,
        volume: Volume,
        card: Any,
        device: str,
        engine_factory: Callable[[str], Any],
        store: ResultStore | None,
        cancel_flag: threading.Event,
    ) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.signals = _JobSignals()
        self.done = threading.Event()
        self.volume, self.card, self.device = volume, card, device
        self.engine_factory, self.store, self.cancel_flag = engine_factory, store, cancel_flag
        self._last_emit = 0.0
        self._last_sentence = ""

    def _progress(self, fraction: float, sentence: str) -> None:
        now = time.monotonic()
        # A new stage ("resampling" -> "window 1 of 48") always shows; steps within a
        # stage ("window 7 of 480", "window 8 of 480") at most every PROGRESS_INTERVAL_S.
        stage = sentence.split(" ", 1)[0]
        if (
            stage != self._last_sentence
            or fraction >= 1.0
            or now - self._last_emit >= PROGRESS_INTERVAL_S
        ):
            self._last_emit, self._last_sentence = now, stage
            self.signals.progressed.emit(float(fraction), str(sentence))

    def _check(self) -> None:
        if self.cancel_flag.is_set():
            raise _Cancelled()

    def _image(self) -> Any:
        # A 2D model gets the (y, x) image; its answers are reshaped back to (1, y, x).
        if int(getattr(self.card, "spatial_dims", 3)) == 2 and self.volume.is_2d:
            return self.volume.array[0]
        return self.volume.array

    def run(self) -> None:  # on a pool thread
        name = str(getattr(self.card, "name", "") or getattr(self.card, "id", "the model"))
        _yield_to_the_ui_thread()
        try:
            self._progress(0.0, f"loading {name}")
            engine = self.engine_factory(self.device)
            vol = self.volume
            result = engine.run(
                self._image(),
                vol.spacing,
                vol.direction,
                vol.modality,
                self.card,
                progress=self._progress,
                cancel=self.cancel_flag.is_set,
            )
            self._check()
            self._progress(0.97, "listing findings")
            record = record_from_result(result, self.card, shape=vol.shape)
            summary = summarise(record, vol.spacing)
            self._check()
            key = volume_key(vol)
            if self.store is not None:
                self._progress(0.99, "saving results with the series")
                self.store.save(key, record)
            self.signals.succeeded.emit(AnalysisOutcome(record, summary, key, self.card, vol))
        except Exception as exc:  # every failure becomes a message; the window stays up
            if _is_cancellation(exc) or self.cancel_flag.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.failed.emit(_failure_sentence(name, exc))
        finally:
            self.done.set()


#: Nice value for the analysis thread: when the UI thread and the model want the same core,
#: the UI thread gets it (scrolling stays smooth; the model takes a little longer).
#: ``RADLENS_ANALYSIS_NICE`` overrides it (0 = same priority as the UI).
WORKER_NICE = int(os.environ.get("RADLENS_ANALYSIS_NICE", "10"))


def _yield_to_the_ui_thread() -> None:
    """Lower this thread's CPU priority. On Linux ``nice`` is per thread, and torch's
    intra-op threads started from here inherit it; elsewhere this does nothing."""
    if not hasattr(os, "setpriority") or WORKER_NICE <= 0:
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < WORKER_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICE)
    except OSError:
        pass  # not permitted here: run at normal priority


def _limit_torch_threads() -> None:
    """Leave one core to the UI thread: torch's intra-op pool otherwise takes them all."""
    import torch

    cores = os.cpu_count() or 2
    wanted = max(1, cores - 1)
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)


#: What the first Analyze would otherwise import on its worker: torch (200-300 ms of
#: extension start-up that holds the interpreter lock) and MONAI (over a thousand modules,
#: the "loading model" pauses). Module names, imported in this order by ``warm_up_engine``.
WARM_UP_MODULES = (
    "torch",
    "inference.engine",
    "inference.tasks.segment",
    "inference.tasks.detect",
    "inference.tasks.classify",
    "monai.networks.nets",
    "monai.inferers",
    "monai.visualize",
)

_warm_up_lock = threading.Lock()
_warm_up_thread: threading.Thread | None = None


def warm_up_engine() -> threading.Thread:
    """Import torch and the engine's MONAI parts on a low-priority background thread, once
    per process, so the clinician's first Analyze does not pay for them. Call it when the
    window is up and idle (``viewer.ui.app`` does): the imports still hold the interpreter
    lock for a few hundred milliseconds, which nobody notices while nothing is being done."""
    global _warm_up_thread
    with _warm_up_lock:
        if _warm_up_thread is None:
            _warm_up_thread = threading.Thread(target=_warm_up, name="engine-warm-up", daemon=True)
            _warm_up_thread.start()
        return _warm_up_thread


def _warm_up() -> None:
    import importlib
    import logging

    _yield_to_the_ui_thread()
    for name in WARM_UP_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an install without MONAI still analyses what it can
            logging.getLogger(__name__).info("warm-up: %s not imported (%s)", name, exc)
            if name == "torch":
                return
    _limit_torch_threads()


def _failure_sentence(model_name: str, exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = "not enough memory to run it on this machine"
    elif type(exc).__name__ not in ("EngineError", "ModelCardError", "IncompatibleModel"):
        text = f"{type(exc).__name__}: {text}"
    return f"Analysis with {model_name} failed: {text}"


class AnalysisController(QObject):
    """Owns at most one running analysis; all signals arrive on the main thread."""

    analysis_started = Signal(str)  # model name
    analysis_progressed = Signal(float, str)
    analysis_finished = Signal(object)  # AnalysisOutcome
    analysis_failed = Signal(str)
    analysis_cancelled = Signal()
    analysis_refused = Signal(str)

    def __init__(
        self,
        parent: QObject | None = None,
        engine_factory: Callable[[str], Any] | None = None,
        store: ResultStore | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(parent)
        self._engine_factory = engine_factory or _default_engine_factory
        self._store = store
        self.device = device
        self._job: _AnalysisJob | None = None
        # A pool of our own: its one thread is reniced for analysis (see WORKER_NICE), and
        # the application's global pool (used for loading) keeps its normal priority.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        # Signal carriers of ended jobs: kept here, on the main thread, so the pool never
        # drops the last reference (and destroys a main-thread QObject) on its own thread.
        self._retired: list[_JobSignals] = []
        self._closed = False
        self._cancel = threading.Event()
        self._model_name = ""

    def is_running(self) -> bool:
        return self._job is not None

    def start(self, volume: Volume, card: Any) -> bool:
        """Start analysing ``volume`` with ``card``; refuses (and says so) while one runs."""
        if self._job is not None:
            self.analysis_refused.emit(
                f"{self._model_name} is still running: wait for it or cancel it first."
            )
            return False
        self._closed = False
        self._cancel = threading.Event()
        self._model_name = str(getattr(card, "name", "") or getattr(card, "id", "model"))
        job = _AnalysisJob(
            volume, card, self.device, self._engine_factory, self._store, self._cancel
        )
        job.signals.progressed.connect(self._on_progress)
        job.signals.succeeded.connect(self._on_succeeded)
        job.signals.failed.connect(self._on_failed)
        job.signals.cancelled.connect(self._on_cancelled)
        self._job = job
        self._pool.start(job)
        self.analysis_started.emit(self._model_name)
        return True

    def cancel(self) -> None:
        """Ask the running analysis to stop at its next step; ``analysis_cancelled`` follows."""
        self._cancel.set()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel and wait (bounded) for the worker: for closing the window. True if it ended."""
        job = self._job
        if job is None:
            return True
        self._cancel.set()
        ended = job.done.wait(timeout_ms / 1000.0)
        if ended:
            # Its result signals may still be queued: ignore them, the window is going away.
            self._closed = True
            self._release()
        return ended

    def _release(self) -> None:
        if self._job is not None:
            self._retired = [*self._retired[-3:], self._job.signals]
        self._job = None

    @Slot(float, str)
    def _on_progress(self, fraction: float, sentence: str) -> None:
        if self._job is not None and not self._closed:
            self.analysis_progressed.emit(fraction, sentence)

    @Slot(object)
    def _on_succeeded(self, outcome: AnalysisOutcome) -> None:
        self._release()
        if self._closed:
            return
        if self._cancel.is_set():
            self.analysis_cancelled.emit()
        else:
            self.analysis_finished.emit(outcome)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._release()
        if self._closed:
            return
        self.analysis_failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self._release()
        if self._closed:
            return
        self.analysis_cancelled.emit()
