"""The records of a training dataset: its cases (where the files are) and the dataset itself.

Pixels are read through the one NIfTI reader, ``radlens_core.nifti``; arrays come back
indexed (z, y, x) on a ``radlens_core.grid.Grid`` (spacing (x, y, z), LPS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.grid import Grid
from radlens_core.nifti import NiftiError, read_nifti


class DatasetError(UserError, ValueError):
    """A dataset that cannot be used; the message names the case or file and the problem."""


def read_image(path: Path, dtype: Any = None) -> tuple[np.ndarray, Grid]:
    """``radlens_core.nifti.read_nifti``, its errors (which name the file) as DatasetError."""
    try:
        return read_nifti(path, dtype)
    except NiftiError as exc:
        raise DatasetError(str(exc)) from exc


@dataclass(frozen=True)
class TrainingCase:
    """One case of a dataset: where its files are and what is known about it (not the pixels)."""

    case_id: str
    patient_id: str
    image_path: Path
    label_path: Path | None
    modality: str = "OT"
    #: boxes as (lo_z, lo_y, lo_x, hi_z, hi_y, hi_x) inclusive voxel corners, with label indices
    boxes: tuple[tuple[float, ...], ...] = ()
    box_labels: tuple[int, ...] = ()
    #: case-level class index for classification (None: derived from the label map)
    class_index: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def load_image(self) -> tuple[np.ndarray, Grid]:
        """The image as float32 (z, y, x) and its grid."""
        return read_image(self.image_path, np.float32)

    def load_label(self) -> tuple[np.ndarray, Grid]:
        """The label map as uint8 (z, y, x); a case without one raises DatasetError."""
        if self.label_path is None:
            raise DatasetError(f"case {self.case_id}: has no label map")
        arr, grid = read_image(self.label_path, None)
        if np.any(arr < 0) or np.any(arr > 255) or np.any(arr != np.round(arr)):
            raise DatasetError(f"case {self.case_id}: {self.label_path.name} is not a label map")
        return arr.astype(np.uint8), grid


@dataclass(frozen=True)
class Dataset:
    root: Path
    cases: tuple[TrainingCase, ...]
    #: label index -> name (background 0 excluded)
    labels: dict[int, str]
    layout: str  # "radlens-export" | "imagesTr-labelsTr"

    def describe(self) -> str:
        patients = len({c.patient_id for c in self.cases})
        names = ", ".join(f"{i}={n}" for i, n in sorted(self.labels.items())) or "none"
        return (
            f"{len(self.cases)} cases from {patients} patients in {self.root} "
            f"({self.layout}); labels: {names}"
        )
