"""nnU-Net checkpoints (``fold_N/checkpoint_final.pth``) read without running their pickle.

nnU-Net's own predictor unpickles the whole checkpoint (weights-only mode switched off), which
runs whatever a pickle asks for. Here ``torch.load(weights_only=True)`` rebuilds only tensors, plain containers and
the few numpy scalar/dtype types nnU-Net's training log contains (:data:`SAFE_GLOBALS`); any
other global refuses the file with its name. Only the network weights and three plain facts
(trainer name, configuration, mirroring axes) are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.nnunet.errors import NnunetError

MAX_CHECKPOINT_BYTES = 16 * 1024**3


def safe_globals() -> list[Any]:
    """numpy scalar and dtype types (nnU-Net logs numpy floats); nothing that can run code."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtypes = [
        np.dtypes.Float64DType,
        np.dtypes.Float32DType,
        np.dtypes.Float16DType,
        np.dtypes.Int64DType,
        np.dtypes.Int32DType,
        np.dtypes.BoolDType,
    ]
    # checkpoints written under numpy 1.x (TotalSegmentator's, for one) name the scalar
    # reconstructor by its old module path
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtypes]


@dataclass(frozen=True)
class Checkpoint:
    weights: dict[str, Any]  # parameter name -> torch.Tensor
    trainer: str
    configuration: str
    mirror_axes: Any  # validated against the plans by plans.read_config


def check_inside(path: Path, folder: Path) -> None:
    """Refuse links that leave ``folder``, and anything that is not a regular file."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise NnunetError(f"{path}: missing or unreadable ({exc})") from exc
    if not real.is_relative_to(folder.resolve()):
        raise NnunetError(
            f"{path}: is a link to {real}, outside the model folder {folder}; "
            "copy the real file into the folder"
        )
    if not real.is_file():
        raise NnunetError(f"{path}: is not a regular file")


def load_checkpoint(path: Path, folder: Path) -> Checkpoint:
    """Read one fold's checkpoint as data (see the module docstring)."""
    import pickle

    import torch

    check_inside(path, folder)
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise NnunetError(f"{path}: {size / 1e9:.1f} GB is larger than any nnU-Net checkpoint")
    try:
        with torch.serialization.safe_globals(safe_globals()):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise NnunetError(f"{path}: is not a readable PyTorch checkpoint ({exc})") from None
        raise NnunetError(
            f"{path}: refused: the checkpoint asks to build {found.group(1)}, which is not a "
            "tensor, a number or a container; loading it could run code, so it was not loaded"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise NnunetError(f"{path}: is not a readable PyTorch checkpoint ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("network_weights"), dict):
        raise NnunetError(f"{path}: has no 'network_weights'; not an nnU-Net v2 checkpoint")
    weights = obj["network_weights"]
    for key, value in weights.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise NnunetError(f"{path}: 'network_weights' entry {str(key)[:80]!r} is not a tensor")
    # torch.compile'd trainers save with an "_orig_mod." prefix.
    if weights and all(k.startswith("_orig_mod.") for k in weights):
        weights = {k[len("_orig_mod.") :]: v for k, v in weights.items()}
    trainer = obj.get("trainer_name")
    init_args = obj.get("init_args")
    configuration = init_args.get("configuration") if isinstance(init_args, dict) else None
    if not isinstance(trainer, str) or not isinstance(configuration, str):
        raise NnunetError(
            f"{path}: lacks 'trainer_name' or 'init_args.configuration'; not an nnU-Net v2 checkpoint"
        )
    return Checkpoint(
        weights=dict(weights),
        trainer=trainer[:100],
        configuration=configuration[:100],
        mirror_axes=obj.get("inference_allowed_mirroring_axes"),
    )
