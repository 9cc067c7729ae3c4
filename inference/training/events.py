"""Machine-readable training progress: one JSON-ready dict per event.

``radlens train --progress-json`` prints each event as one JSON object on its own line
(beside the sentences it prints for people); ``viewer.ui.train_runner`` reads them. Every
event has ``"event"`` (its kind) and the fields below; numbers are plain floats/ints, never
NaN (a missing value is ``null``):

- ``start``: task, train_cases, val_cases, device, steps (per epoch), batch_size, epochs,
  metric (the one that picks the best epoch), resumed_after (epoch, 0 for a new run)
- ``step``: epoch, step, steps, loss (at most one a second, and the last of each epoch)
- ``epoch``: epoch, epochs, step (global optimiser steps so far), loss, metric, value, best,
  best_epoch, seconds, eta_s (seconds left at the mean epoch time so far)
- ``checkpoint``: epoch, package, best (the package now holds this epoch)
- ``stopped``: why ("stop file", "cancelled", "interrupted"), epoch
- ``done``: package, best_epoch, stopped (null or why); ``published``: path;
  ``error``: message (written by the command, ``viewer/commands/train.py``)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EventSink = Callable[[dict[str, Any]], None]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


class Event:
    """Constructors of the event dicts (one place that spells each kind's fields)."""

    @staticmethod
    def start(
        task: str,
        train_cases: int,
        val_cases: int,
        device: str,
        steps: int,
        batch_size: int,
        epochs: int,
        metric: str,
        resumed_after: int,
    ) -> dict[str, Any]:
        return {
            "event": "start",
            "task": task,
            "train_cases": train_cases,
            "val_cases": val_cases,
            "device": device,
            "steps": steps,
            "batch_size": batch_size,
            "epochs": epochs,
            "metric": metric,
            "resumed_after": resumed_after,
        }

    @staticmethod
    def step(epoch: int, step: int, steps: int, loss: float) -> dict[str, Any]:
        return {"event": "step", "epoch": epoch, "step": step, "steps": steps, "loss": _num(loss)}

    @staticmethod
    def checkpoint(epoch: int, package: Path, best: bool) -> dict[str, Any]:
        return {"event": "checkpoint", "epoch": epoch, "package": str(package), "best": best}

    @staticmethod
    def stopped(why: str, epoch: int) -> dict[str, Any]:
        return {"event": "stopped", "why": why, "epoch": epoch}

    @staticmethod
    def done(package: Path, best_epoch: int, stopped: str | None) -> dict[str, Any]:
        return {
            "event": "done",
            "package": str(package),
            "best_epoch": best_epoch,
            "stopped": stopped,
        }

    @staticmethod
    def published(path: Path) -> dict[str, Any]:
        return {"event": "published", "path": str(path)}

    @staticmethod
    def error(message: str) -> dict[str, Any]:
        return {"event": "error", "message": message}


def epoch_event(
    epoch: int,
    epochs: int,
    step: int,
    loss: float,
    metric: str,
    value: float,
    best: float | None,
    best_epoch: int,
    epoch_seconds: Sequence[float],
) -> dict[str, Any]:
    """The ``epoch`` event; the ETA is the mean time of this run's epochs times those left."""
    mean = sum(epoch_seconds) / max(len(epoch_seconds), 1)
    return {
        "event": "epoch",
        "epoch": epoch,
        "epochs": epochs,
        "step": step,
        "loss": _num(loss),
        "metric": metric,
        "value": _num(value),
        "best": _num(best),
        "best_epoch": best_epoch,
        "seconds": round(epoch_seconds[-1], 3) if epoch_seconds else None,
        "eta_s": round(mean * max(epochs - epoch, 0), 1),
    }


class StepThrottle:
    """Lets a step event through at most every ``interval`` seconds (or when forced)."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval, self.clock = interval, clock
        self.last = -math.inf

    def due(self, force: bool = False) -> bool:
        now = self.clock()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False


def json_line(event: dict[str, Any]) -> str:
    """One event as one line of JSON (no NaN: the constructors already map it to null)."""
    return json.dumps(event, allow_nan=False, separators=(",", ":"))


def parse_line(line: str) -> dict[str, Any] | None:
    """The event on a line of ``--progress-json`` output, or None for any other line."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("event"), str) else None
