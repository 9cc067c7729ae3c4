"""Run a function on a QThread and get its progress, partial results and outcome by signal.

The function receives a ``TaskContext``: ``progress(fraction, sentence)``, ``partial(obj)``
and ``cancelled()``. It never touches a widget; the signals are delivered on the main thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, Signal, Slot

from radlens_core.progress import Cancelled

__all__ = ["Cancelled", "Task", "TaskContext", "Worker"]


class TaskContext:
    """What a task function may use; safe to call from the worker thread."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._event = threading.Event()
        self._last_progress = 0.0

    def progress(self, fraction: float, sentence: str = "") -> None:
        # Throttled: a progress signal per file would flood the event loop on big folders.
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last_progress > 0.05:
            self._last_progress = now
            self._worker.progressed.emit(float(fraction), str(sentence))

    def partial(self, obj: Any) -> None:
        self._worker.partial.emit(obj)

    def cancel(self) -> None:
        self._event.set()

    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class Worker(QObject):
    progressed = Signal(float, str)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    was_cancelled = Signal()
    finished = Signal()

    def __init__(self, fn: Callable[[TaskContext], Any]) -> None:
        super().__init__()
        self._fn = fn
        self.context = TaskContext(self)

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(self.context)
        except Cancelled:
            self.was_cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a crash
            self.failed.emit(str(exc) or type(exc).__name__)
        else:
            if self.context.cancelled():
                self.was_cancelled.emit()
            else:
                self.succeeded.emit(result)
        self.finished.emit()


#: Tasks whose thread has started and not yet finished. Qt aborts the whole program when a
#: QThread is destroyed while it runs; holding each running Task here means dropping the last
#: other reference (a closed panel, a test's teardown) can never destroy a running thread.
_LIVE: set[Task] = set()


class Task(QObject):
    """Owns one worker thread and re-emits its signals on the main thread.

    Connect to the Task's signals, never to the worker's: a plain Python callable connected
    to a worker signal would run on the worker thread (PySide has no receiver to queue to).
    Keep a reference until ``finished``.
    """

    progressed = Signal(float, str)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    was_cancelled = Signal()
    finished = Signal()

    def __init__(self, fn: Callable[[TaskContext], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = QThread()
        self.worker = Worker(fn)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.progressed.connect(self._progressed)
        self.worker.partial.connect(self._partial)
        self.worker.succeeded.connect(self._succeeded)
        self.worker.failed.connect(self._failed)
        self.worker.was_cancelled.connect(self._was_cancelled)
        # Direct: the thread quits from itself the moment the work ends. Queued (the default,
        # the QThread object lives on the main thread) its quit waited for the main thread's
        # event loop, so a main thread blocked in ``wait`` kept it alive until the wait's bound.
        self.worker.finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.thread.finished.connect(self._finished)

    @Slot(float, str)
    def _progressed(self, fraction: float, sentence: str) -> None:
        self.progressed.emit(fraction, sentence)

    @Slot(object)
    def _partial(self, obj: Any) -> None:
        self.partial.emit(obj)

    @Slot(object)
    def _succeeded(self, obj: Any) -> None:
        self.succeeded.emit(obj)

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.failed.emit(message)

    @Slot()
    def _was_cancelled(self) -> None:
        self.was_cancelled.emit()

    @Slot()
    def _finished(self) -> None:
        try:
            self.finished.emit()
        finally:
            _LIVE.discard(self)

    def start(self) -> None:
        _LIVE.add(self)
        self.thread.start()

    def cancel(self) -> None:
        self.worker.context.cancel()

    def cancelled(self) -> bool:
        return self.worker.context.cancelled()

    def wait(self, ms: int = 5000) -> bool:
        """Block until the worker thread has ended (bounded); True if it did. Its signals may
        still be queued for the main thread: ``deliver`` hands them over."""
        return self.thread.wait(ms)

    def deliver(self) -> None:
        """Deliver, now, the signals the worker has queued for the main thread (its progress,
        partial results, outcome and ``finished``), in order, and nothing else of the event
        queue. Main thread only."""
        QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)

    @property
    def running(self) -> bool:
        return self.thread.isRunning()
