"""The one NIfTI reader and writer: arrays (z, y, x) on an LPS ``Grid``, RAS in the file."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.files import atomic_write_bytes
from radlens_core.grid import Grid, lps_to_ras_affine

NIFTI_SUFFIXES = (".nii.gz", ".nii")


class NiftiError(ValueError, UserError):
    """A NIfTI file that cannot be read or written; the message names the file."""


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: str | Path, dtype: Any = None) -> tuple[np.ndarray, Grid]:
    """Read a 2D or 3D NIfTI file (a trailing axis of length 1 is dropped); returns the
    array indexed (z, y, x) and its grid in LPS. The file is opened read-only."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    path = Path(path)
    try:
        img: Any = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except (OSError, ValueError, EOFError, MemoryError, ImageFileError) as exc:
        raise NiftiError(f"{path}: cannot read as NIfTI ({exc})") from exc
    if data.ndim == 2:
        data = data[:, :, None]
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise NiftiError(f"{path}: expected a 2D or 3D image, got shape {data.shape}")
    arr = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    affine = lps_to_ras_affine(np.asarray(img.affine, dtype=float))  # RAS -> LPS
    lin = affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)  # a degenerate axis: unit spacing
    try:
        grid = Grid(
            tuple(int(s) for s in arr.shape),  # type: ignore[arg-type]
            tuple(float(s) for s in spacing),  # type: ignore[arg-type]
            tuple(float(o) for o in affine[:3, 3]),  # type: ignore[arg-type]
            lin / spacing,
        )
    except ValueError as exc:
        raise NiftiError(f"{path}: unusable geometry ({exc})") from exc
    return arr, grid


def nifti_bytes(array: np.ndarray, grid: Grid, compress: bool = True) -> bytes:
    """The bytes of a NIfTI-1 file holding ``array`` (z, y, x) on ``grid`` (RAS affine,
    sform and qform both set, code 1 = scanner)."""
    import nibabel as nib

    arr = np.asarray(array)
    if arr.shape[:3] != grid.shape:
        raise NiftiError(f"array of shape {arr.shape} does not fit a grid of {grid.shape}")
    img = nib.Nifti1Image(np.transpose(arr, (2, 1, 0)), grid.affine_ras)
    img.set_sform(grid.affine_ras, code=1)
    img.set_qform(grid.affine_ras, code=1)
    img.header.set_xyzt_units("mm", "sec")
    data = img.to_bytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if compress else data


def write_nifti(path: str | Path, array: np.ndarray, grid: Grid) -> None:
    """Write ``array`` (z, y, x) on ``grid`` to ``path`` atomically (.nii.gz is compressed)."""
    path = Path(path)
    atomic_write_bytes(path, nifti_bytes(array, grid, compress=path.name.lower().endswith(".gz")))
