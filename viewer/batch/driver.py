"""The batch loop: plan every series in the manifest, send the ones still to do to the
runner, write each result into DIR/<key>/ and record it; a progress line and summary.csv."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from radlens_core.files import atomic_write_bytes
from viewer.batch.items import WorkItem
from viewer.batch.manifest import DONE, FAILED, PENDING, SKIPPED, Manifest, Outcome
from viewer.batch.work import ItemResult


class Runner(Protocol):
    def run(self, items: Iterable[WorkItem]) -> Iterable[ItemResult]: ...


class ProgressLine:
    """``done 12 · failed 1 · skipped 3 · 40/200 · 5.1 series/min · ETA 31 min`` on stderr,
    redrawn in place on a terminal, one line per series otherwise (logs)."""

    def __init__(self, total: int, counts: dict[str, int], stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.counts = dict(counts)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self.this_run = 0
        self.last = ""

    def update(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        self.counts[PENDING] = max(0, self.counts.get(PENDING, 0) - 1)
        self.this_run += 1
        self.draw()

    def text(self) -> str:
        c = self.counts
        finished = c.get(DONE, 0) + c.get(FAILED, 0) + c.get(SKIPPED, 0)
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        rate = self.this_run / elapsed * 3600.0
        left = self.total - finished
        eta = _duration(left / rate * 3600.0) if self.this_run and rate > 0 else "?"
        return (
            f"done {c.get(DONE, 0)} · failed {c.get(FAILED, 0)} · skipped {c.get(SKIPPED, 0)}"
            f" · {finished}/{self.total} · {rate:.0f} series/h · ETA {eta if left else '0 s'}"
        )

    def draw(self) -> None:
        line = self.text()
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self.last)))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last = line

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class BatchReport:
    counts: dict[str, int]
    ran: int
    seconds: float


def write_result(out_dir: Path, result: ItemResult) -> None:
    """The series' files into DIR/<key>/, each atomically, findings.json last (its presence
    means the rest is there); a redone series replaces its old files, never adds beside them."""
    if not result.files:
        return
    folder = out_dir / result.outcome.key
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in result.files:
        atomic_write_bytes(folder / name, data)


def run_batch(
    items: list[WorkItem],
    out_dir: Path,
    manifest: Manifest,
    runner: Runner,
    retry_failed: bool = False,
    progress: ProgressLine | None = None,
) -> BatchReport:
    """Analyse the items the manifest has not finished; record each outcome as it lands.

    Done and skipped series are never redone; failed ones only with ``retry_failed``. A
    KeyboardInterrupt goes on up (the runner's ``__exit__`` stops its workers); what
    finished is recorded, the rest stays pending for the next run."""
    manifest.plan((i.key, i.source, i.description) for i in items)
    todo_keys = set(manifest.to_do((i.key for i in items), retry_failed))
    todo = [i for i in items if i.key in todo_keys]
    t0 = time.monotonic()
    ran = 0
    try:
        for item in todo:  # refused by the scan: recorded without a worker
            if item.skip:
                _land(out_dir, manifest, ItemResult(Outcome(item.key, SKIPPED, reason=item.skip)))
                ran += 1
                if progress is not None:
                    progress.update(SKIPPED)
        for result in runner.run(i for i in todo if not i.skip):
            _land(out_dir, manifest, result)
            ran += 1
            if progress is not None:
                progress.update(result.outcome.status)
    finally:  # a Ctrl-C goes on up (the runner stops its workers) after the summary
        if progress is not None:
            progress.close()
        manifest.write_summary()
    return BatchReport(manifest.counts(), ran, time.monotonic() - t0)


def _land(out_dir: Path, manifest: Manifest, result: ItemResult) -> None:
    write_result(out_dir, result)
    manifest.record(result.outcome)
