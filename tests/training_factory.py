"""Tiny training datasets written in the RadLens export layout, shared by the training tests."""

from __future__ import annotations

from pathlib import Path

from inference.training.dataset import write_case
from phantoms.chest import chest_radiograph


def write_radiograph_cases(
    root: Path, n: int, size: int = 32, label_names: dict[int, str] | None = None
) -> Path:
    """``n`` DX radiograph phantoms ``xr0..``, alternating normal / nodule, with their class index."""
    for i in range(n):
        r = chest_radiograph(size=size, seed=i, nodule=bool(i % 2))
        write_case(
            root, f"xr{i}", r.image, None, (*r.spacing, 1.0), dict(label_names or {}),
            modality="DX", class_index=int(r.has_nodule),
        )  # fmt: skip
    return root
