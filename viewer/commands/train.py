"""`radlens train`: turn an exported dataset into a model package (the training station)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="train or fine-tune a model on exported labels (offline)",
        description=(
            "Train a segmentation, detection or classification model on a dataset folder "
            "(RadLens exports: CASE/image.nii.gz + mask.nii.gz..., or imagesTr/ + labelsTr/). "
            "Create OUT/STOP or press Ctrl-C to stop early; the best epoch is kept."
        ),
    )
    p.add_argument("dataset", type=Path, help="dataset folder")
    p.add_argument("--task", required=True, choices=("segmentation", "detection", "classification"))
    p.add_argument("--out", type=Path, required=True, help="model package folder to write")
    p.add_argument("--from", dest="from_model", help="fine-tune this model (id or folder)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of patients held out")
    p.add_argument(
        "--steps-per-epoch", type=int, default=None, help="default: each case about once"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images (classification, default 16) or crops (3D tasks, default 2) per step",
    )
    p.add_argument(
        "--lr", type=float, default=None, help="default 1e-3, or 1e-4 with --from (fine-tuning)"
    )
    p.add_argument("--patch", type=int, nargs="+", help="new models: patch size (x y [z])")
    p.add_argument("--id", dest="model_id", help="model id (default: the --out folder name)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--name", help="model name shown in the viewer")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--publish", action="store_true", help="install into the user model folder")
    return p


def run(args: argparse.Namespace) -> int:
    from inference.card import CardError
    from inference.training.dataset import DatasetError
    from inference.training.package import PackageError
    from inference.training.publish import PublishError, publish
    from inference.training.train import TrainingError, TrainOptions, train
    from inference.weights import WeightsError

    opts = TrainOptions(
        dataset=args.dataset,
        task=args.task,
        out=args.out,
        from_model=args.from_model,
        epochs=args.epochs,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        val_fraction=args.val_fraction,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        lr=args.lr,
        patch_size=tuple(args.patch) if args.patch else None,
        model_id=args.model_id,
        version=args.version,
        name=args.name,
        threads=args.threads,
        progress=lambda line: print(line, flush=True),
    )
    try:
        result = train(opts)
        print(f"model package: {result.package} (best epoch {result.best_epoch})")
        if args.publish:
            print(f"published to {publish(result.package)}")
    except (
        DatasetError,
        TrainingError,
        PackageError,
        PublishError,
        CardError,
        WeightsError,
    ) as exc:
        print(f"radlens train: error: {exc}", file=sys.stderr)
        return 2
    return 0
