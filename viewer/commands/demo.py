"""`radlens demo --out DIR`: write the synthetic demo chest CT as a DICOM series."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from viewer.study.errors import StudyError


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="write the synthetic demo chest CT as DICOM files")
    p.add_argument("--out", required=True, type=Path, help="folder to write (created if missing)")
    p.add_argument("--seed", type=int, default=2026, help="phantom seed (default 2026)")
    return p


def run(args: argparse.Namespace) -> int:
    from viewer.study.demo import write_demo_series

    try:
        paths = write_demo_series(args.out, seed=args.seed)
    except (StudyError, OSError) as exc:
        print(f"radlens demo: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} DICOM files to {args.out}")
    return 0
