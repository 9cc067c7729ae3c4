"""`radlens eval`: score a model package on a labelled dataset and write a readable report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="evaluate a model on a labelled dataset (report.html + metrics.csv)",
        description="Run MODEL (id or package folder) through the engine on every case of DATASET.",
    )
    p.add_argument("model", help="model id or package folder")
    p.add_argument("dataset", type=Path, help="dataset folder (exports or imagesTr/labelsTr)")
    p.add_argument("--out", type=Path, required=True, help="report folder to write")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument(
        "--write-card", action="store_true", help="store the summary in the model's model.json"
    )
    return p


def run(args: argparse.Namespace) -> int:
    from inference.card import CardError
    from inference.engine import EngineError
    from inference.training.dataset import DatasetError
    from inference.training.evaluate import evaluate
    from inference.training.package import PackageError, resolve_model
    from inference.training.report import write_card_metrics, write_report
    from inference.weights import WeightsError

    try:
        res = evaluate(
            args.model,
            args.dataset,
            device=args.device,
            threads=args.threads,
            progress=lambda line: print(line, flush=True),
        )
        page = write_report(res, args.out)
        for k, v in res.summary.items():
            print(f"{k:>28}: {v:.4f}" if isinstance(v, float) else f"{k:>28}: {v}")
        print(f"report: {page}")
        if args.write_card:
            card = write_card_metrics(
                resolve_model(args.model), res, f"radlens eval on {args.dataset}"
            )
            print(f"metrics written to {card}")
    except (DatasetError, PackageError, CardError, WeightsError, EngineError) as exc:
        print(f"radlens eval: error: {exc}", file=sys.stderr)
        return 2
    return 0
