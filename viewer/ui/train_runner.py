"""Run `radlens train` as a child process and turn its progress events into signals.

``TrainRequest`` + ``build_args`` say what to run; ``TrainRunner`` runs it.

Training runs in its own Python process (``sys.executable -m viewer train ...``), so torch
never loads into the window and a crash in training cannot take the viewer down. Stop asks
politely first (the trainer checks ``OUT/STOP`` between optimiser steps and keeps the best
epoch), then terminates and finally kills after bounded waits.

The child runs with ``--progress-json``: besides its sentences for people (shown in the log)
it prints one JSON object per line (``inference.training.events``: start, epoch, done,
published, stopped, error...), and those, not the sentences, drive the progress and outcome.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

# stdlib only: the event protocol, not numpy or torch, comes into the window
from inference.training.events import parse_line

#: the trainer's stop file, as inference.training.train.STOP_FILE (not imported: that pulls numpy
#: and the training package into the window for one constant)
STOP_FILE = "STOP"
#: the trainer's --device choices
DEVICES = ("auto", "cpu", "cuda")
_NUM = r"[-+0-9.eEnaif]+"
#: the people's epoch sentence, for ``parse_epoch_line`` only (logs of a run, older trainers);
#: the runner itself reads the trainer's JSON events
_EPOCH = re.compile(
    rf"^epoch (?P<epoch>\d+)/(?P<epochs>\d+)\s+loss (?P<loss>{_NUM})\s+"
    rf"(?P<metric>\w+) (?P<value>{_NUM})\s+\(best (?P<best>{_NUM}) @ (?P<best_epoch>\d+)\)"
)


class TrainFormError(ValueError):
    """A form value the trainer cannot take; the message names the field."""


@dataclass(frozen=True)
class TrainRequest:
    """What the form asks for; ``build_args`` turns it into the trainer's command line."""

    dataset: Path
    task: str
    out: Path
    epochs: int = 10
    from_model: str | None = None
    publish: bool = True
    resume: bool = False
    steps_per_epoch: int | None = None
    batch_size: int | None = None  # None: the trainer's per-task default (16 images, 2 crops)
    patch: tuple[int, ...] | None = None
    threads: int | None = None
    name: str | None = None
    version: str = "0.1.0"
    model_id: str | None = None
    device: str = "auto"


def build_args(req: TrainRequest) -> list[str]:
    """``-m viewer train ...`` arguments for ``sys.executable`` (flags of viewer/commands/train)."""
    args = ["-m", "viewer", "train", str(req.dataset), "--task", req.task, "--out", str(req.out)]
    args += ["--epochs", str(req.epochs)]
    if req.batch_size:
        args += ["--batch-size", str(req.batch_size)]
    if req.from_model:
        args += ["--from", req.from_model]
    if req.steps_per_epoch:
        args += ["--steps-per-epoch", str(req.steps_per_epoch)]
    if req.patch:
        args += ["--patch", *map(str, req.patch)]
    if req.threads:
        args += ["--threads", str(req.threads)]
    if req.device != "auto":
        args += ["--device", req.device]
    if req.model_id:
        args += ["--id", req.model_id]
    if req.name:
        args += ["--name", req.name]
    if req.version:
        args += ["--version", req.version]
    if req.resume:
        args.append("--resume")
    if req.publish:
        args.append("--publish")
    args.append("--progress-json")  # the events this runner reads
    return args


@dataclass(frozen=True)
class EpochProgress:
    """One ``epoch E/N  loss L  METRIC V  (best B @ K)`` line of the trainer."""

    epoch: int
    epochs: int
    loss: float
    metric: str
    value: float
    best: float
    best_epoch: int


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def epoch_from_event(event: dict[str, Any]) -> EpochProgress | None:
    """The progress of a trainer ``epoch`` event, or None for any other event."""
    if event.get("event") != "epoch":
        return None
    try:
        return EpochProgress(
            epoch=int(event["epoch"]),
            epochs=int(event["epochs"]),
            loss=_float(event.get("loss")),
            metric=str(event["metric"]),
            value=_float(event.get("value")),
            best=_float(event.get("best")),
            best_epoch=int(event["best_epoch"]),
        )
    except (KeyError, TypeError, ValueError):  # a malformed event: ignore it
        return None


def parse_epoch_line(line: str) -> EpochProgress | None:
    """The progress an epoch line reports (a JSON ``epoch`` event, or the sentence
    ``epoch E/N  loss L  METRIC V  (best B @ K)`` the trainer prints for people), or None
    for any other line."""
    event = parse_line(line)
    if event is not None:
        return epoch_from_event(event)
    m = _EPOCH.match(line.strip())
    if m is None:
        return None
    try:
        return EpochProgress(
            epoch=int(m["epoch"]),
            epochs=int(m["epochs"]),
            loss=float(m["loss"]),
            metric=m["metric"],
            value=float(m["value"]),
            best=float(m["best"]),
            best_epoch=int(m["best_epoch"]),
        )
    except ValueError:  # a malformed number: treat the line as plain log text
        return None


@dataclass
class RunOutcome:
    """How a training process ended, read from its exit and its events (done, published,
    stopped, error)."""

    exit_code: int
    crashed: bool
    package: Path | None = None
    published: Path | None = None
    best_epoch: int | None = None
    stopped: str | None = None  # "stop file", "terminated", "killed", or the trainer's reason
    error: str = ""
    history: list[EpochProgress] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.crashed and self.package is not None


def child_command(args: list[str], frozen: bool | None = None) -> tuple[str, list[str]]:
    """(program, arguments) for a ``-m viewer ...`` command line.

    In a frozen app (PyInstaller) ``sys.executable`` is RadLens itself, whose entry point is
    the same command line, so the ``-m viewer`` prefix is dropped.
    """
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    if frozen and args[:2] == ["-m", "viewer"]:
        return sys.executable, args[2:]
    return sys.executable, list(args)


def child_environment(extra: dict[str, str] | None = None) -> QProcessEnvironment:
    """This process's environment (RADLENS_DATA_DIR included) with the source tree importable.

    The repository root goes first on PYTHONPATH so ``-m viewer`` finds this very code when
    RadLens runs from a checkout rather than an installed wheel.
    """
    env = QProcessEnvironment()
    for key, value in os.environ.items():
        env.insert(key, value)
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env.insert("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
    env.insert("PYTHONUNBUFFERED", "1")  # lines must arrive as they are printed
    for key, value in (extra or {}).items():
        env.insert(key, value)
    return env


class TrainRunner(QObject):
    """One training child process at a time, reported line by line on the main thread."""

    line_received = Signal(str)
    started_running = Signal()
    epoch_finished = Signal(object)  # EpochProgress
    run_finished = Signal(object)  # RunOutcome

    def __init__(
        self,
        parent: QObject | None = None,
        stop_grace_ms: int = 30_000,
        kill_grace_ms: int = 5_000,
    ) -> None:
        super().__init__(parent)
        self.stop_grace_ms = stop_grace_ms
        self.kill_grace_ms = kill_grace_ms
        self.extra_env: dict[str, str] = {}
        self.process: QProcess | None = None
        self.out_dir: Path | None = None
        self.outcome: RunOutcome | None = None
        self._buffer = b""
        self._lines: list[str] = []
        self._events: list[dict[str, Any]] = []
        self._history: list[EpochProgress] = []
        self._training_started = False
        self._escalation: str | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._escalate)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, args: list[str], out_dir: Path | None = None) -> None:
        """Start ``sys.executable ARGS``; ``out_dir`` is where Stop writes the stop file."""
        if self.running:
            raise RuntimeError("a training run is already going; stop it first")
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.outcome = None
        self._buffer, self._lines, self._events, self._history = b"", [], [], []
        self._training_started = False
        self._escalation = None
        if self.process is not None:
            self.process.deleteLater()
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.setProcessEnvironment(child_environment(self.extra_env))
        proc.readyReadStandardOutput.connect(self._read)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        self.process = proc
        proc.start(*child_command(args))
        self.started_running.emit()

    def stop(self) -> None:
        """Ask the trainer to stop after its current step; escalate if it does not.

        Until the trainer has printed its first line it may still delete a stale stop file
        (it does so before it prints anything), so a stop that early terminates at once:
        there is no epoch to keep yet.
        """
        if not self.running or self._escalation is not None:
            return
        if self._training_started and self.out_dir is not None:
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / STOP_FILE).write_text("stop requested from the viewer\n")
            except OSError as exc:
                self.line_received.emit(f"could not write the stop file ({exc}); terminating")
            else:
                self._escalation = "stop file"
                self._timer.start(self.stop_grace_ms)
                return
        self._terminate()

    def _escalate(self) -> None:
        if not self.running:
            return
        if self._escalation == "stop file":
            self._terminate()
        else:
            self._escalation = "killed"
            self.line_received.emit("the trainer did not exit; killing it")
            assert self.process is not None
            self.process.kill()

    def _terminate(self) -> None:
        self._escalation = "terminated"
        self.line_received.emit("terminating the trainer")
        assert self.process is not None
        self.process.terminate()
        self._timer.start(self.kill_grace_ms)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop and wait (bounded), killing as a last resort; for closing the window."""
        if not self.running:
            return True
        assert self.process is not None
        self.stop()
        if self.process.waitForFinished(timeout_ms):
            return True
        self.process.kill()
        return self.process.waitForFinished(2000)

    def _read(self) -> None:
        assert self.process is not None
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            self._handle(raw.decode("utf-8", errors="replace").rstrip("\r"))

    def _handle(self, line: str) -> None:
        if not line.strip():
            return
        # The trainer removes a stale stop file before it prints anything (event or not).
        self._training_started = True
        event = parse_line(line)
        if event is None:  # a sentence for people: the log shows it
            self._lines.append(line)
            self.line_received.emit(line)
            return
        self._events.append(event)
        progress = epoch_from_event(event)
        if progress is not None:
            self._history.append(progress)
            self.epoch_finished.emit(progress)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._handle(f"could not start {sys.executable}: the trainer did not run")
            self._finished(-1, QProcess.ExitStatus.CrashExit)

    def _finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        if self.outcome is not None:  # FailedToStart and finished can both arrive
            return
        self._timer.stop()
        if self._buffer:
            self._handle(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
        outcome = RunOutcome(
            exit_code=int(exit_code),
            crashed=status == QProcess.ExitStatus.CrashExit,
            history=list(self._history),
            stopped=self._escalation if self._escalation in ("terminated", "killed") else None,
        )
        for event in self._events:
            kind = event["event"]
            if kind == "done" and event.get("package"):
                outcome.package = Path(str(event["package"]))
                outcome.best_epoch = int(event.get("best_epoch") or 0)
            elif kind == "published" and event.get("path"):
                outcome.published = Path(str(event["path"]))
            elif kind == "stopped":
                outcome.stopped = outcome.stopped or str(event.get("why"))
            elif kind == "error":
                outcome.error = str(event.get("message", ""))
        if not outcome.error and (outcome.crashed or exit_code != 0):
            tail = [ln for ln in self._lines[-3:] if ln.strip()]
            outcome.error = tail[-1] if tail else f"the trainer exited with code {exit_code}"
        self.outcome = outcome
        self.run_finished.emit(outcome)
