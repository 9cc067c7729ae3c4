"""The batch manifest: one SQLite row per series in the output folder, so a run resumes."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from radlens_core.errors import UserError
from radlens_core.files import atomic_write_text

MANIFEST_NAME = "manifest.sqlite"
SUMMARY_NAME = "summary.csv"

#: A series' status in the manifest. "pending" rows are planned (or were interrupted).
PENDING, DONE, FAILED, SKIPPED = "pending", "done", "failed", "skipped"
STATUSES = (PENDING, DONE, FAILED, SKIPPED)

SUMMARY_COLUMNS = (
    "key",
    "source",
    "description",
    "status",
    "model",
    "reason",
    "attempts",
    "load_s",
    "analyse_s",
    "total_s",
    "finished_utc",
    "sent",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'skipped')),
    model TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    load_s REAL,
    analyse_s REAL,
    total_s REAL,
    finished_utc TEXT NOT NULL DEFAULT '',
    -- --send: '' (not sent), 'sent to NODE at <utc>', or 'not sent: <reason>'
    sent TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS run (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ManifestError(UserError):
    """The manifest cannot be opened or belongs to another batch."""


@dataclass(frozen=True)
class Row:
    key: str
    source: str
    description: str
    status: str
    model: str
    reason: str
    attempts: int
    load_s: float | None
    analyse_s: float | None
    total_s: float | None
    finished_utc: str
    sent: str


@dataclass(frozen=True)
class Outcome:
    """What became of one series: status done/failed/skipped, the model, a one-sentence
    reason (failed/skipped), timings in seconds."""

    key: str
    status: str
    model: str = ""
    reason: str = ""
    load_s: float | None = None
    analyse_s: float | None = None
    total_s: float | None = None


class Manifest:
    """``DIR/manifest.sqlite`` (WAL): written by the batch driver only, one row per series."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / MANIFEST_NAME
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ManifestError(f"{self.path}: cannot open the batch manifest ({exc})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the run's identity: a manifest answers for one source --------------------------------
    def bind_source(self, source: str) -> None:
        """Remember which SOURCE this folder's batch is for; refuse another one."""
        got = self.db.execute("SELECT value FROM run WHERE name = 'source'").fetchone()
        if got is None:
            self.db.execute("INSERT INTO run VALUES ('source', ?)", (source,))
        elif got[0] != source:
            raise ManifestError(
                f"{self.path.parent}: holds the batch of {got[0]!r}, not {source!r};"
                " use another --out folder"
            )

    # -- rows ----------------------------------------------------------------------------------
    def plan(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Add (key, source, description) rows as pending; rows already there are kept."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR IGNORE INTO series (key, source, description, status)"
                " VALUES (?, ?, ?, 'pending')",
                list(items),
            )

    def record(self, outcome: Outcome) -> None:
        self.record_many([outcome])

    def record_many(self, outcomes: Iterable[Outcome]) -> None:
        """The outcomes' rows in one transaction (one commit for the results that landed
        together, not one per row)."""
        finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rows = []
        for o in outcomes:
            if o.status not in (DONE, FAILED, SKIPPED):
                raise ValueError(f"not a final status: {o.status!r}")
            rows.append(
                (o.status, o.model, o.reason, o.load_s, o.analyse_s, o.total_s, finished, o.key)
            )
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "UPDATE series SET status = ?, model = ?, reason = ?, attempts = attempts + 1,"
                " load_s = ?, analyse_s = ?, total_s = ?, finished_utc = ? WHERE key = ?",
                rows,
            )

    def record_sent(self, key: str, text: str) -> None:
        self.db.execute("UPDATE series SET sent = ? WHERE key = ?", (text, key))

    def to_send(self) -> list[str]:
        """Done series whose results have not reached the --send node yet."""
        cur = self.db.execute(
            "SELECT key FROM series WHERE status = 'done' AND sent NOT LIKE 'sent to %'"
            " ORDER BY key"
        )
        return [r[0] for r in cur.fetchall()]

    def rows(self) -> list[Row]:
        cur = self.db.execute(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM series ORDER BY key")
        return [Row(*r) for r in cur.fetchall()]

    def status_of(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, status FROM series").fetchall())

    def counts(self) -> dict[str, int]:
        got = dict(
            self.db.execute("SELECT status, COUNT(*) FROM series GROUP BY status").fetchall()
        )
        return {s: int(got.get(s, 0)) for s in STATUSES}

    def to_do(self, keys: Iterable[str], retry_failed: bool) -> list[str]:
        """The keys still to analyse: pending ones, and failed ones when asked to retry."""
        status = self.status_of()
        wanted = {PENDING, FAILED} if retry_failed else {PENDING}
        return [k for k in keys if status.get(k, PENDING) in wanted]

    def write_summary(self, path: Path | None = None) -> Path:
        """``summary.csv``: every series of the manifest, one line each (atomic)."""
        path = path or self.path.parent / SUMMARY_NAME
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        for row in self.rows():
            writer.writerow(["" if v is None else v for v in row.__dict__.values()])
        atomic_write_text(path, buf.getvalue())
        return path
