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
    p.add_argument(
        "--card",
        type=Path,
        help="new models: train from scratch with this model.json's network, spacing, "
        "preprocessing, labels and thresholds (a card file or a package folder)",
    )
    p.add_argument(
        "--crop", type=int, nargs="+", help="3D tasks: training crop (x y z), default the patch"
    )
    p.add_argument("--publish", action="store_true", help="install into the user model folder")
    p.add_argument(
        "--progress-json",
        action="store_true",
        help="also print one JSON object per line for programs (start, step, epoch, "
        "checkpoint, stopped, done, published, error; see inference/training/events.py)",
    )
    return p


def _template(path: Path | None) -> dict | None:
    """The card a new model starts from (``--card``): a model.json or a package folder."""
    import json

    if path is None:
        return None
    from inference.training.dataset import DatasetError

    file = path / "model.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{file}: cannot read the --card model card ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{file}: the --card model card is not a JSON object")
    return data


def run(args: argparse.Namespace) -> int:
    from inference.card import CardError
    from inference.training.dataset import DatasetError
    from inference.training.events import Event, json_line
    from inference.training.package import PackageError
    from inference.training.publish import PublishError, publish
    from inference.training.train import TrainingError, TrainOptions, train
    from inference.weights import WeightsError

    def emit(event: dict) -> None:
        if args.progress_json:
            print(json_line(event), flush=True)

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
        crop_size=tuple(args.crop) if args.crop else None,
        progress=lambda line: print(line, flush=True),
        events=emit,
    )
    try:
        opts.card = _template(args.card)
        result = train(opts)
        print(f"model package: {result.package} (best epoch {result.best_epoch})")
        emit(Event.done(result.package, result.best_epoch, result.stopped))
        if args.publish:
            published = publish(result.package)
            print(f"published to {published}")
            emit(Event.published(published))
    except (
        DatasetError,
        TrainingError,
        PackageError,
        PublishError,
        CardError,
        WeightsError,
    ) as exc:
        print(f"radlens train: error: {exc}", file=sys.stderr)
        emit(Event.error(str(exc)))
        return 2
    return 0
