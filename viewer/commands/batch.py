"""`radlens batch SOURCE --out DIR`: analyse every series of a folder tree or a PACS query,
each with the model meant for it, resumably (DIR/manifest.sqlite), locally or on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radlens_core.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="analyse every series of a folder tree or a PACS query (resumable; local or Ray)",
        description="Analyse every series of SOURCE with the model its card admits; results go"
        " to OUT/<series key>/ (findings.json, mask.nii.gz), every series is listed in"
        " OUT/summary.csv. Run it again to resume: finished series are not redone.",
    )
    p.add_argument(
        "source",
        help="a folder tree, or a PACS query such as 'pacs:NODE?Modality=CT&StudyDate=20260101-20260131'",
    )
    p.add_argument("--out", required=True, type=Path, help="folder for the results and manifest")
    p.add_argument(
        "--model",
        default="auto",
        help="model id (or id@version) for every series it admits; default 'auto': each"
        " series gets the best model meant for it",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default 1), or Ray actors (default: one per GPU of the"
        " cluster, else one per CPU / --threads)",
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on the Ray cluster at ADDRESS (e.g. ray://head:10001), or 'auto' to start"
        " a local Ray for this run",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker (default: the cores shared among the local workers;"
        " 1 per Ray actor, which asks Ray for that many CPUs)",
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="analyse again the series that failed before"
    )
    p.add_argument(
        "--send",
        metavar="NODE",
        help="send each finished series' results (DICOM-SEG) to this PACS node",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def run(args: argparse.Namespace) -> int:
    from viewer.batch.driver import ProgressLine, run_batch
    from viewer.batch.manifest import DONE, FAILED, PENDING, SKIPPED, Manifest
    from viewer.batch.pacs_source import PacsSource
    from viewer.batch.runners import LocalPool, RayWorkers, threads_per_worker
    from viewer.batch.sources import open_source, stream_of
    from viewer.batch.work import Options

    out: Path = args.out
    try:
        if args.workers is not None and args.workers < 1:
            raise UserError("--workers must be at least 1")
        if args.send:
            from viewer.batch.sending import Sender

            Sender(args.send)  # an unknown node is refused before any work
        source = open_source(args.source)
        out.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(out)
    except (UserError, OSError) as exc:
        print(f"radlens batch: {exc}", file=sys.stderr)
        return 2
    with manifest:
        try:
            manifest.bind_source(source.identity)
            workers = args.workers or 1
            if isinstance(source, PacsSource):
                source.check_workers(workers, bool(args.ray))
            # Locally the cores are shared out; on Ray each actor asks for its threads' CPUs
            # and Ray packs the actors onto the cluster's nodes.
            threads = args.threads or (1 if args.ray else threads_per_worker(workers))
            options = Options(args.model, args.device, threads)
            runner = (
                RayWorkers(args.ray, args.workers, options)
                if args.ray
                else LocalPool(workers, options)
            )
            counts = manifest.counts()
            # The workers start (and load their models) while the folder is being scanned;
            # the scan hands each series out as it finds it.
            with runner:
                print(f"radlens batch: {runner.describe()}", file=sys.stderr)
                planned = len(manifest.status_of())
                bar = None if args.quiet else ProgressLine(planned, counts)
                items = stream_of(source)
                try:
                    report = run_batch(items, out, manifest, runner, args.retry_failed, bar)
                finally:
                    items.close()
                for note in runner.placement_notes():
                    print(f"radlens batch: {note}", file=sys.stderr)
            for note in items.notes[:20]:
                print(f"radlens batch: skipped file {note}", file=sys.stderr)
            sent = unsent = 0
            if args.send:
                from viewer.batch.sending import send_finished

                sent, unsent = send_finished(args.send, out, manifest)
        except KeyboardInterrupt:
            c = manifest.counts()
            print(
                f"\nradlens batch: stopped; {c[DONE]} done, {c[FAILED]} failed, {c[SKIPPED]}"
                f" skipped, {c[PENDING]} to do. Run the same command again to resume.",
                file=sys.stderr,
            )
            return 130
        except (UserError, OSError) as exc:
            print(f"radlens batch: {exc}", file=sys.stderr)
            return 2
    c = report.counts
    print(
        f"{c[DONE]} done, {c[FAILED]} failed, {c[SKIPPED]} skipped ({report.ran} this run,"
        f" {report.seconds:.0f} s); see {out / 'summary.csv'}"
    )
    if args.send:
        print(f"sent {sent} series' DICOM-SEG to {args.send}; {unsent} not sent (see summary.csv)")
    if c[FAILED]:
        print("run again with --retry-failed to retry the failed series")
    return 1 if c[FAILED] or unsent else 0
