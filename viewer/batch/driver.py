"""The batch loop: plan every series in the manifest, send the ones still to do to the
runner, write each result into DIR/<key>/ and record it; a progress line and summary.csv."""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from radlens_core.files import atomic_write_bytes, fsync_dir
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

    def planned(self, n: int) -> None:
        """``n`` more series found (the scan goes on while the work does)."""
        self.total += n
        self.counts[PENDING] = self.counts.get(PENDING, 0) + n

    def update(self, status: str, before: str | None = None) -> None:
        """A series landed with ``status``; ``before``: its status landed earlier this run
        (a series redone with more files is counted once)."""
        self.counts[status] = self.counts.get(status, 0) + 1
        if before is None:
            self.counts[PENDING] = max(0, self.counts.get(PENDING, 0) - 1)
            self.this_run += 1
        else:
            self.counts[before] = max(0, self.counts.get(before, 0) - 1)
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


#: Threads writing the series' files: their fsyncs wait on the disk, not on the interpreter,
#: so the driver goes on handing out work and receiving results meanwhile.
WRITER_THREADS = 2


def _write_file(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a temporary file (fsync, then ``os.replace``): the file
    is whole or absent, never torn. The folder's fsync is the caller's, once per series."""
    atomic_write_bytes(path, data, sync_dir=False)


def write_result(out_dir: Path, result: ItemResult) -> None:
    """The series' files into DIR/<key>/, each atomically, findings.json last (its presence
    means the rest is there); a redone series replaces its old files, never adds beside them.
    One fsync per file and one of the folder per series (not one per file): durable before
    the manifest records the series."""
    if not result.files:
        return
    folder = out_dir / result.outcome.key
    new = not folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in result.files:
        _write_file(folder / name, data)
    fsync_dir(folder)
    if new:
        fsync_dir(out_dir)


class Lander:
    """Lands results: their files written on writer threads, then their manifest rows
    recorded (on the driver's thread, which owns the SQLite connection), those ready
    together in one transaction. A series whose files cannot be written is recorded failed
    with the reason; the batch goes on."""

    def __init__(self, out_dir: Path, manifest: Manifest, progress: ProgressLine | None) -> None:
        self.out_dir = out_dir
        self.manifest = manifest
        self.progress = progress
        self.pool = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="batch-write")
        self.pending: deque[tuple[Future[None], ItemResult]] = deque()
        self.landed: dict[str, str] = {}  # key -> status recorded this run

    def land(self, result: ItemResult) -> None:
        self.pending.append((self.pool.submit(write_result, self.out_dir, result), result))
        self.record(wait=False)

    def record(self, wait: bool) -> None:
        ready: list[Outcome] = []
        while self.pending and (wait or self.pending[0][0].done()):
            future, result = self.pending.popleft()
            outcome = result.outcome
            try:
                future.result()
            except OSError as exc:
                where = self.out_dir / outcome.key
                outcome = Outcome(
                    outcome.key,
                    FAILED,
                    outcome.model,
                    f"cannot write its results into {where}: {exc}",
                )
            ready.append(outcome)
        if not ready:
            return
        self.manifest.record_many(ready)
        for outcome in ready:
            before = self.landed.get(outcome.key)
            self.landed[outcome.key] = outcome.status
            if self.progress is not None:
                self.progress.update(outcome.status, before)

    def close(self) -> None:
        try:
            self.record(wait=True)
        finally:
            self.pool.shutdown(wait=True)


def run_batch(
    items: Iterable[WorkItem],
    out_dir: Path,
    manifest: Manifest,
    runner: Runner,
    retry_failed: bool = False,
    progress: ProgressLine | None = None,
) -> BatchReport:
    """Analyse the items the manifest has not finished; record each outcome as it lands.

    ``items`` may still be coming (a folder being scanned): each is planned in the manifest
    and handed to the runner as it arrives. Done and skipped series are never redone; failed
    ones only with ``retry_failed``. An item handed out again (a newer generation: the scan
    found more of its files) replaces the older one's result. A KeyboardInterrupt goes on up
    (the runner's ``__exit__`` stops its workers); what finished is recorded, the rest stays
    pending for the next run."""
    at_start = manifest.status_of()  # what earlier runs finished; this run's rows change it
    wanted = {PENDING, FAILED} if retry_failed else {PENDING}
    latest: dict[str, int] = {}  # key -> newest generation handed to the runner
    lander = Lander(out_dir, manifest, progress)
    t0 = time.monotonic()

    def todo() -> Iterator[WorkItem]:
        for item in items:
            if item.key not in at_start and item.key not in latest:
                manifest.plan([(item.key, item.source, item.description)])
                if progress is not None:
                    progress.planned(1)
            if at_start.get(item.key, PENDING) not in wanted:
                continue
            latest[item.key] = item.generation
            if item.skip:  # refused by the scan: recorded without a worker
                lander.land(ItemResult(Outcome(item.key, SKIPPED, reason=item.skip)))
                continue
            yield item

    try:
        for result in runner.run(todo()):
            if result.generation < latest.get(result.outcome.key, 0):
                continue  # an older snapshot of a series handed out again
            lander.land(result)
    finally:  # a Ctrl-C goes on up (the runner stops its workers) after the summary
        lander.close()
        if progress is not None:
            progress.close()
        manifest.write_summary()
    return BatchReport(manifest.counts(), len(lander.landed), time.monotonic() - t0)
