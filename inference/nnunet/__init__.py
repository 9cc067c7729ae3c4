"""nnU-Net v2 models in RadLens: import a trained-model folder as a package, and predict
exactly as nnU-Net does (see DESIGN.md "Model package").

Public entry points: :func:`import_nnunet_folder`, :func:`load_package`, :func:`predict`,
:func:`estimate_memory`; every refusal is an :class:`NnunetError` (a ``UserError``).
torch is imported only when a function needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference.nnunet.errors import NnunetError
from inference.nnunet.package import NnunetModel, import_nnunet_folder, load_package
from inference.nnunet.runner import estimate_memory
from radlens_core.progress import CancelCheck, Progress

__all__ = [
    "NnunetError",
    "NnunetModel",
    "estimate_memory",
    "import_nnunet_folder",
    "load_package",
    "predict",
]


def predict(
    image_zyx: np.ndarray,
    spacing_xyz: Sequence[float],
    direction,
    package_dir_or_loaded_model: str | Path | NnunetModel,
    *,
    mirroring: bool = True,
    device: str = "cpu",
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    probabilities_for: Sequence[int] = (),
    memory_limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Segment ``image_zyx`` ((z, y, x), (C, z, y, x) for several channels, or (y, x)).

    nnU-Net reads images with SimpleITK and uses the array as stored, ignoring its
    direction; RadLens arrays are indexed the same way, so ``direction`` (3x3) is only
    checked. Returns (label map uint8 (z, y, x) on the input grid, probabilities float32
    (len(probabilities_for), z, y, x) for the requested label indices, or None).
    Raises NnunetError (refusals, memory), radlens_core.progress.Cancelled."""
    from inference.nnunet.runner import run

    if direction is not None and np.shape(direction) != (3, 3):
        raise NnunetError(f"direction must be a 3x3 matrix, got shape {np.shape(direction)}")
    model = package_dir_or_loaded_model
    if not isinstance(model, NnunetModel):
        model = load_package(model)
    return run(
        model,
        image_zyx,
        spacing_xyz,
        mirroring=mirroring,
        device=device,
        progress=progress,
        cancel=cancel,
        probabilities_for=probabilities_for,
        memory_limit=memory_limit,
    )
