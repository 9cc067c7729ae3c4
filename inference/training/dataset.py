"""A training dataset assembled from exported labels, and its deterministic split by patient.

Two layouts are read (``layouts.py``; folders are only ever opened for reading): the RadLens
export (``DIR/<case_id>/image.nii.gz`` + ``mask.nii.gz`` ...) and nnU-Net / MSD style
(``DIR/imagesTr/`` + ``DIR/labelsTr/``). The records are in ``cases.py``.

Arrays come back indexed (z, y, x) like ``viewer.study.volume.Volume``, on a
``radlens_core.grid.Grid``; spacing is (x, y, z).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference.training.cases import Dataset, DatasetError, TrainingCase, read_image
from inference.training.layouts import export_cases, msd_cases
from radlens_core.files import atomic_write_text
from radlens_core.grid import Grid
from radlens_core.nifti import (
    NIFTI_SUFFIXES,
    NiftiError,
    check_nifti_size,
    read_nifti_grid,
    write_nifti,
)

__all__ = [
    "NIFTI_SUFFIXES",
    "Dataset",
    "DatasetError",
    "Grid",
    "TrainingCase",
    "check_case_geometry",
    "load_dataset",
    "patient_rank",
    "read_image",
    "split_by_patient",
    "write_case",
]


def load_dataset(root: str | Path, check_geometry: bool = True) -> Dataset:
    """Find every case under ``root`` and check that each image and label share one grid."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    if (root / "imagesTr").is_dir():
        layout = "imagesTr-labelsTr"
        cases, labels = msd_cases(root)
    else:
        layout = "radlens-export"
        cases, labels = export_cases(root)
    if not cases:
        raise DatasetError(
            f"{root}: no cases found (expected <case>/image.nii.gz folders or imagesTr/ + labelsTr/)"
        )
    ids = [c.case_id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DatasetError(f"{root}: case ids used twice: {', '.join(dupes)}")
    for case in cases:
        check_case_size(case)
    if check_geometry:
        for case in cases:
            check_case_geometry(case)
    return Dataset(root=root, cases=tuple(cases), labels=labels, layout=layout)


def header_grid(path: Path) -> Grid:
    """The grid of a NIfTI file from its header alone (no voxel is read): the core's
    ``radlens_core.nifti.read_nifti_grid``, the grid ``read_nifti`` itself returns."""
    try:
        return read_nifti_grid(path)
    except NiftiError as exc:
        raise DatasetError(str(exc)) from exc


def check_case_size(case: TrainingCase) -> None:
    """Raise DatasetError naming the case when its image or label map declares (in its
    header) more voxels than one image may take in memory (``radlens_core.limits``)."""
    for path, dtype in ((case.image_path, np.float32), (case.label_path, None)):
        if path is None:
            continue
        try:
            check_nifti_size(path, dtype)
        except NiftiError as exc:
            raise DatasetError(f"case {case.case_id}: {exc}") from exc


def check_case_geometry(case: TrainingCase) -> None:
    """Raise DatasetError naming the case when its label map is not on the image's grid."""
    if case.label_path is None:
        return
    img, lab = header_grid(case.image_path), header_grid(case.label_path)
    problem = img.differs_from(lab)
    if problem:
        raise DatasetError(
            f"case {case.case_id}: {case.image_path.name} and {case.label_path.name} "
            f"are on different grids ({problem})"
        )


# ---- split ----------------------------------------------------------------------------------


def patient_rank(patient_id: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for a patient, from SHA-256(seed:patient)."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_patient(
    cases: Sequence[TrainingCase], val_fraction: float, seed: int
) -> tuple[list[TrainingCase], list[TrainingCase]]:
    """(train, validation): every case of a patient lands on the same side.

    Patients are ordered by a hash of (seed, patient id), so the split does not depend on
    file order or on which other patients exist; the first ``round(n * f)`` (at least one
    when f > 0 and there are two or more patients) go to validation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"validation fraction must be in [0, 1), got {val_fraction}")
    patients = sorted({c.patient_id for c in cases}, key=lambda p: (patient_rank(p, seed), p))
    n_val = int(round(len(patients) * val_fraction))
    if val_fraction > 0 and len(patients) >= 2:
        n_val = min(max(n_val, 1), len(patients) - 1)
    val_patients = set(patients[:n_val])
    train = [c for c in cases if c.patient_id not in val_patients]
    val = [c for c in cases if c.patient_id in val_patients]
    return train, val


# ---- writing (demo data and tests) ---------------------------------------------------------


def write_case(
    root: str | Path,
    case_id: str,
    image: np.ndarray,
    label: np.ndarray | None,
    spacing: Sequence[float],
    labels: dict[int, str],
    patient_id: str | None = None,
    modality: str = "CT",
    boxes: Sequence[tuple[float, ...]] = (),
    box_labels: Sequence[int] = (),
    class_index: int | None = None,
) -> Path:
    """Write one case in the RadLens export layout (axis-aligned LPS grid, origin 0).

    Used to turn synthetic phantoms into a dataset; real exports come from ``viewer.labels``.
    """
    folder = Path(root) / case_id
    folder.mkdir(parents=True, exist_ok=False)
    sx, sy, sz = (float(s) for s in spacing)
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    grid = Grid(img.shape[:3], (sx, sy, sz))  # type: ignore[arg-type]
    write_nifti(folder / "image.nii.gz", img, grid)
    if label is not None:
        lab = np.asarray(label, dtype=np.uint8)
        write_nifti(folder / "mask.nii.gz", lab[None] if lab.ndim == 2 else lab, grid)
    table = {str(k): {"name": v, "color": "#ff0000"} for k, v in labels.items()}
    atomic_write_text(folder / "label_table.json", json.dumps(table, indent=1))
    anns: dict[str, Any] = {
        "annotations": [
            {"kind": "Box", "label": int(lab_i), "corners": [float(v) for v in box], "z": None}
            for box, lab_i in zip(boxes, box_labels or [1] * len(boxes), strict=True)
        ]
    }
    if class_index is not None:
        anns["class_index"] = int(class_index)
    atomic_write_text(folder / "annotations.json", json.dumps(anns, indent=1))
    export = {
        "case_id": case_id,
        "patient_id": patient_id or case_id,
        "modality": modality,
        "geometry": {"shape_zyx": list(img.shape[:3]), "spacing_xyz": [sx, sy, sz]},
    }
    atomic_write_text(folder / "export.json", json.dumps(export, indent=1))
    return folder
