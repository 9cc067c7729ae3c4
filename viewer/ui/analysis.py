"""The worker-thread bridge to ``inference.engine``: run a model off the main thread, report by signal.

``AnalysisController.start(volume, card)`` runs ``Engine(device).run(...)`` on a QThread,
turns the engine's answer into a ``ResultRecord`` plus its findings, stores it with the
series, and emits ``analysis_finished(AnalysisOutcome)``. Progress arrives throttled as
``analysis_progressed(fraction, sentence)``; ``cancel()`` sets the flag the engine's
``cancel()`` callback reads. The main thread never waits on the worker except, bounded,
when the window closes. ``inference.engine`` (and with it torch) is imported inside the
worker; this module imports neither.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from radlens_core.errors import UserError
from radlens_core.progress import Cancelled
from viewer.engine_warm_up import (
    import_engine,
    limit_torch_threads,
    lower_thread_priority,
    short_thread_switches,
    thread_nice,
)
from viewer.labels.result_findings import ResultSummary, summarise
from viewer.labels.results import ResultRecord, ResultStore, record_from_result
from viewer.study.volume import Volume

if TYPE_CHECKING:
    from inference.card import ModelCard

#: Engine factory: device name -> an object with the ``inference.engine.Engine.run`` signature.
EngineFactory = Callable[[str], Any]
#: Shows a finished run in steps (see ``AnalysisController.set_presenter``).
Presenter = Callable[["AnalysisOutcome"], Iterator[None]]

log = logging.getLogger(__name__)

#: Progress signals closer together than this are dropped (the last one always passes):
#: a sliding window can report hundreds of steps a second, each a queued event to paint.
PROGRESS_INTERVAL_S = 0.05


def volume_key(volume: Volume) -> str:
    """The key results are stored under: ``Volume.key``, the same as the label store's."""
    return volume.key


@dataclass
class AnalysisOutcome:
    """What a finished run hands the window: the record, its findings and where it belongs."""

    record: ResultRecord
    summary: ResultSummary
    series_key: str
    card: ModelCard
    volume: Volume


def _default_engine_factory(device: str) -> Any:
    # Lazy: torch loads on the first Analyze only. Clicked before the background warm-up
    # finished, this thread does (or waits for) the same imports, its native libraries
    # loaded off the interpreter lock, so the UI thread keeps drawing meanwhile.
    import_engine()
    from inference.engine import Engine

    limit_torch_threads()
    return Engine(device)


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
        card: ModelCard,
        device: str,
        engine_factory: EngineFactory,
        store: ResultStore | None,
        cancel_flag: threading.Event,
        ui_nice: int,
        outside_intended_use: bool = False,
    ) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.signals = _JobSignals()
        self.done = threading.Event()
        self.volume, self.card, self.device = volume, card, device
        self.engine_factory, self.store, self.cancel_flag = engine_factory, store, cancel_flag
        self.ui_nice = ui_nice
        self.outside_intended_use = outside_intended_use
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
            raise Cancelled("analysis cancelled")

    def _image(self) -> Any:
        # A 2D model gets the (y, x) image; its answers are reshaped back to (1, y, x).
        if int(self.card.spatial_dims) == 2 and self.volume.is_2d:
            return self.volume.array[0]
        return self.volume.array

    def run(self) -> None:  # on a pool thread
        # Between the model's steps this thread runs Python and numpy: with the short switch
        # interval the UI thread, wanting the interpreter lock back after each numpy call of
        # its frame, waits 0.5 ms for it instead of 5 ms (see viewer.engine_warm_up).
        with short_thread_switches():
            self._run()

    def _run(self) -> None:
        name = model_name(self.card)
        try:
            self._progress(0.0, f"loading {name}")
            # WORKER_NICE below the UI thread from the start, the import of a first run
            # (torch, MONAI) included: at the UI's priority that import took half of the
            # process's CPU from the scrolling UI thread (see viewer.engine_warm_up).
            lower_thread_priority(self.ui_nice)
            engine = self.engine_factory(self.device)
            vol = self.volume
            # Only an override passes the flag: an admitted run calls the engine as before.
            override = {"outside_intended_use": True} if self.outside_intended_use else {}
            result = engine.run(
                self._image(),
                vol.spacing,
                vol.direction,
                vol.modality,
                self.card,
                progress=self._progress,
                cancel=self.cancel_flag.is_set,
                **override,
            )
            self._check()
            self._progress(0.97, "listing findings")
            record = record_from_result(
                result, self.card, shape=vol.shape, outside_intended_use=self.outside_intended_use
            )
            summary = summarise(record, vol.spacing)
            self._check()
            key = volume_key(vol)
            if self.store is not None:
                self._progress(0.99, "saving results with the series")
                self.store.save(key, record)
            self.signals.succeeded.emit(AnalysisOutcome(record, summary, key, self.card, vol))
        except Exception as exc:  # every failure becomes a message; the window stays up
            if isinstance(exc, Cancelled) or self.cancel_flag.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.failed.emit(_failure_sentence(name, exc))
        finally:
            self.done.set()


def model_name(card: ModelCard) -> str:
    return str(card.name or card.id or "the model")


def _explained_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is a sentence for the user: shown as is, without a class name.
    Imported here, on the worker, after the engine (and torch) already loaded."""
    from inference.card import CardError
    from inference.engine import EngineError
    from inference.weights import WeightsError

    return (UserError, CardError, EngineError, WeightsError)


def _failure_sentence(name: str, exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = "not enough memory to run it on this machine"
    elif not isinstance(exc, _explained_errors()):
        text = f"{type(exc).__name__}: {text}"
    return f"Analysis with {name} failed: {text}"


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
        engine_factory: EngineFactory | None = None,
        store: ResultStore | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__(parent)
        # The UI thread's niceness: the worker runs a fixed step below it (see engine_warm_up).
        self._ui_nice = thread_nice()
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
        self._presenter: Presenter | None = None
        self._presenting: Iterator[None] | None = None

    def set_presenter(self, presenter: Presenter | None) -> None:
        """``presenter(outcome)`` shows a finished run on the UI thread in steps: the
        controller advances it one step per event-loop turn (the window draws and handles
        input in between) and emits ``analysis_finished`` after its last step. Showing a
        300×512×512 result (a layer per mask, heat map and boxes, each drawn in three views)
        in one call would hold the UI thread for all of it at once."""
        self._presenter = presenter

    def is_presenting(self) -> bool:
        """True while a finished run is being shown, before ``analysis_finished``."""
        return self._presenting is not None

    def is_running(self) -> bool:
        return self._job is not None

    def start(self, volume: Volume, card: ModelCard, outside_intended_use: bool = False) -> bool:
        """Start analysing ``volume`` with ``card``; refuses (and says so) while one runs.
        ``outside_intended_use``: the user confirmed running a model whose card does not
        admit the series; the engine is told and the result is marked."""
        if self._job is not None:
            self.analysis_refused.emit(
                f"{self._model_name} is still running: wait for it or cancel it first."
            )
            return False
        self._closed = False
        self._cancel = threading.Event()
        self._model_name = model_name(card)
        job = _AnalysisJob(
            volume,
            card,
            self.device,
            self._engine_factory,
            self._store,
            self._cancel,
            self._ui_nice,
            outside_intended_use,
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
        self._presenting = None  # the window is going away: no further display steps
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
        elif self._presenter is None:
            self.analysis_finished.emit(outcome)
        else:
            if self._presenting is not None:  # a fast run ended while the last was shown
                self._present(self._presenting, until_done=True)
            self._presenting = steps = self._steps(outcome)
            self._present(steps)

    def _steps(self, outcome: AnalysisOutcome) -> Iterator[None]:
        """The presenter's steps, then ``analysis_finished``; a failing step is logged and
        the run still finishes (it is stored; the window shows what it could)."""
        assert self._presenter is not None
        try:
            yield from self._presenter(outcome)
        except Exception:  # noqa: BLE001 - a display failure must not lose the run
            log.exception("showing the result of %s failed", outcome.record.model_name)
        # The listeners of analysis_finished (annotation proposals, banner, status) get an
        # event-loop turn of their own, not the last display step's.
        yield
        self._presenting = None
        self.analysis_finished.emit(outcome)

    def _present(self, steps: Iterator[None], until_done: bool = False) -> None:
        while self._presenting is steps:  # else the window closed meanwhile
            try:
                next(steps)
            except StopIteration:
                return
            if not until_done:
                QTimer.singleShot(0, self, lambda: self._present(steps))
                return

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


_warm_up_lock = threading.Lock()
_warm_up_thread: threading.Thread | None = None


def warm_up_engine() -> threading.Thread:
    """Import torch and the engine on a background thread, once per process, so the
    clinician's first Analyze does not pay for them. Call it when the window is up and idle
    (``viewer.ui.app`` does) from the UI thread. The thread runs ``WORKER_NICE`` steps below
    the caller, as an analysis does (see viewer.engine_warm_up); a first Analyze clicked
    meanwhile waits for it instead of importing twice."""
    global _warm_up_thread
    with _warm_up_lock:
        if _warm_up_thread is None:
            _warm_up_thread = threading.Thread(
                target=_warm_up, args=(thread_nice(),), name="engine-warm-up", daemon=True
            )
            _warm_up_thread.start()
        return _warm_up_thread


def _warm_up(ui_nice: int) -> None:
    lower_thread_priority(ui_nice)
    import_engine()
