"""The window's one progress bar and Cancel, shared by every background job (loading,
Analyze, export, training...): it shows while any job runs, and Cancel stops them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QDeadlineTimer
from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar, QPushButton

from viewer.ui.workers import Task, TaskContext

#: Characters of a job's sentence shown beside the bar (the tooltip has all of it).
SHOWN_CHARS = 80


class Activity:
    """A job run outside ``ActivityBar.run`` (e.g. on a thread pool), as the bar shows it."""

    def __init__(self, bar: ActivityBar, cancel: Callable[[], None]) -> None:
        self._bar, self._cancel = bar, cancel

    def progress(self, fraction: float, sentence: str = "") -> None:
        if self in self._bar.activities:
            self._bar.show_progress(fraction, sentence)

    def cancel(self) -> None:
        self._cancel()

    def end(self) -> None:
        if self in self._bar.activities:
            self._bar.activities.remove(self)
            self._bar.refresh()


class ActivityBar:
    """Owns the status bar's job sentence, progress bar and Cancel button, and the jobs
    they stand for."""

    def __init__(self, window: QMainWindow) -> None:
        self.window = window
        self.sentence = QLabel(window)
        self.progress = QProgressBar(window)
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(180)
        self.progress.setFormat("%p%")
        self.cancel_button = QPushButton("Cancel", window)
        self.cancel_button.setToolTip("Stop what is running (loading, analysis, export...)")
        self.cancel_button.clicked.connect(self.cancel_all)
        bar = window.statusBar()
        bar.addPermanentWidget(self.sentence)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self.tasks: list[Task] = []
        self.activities: list[Activity] = []
        self.refresh()

    @property
    def busy(self) -> bool:
        return bool(self.tasks or self.activities)

    def begin(self, label: str, cancel: Callable[[], None]) -> Activity:
        activity = Activity(self, cancel)
        self.activities.append(activity)
        self._started(label)
        return activity

    def run(
        self,
        fn: Callable[[TaskContext], Any],
        label: str,
        on_success: Callable[[Any], None],
        on_partial: Callable[[Any], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        wanted: Callable[[Task], bool] | None = None,
    ) -> Task:
        task = Task(fn, self.window)

        def live() -> bool:
            # Late signals of a superseded or cancelled task are dropped (no longer wanted).
            return wanted(task) if wanted is not None else not task.cancelled()

        if on_partial is not None:
            task.partial.connect(lambda obj: on_partial(obj) if live() else None)
        task.succeeded.connect(lambda res: on_success(res) if live() else None)
        if on_failed is not None:
            task.failed.connect(lambda msg: on_failed(msg) if live() else None)
        task.was_cancelled.connect(lambda: self.window.statusBar().showMessage("Cancelled", 4000))
        task.progressed.connect(self.show_progress)
        task.finished.connect(lambda: self._task_finished(task))
        self.tasks.append(task)
        self._started(label)
        task.start()
        return task

    def show_progress(self, fraction: float, sentence: str) -> None:
        self.progress.setValue(int(np.clip(fraction, 0, 1) * 1000))
        if sentence:
            self._say(sentence)

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for activity in list(self.activities):
            activity.cancel()

    def wait_idle(self, ms: int = 10_000) -> bool:
        """Wait (bounded by ``ms`` in all) until no task is left: each one's thread ended and
        its queued results delivered, so what it loaded is on screen, cached and reported
        before the caller goes on (a result left queued came after the caller's next step,
        which dropped it as superseded). Tasks a delivered result starts are waited for too.
        Only the tasks' own signals are delivered, no other event. True if none is left."""
        deadline = QDeadlineTimer(max(0, ms))
        while self.tasks:
            for task in list(self.tasks):
                if not task.wait(max(0, deadline.remainingTime())):
                    return False
                task.deliver()  # its last signal, finished, takes it off self.tasks
            if self.tasks and deadline.hasExpired():
                return False
        return True

    def _say(self, sentence: str) -> None:
        short = sentence if len(sentence) <= SHOWN_CHARS else sentence[: SHOWN_CHARS - 1] + "…"
        self.sentence.setText(short)
        self.sentence.setToolTip(sentence)
        self.progress.setToolTip(sentence)

    def _started(self, label: str) -> None:
        self.refresh()
        self.progress.setValue(0)
        self._say(label)

    def _task_finished(self, task: Task) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        task.deleteLater()
        self.refresh()

    def refresh(self) -> None:
        busy = self.busy
        self.sentence.setVisible(busy)
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
