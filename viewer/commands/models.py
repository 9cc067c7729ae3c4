"""`radlens models [--json] [--dir DIR]` lists model packages; `radlens models publish DIR` installs
one; `radlens models import PATH [--id ID]` imports an nnU-Net v2 model folder, a MONAI bundle or
an ONNX model beside its model.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radlens_core.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="list installed model packages, or publish one (radlens models publish DIR)",
        description=(
            "Without an action: list the installed model packages and the refused ones. "
            "`publish MODELDIR` installs a trained package into the user model folder."
        ),
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument(
        "--dir",
        action="append",
        type=Path,
        default=[],
        help="also look in this folder (repeatable)",
    )
    actions = p.add_subparsers(dest="models_action", metavar="ACTION")
    pub = actions.add_parser(
        "publish",
        help="install a model package into the user model folder",
        description=(
            "Copy a model package (model.json + weights, checked against their SHA-256) into "
            "the user model folder, where the viewer finds it. The same id and version with "
            "the same weights is a no-op; another version is refused unless --replace."
        ),
    )
    pub.add_argument("model_dir", type=Path, metavar="MODELDIR", help="model package folder")
    pub.add_argument(
        "--replace", action="store_true", help="replace an installed package with the same id"
    )
    imp = actions.add_parser(
        "import",
        help="import an nnU-Net v2 trained-model folder, a MONAI bundle or an ONNX model",
        description=(
            "Validate a model made elsewhere and write it as a RadLens package into the user "
            "model folder (weights converted to safetensors, so nothing is unpickled when it "
            "runs). PATH is an nnU-Net v2 trained-model folder (dataset.json, plans.json and "
            "fold_N/checkpoint_final.pth), a MONAI bundle folder (configs/metadata.json) or a "
            "folder with an ONNX graph and its model.json (network format 'onnx')."
        ),
    )
    imp.add_argument("path", type=Path, metavar="PATH", help="the model folder to import")
    imp.add_argument("--id", dest="model_id", default=None, help="id of the new model package")
    return p


class ImportRefused(UserError):
    """A folder that is not a model RadLens can import; the message says what is supported."""


def nnunet_folder(path: Path) -> bool:
    """Whether ``path`` looks like an nnU-Net v2 trained-model folder."""
    return (path / "dataset.json").is_file() and (path / "plans.json").is_file()


def bundle_folder(path: Path) -> bool:
    return not (path / "model.json").exists() and (path / "configs" / "metadata.json").is_file()


def import_model(path: Path, model_id: str | None = None, progress=None) -> str:
    """Import ``path`` into the user model folder; returns the new model id. UserError (a
    sentence) when it is not a supported model or is refused."""
    from radlens_core.paths import user_models_dir

    if nnunet_folder(path):
        from inference.card import ModelCard
        from inference.nnunet import import_nnunet_folder

        pkg = import_nnunet_folder(path, user_models_dir(), model_id=model_id, progress=progress)
        return ModelCard.load(pkg).id  # the card the registry will read, accepted
    if bundle_folder(path):
        if model_id is not None:
            raise ImportRefused("--id is not supported for MONAI bundles: their id is their name")
        from inference.card import ModelCard
        from inference.training.publish import PublishError

        try:
            return ModelCard.load(_publish_bundle(path, replace=False)).id
        except PublishError as exc:
            raise ImportRefused(str(exc)) from exc
    if onnx_folder(path):
        if model_id is not None:
            raise ImportRefused(
                "--id is not supported for ONNX packages: their id is in model.json"
            )
        from inference.card import ModelCard
        from inference.training.publish import PublishError, publish

        try:  # the graph is checked against its card before it is installed
            return ModelCard.load(publish(path)).id
        except PublishError as exc:
            raise ImportRefused(str(exc)) from exc
    raise ImportRefused(
        f"{path}: not a model RadLens can import; supported are an nnU-Net v2 trained-model"
        " folder (dataset.json, plans.json and fold_N/checkpoint_final.pth), a MONAI bundle"
        " folder (configs/metadata.json) and an ONNX model beside a model.json card whose"
        " network format is 'onnx'"
    )


def onnx_folder(path: Path) -> bool:
    """Whether ``path`` holds a model.json naming an ONNX graph (read capped, as data)."""
    from inference.card_data import CardError, read_json_capped

    if not (path / "model.json").is_file():
        return False
    try:
        data = read_json_capped(path / "model.json")
    except CardError:
        return False
    net = data.get("network") if isinstance(data, dict) else None
    return isinstance(net, dict) and net.get("format") == "onnx"


def _import(args: argparse.Namespace) -> int:
    from inference.card import CardError
    from inference.weights import WeightsError

    try:
        mid = import_model(args.path, args.model_id)
    except (CardError, WeightsError, UserError) as exc:
        print(f"radlens models import: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"radlens models import: error: {args.path}: {exc}", file=sys.stderr)
        return 2
    print(mid)
    return 0


def _metrics(metrics: dict) -> str:
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()]
    return ", ".join(parts[:6]) or "-"


def _publish_bundle(bundle: Path, replace: bool) -> Path:
    """A MONAI bundle folder is converted to a package (safetensors weights, model.json with
    their SHA-256) in a temporary folder, then published like any package."""
    import tempfile

    from inference.card import CardError
    from inference.training.publish import PublishError, publish
    from inference.weights import WeightsError, bundle_to_package

    with tempfile.TemporaryDirectory(prefix="radlens-bundle-") as tmp:
        try:
            package = bundle_to_package(bundle, Path(tmp) / bundle.name)
        except (CardError, WeightsError) as exc:
            raise PublishError(f"{bundle}: cannot publish: {exc}") from exc
        return publish(package.path, replace=replace)


def _publish(args: argparse.Namespace) -> int:
    from inference.card import CardError
    from inference.training.publish import PublishError, publish
    from inference.weights import WeightsError

    src: Path = args.model_dir
    is_bundle = bundle_folder(src)
    try:
        dest = (
            _publish_bundle(src, args.replace) if is_bundle else publish(src, replace=args.replace)
        )
    except (PublishError, CardError, WeightsError, UserError) as exc:
        print(f"radlens models publish: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the user model folder is not writable
        print(f"radlens models publish: error: {args.model_dir}: {exc}", file=sys.stderr)
        return 2
    print(f"published to {dest}")
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "models_action", None) == "publish":
        return _publish(args)
    if getattr(args, "models_action", None) == "import":
        return _import(args)
    from inference import registry

    # Usable = the card reads AND the files match their SHA-256; the rest are refused.
    scan = registry.usable_models(args.dir)
    cards, problems = scan.cards, scan.problems
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
