"""`radlens models [--json] [--dir DIR]`: list installed model packages and the refused ones."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="list installed model packages")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument(
        "--dir",
        action="append",
        type=Path,
        default=[],
        help="also look in this folder (repeatable)",
    )
    return p


def _metrics(metrics: dict) -> str:
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()]
    return ", ".join(parts[:6]) or "-"


def run(args: argparse.Namespace) -> int:
    from inference import registry

    cards = registry.list_models(args.dir)
    problems = list(registry.problems)
    if args.json:
        data = {
            "models": [{**c.to_json(), "path": str(c.path), "source": c.source} for c in cards],
            "problems": [{"path": str(p), "problem": why} for p, why in problems],
        }
        print(json.dumps(data, indent=2))
        return 0
    print(f"{len(cards)} model package(s)")
    for c in cards:
        print(
            f"  {c.id}@{c.version}  {c.task}  {c.spatial_dims}D  {'/'.join(c.modalities)}"
            f"  {c.body_part}  {c.name}"
        )
        print(f"      metrics: {_metrics(c.metrics)}")
        print(f"      {c.path}")
    for path, why in problems:
        print(f"  refused {path}: {why}")
    return 0
