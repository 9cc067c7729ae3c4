"""The one NIfTI reader and writer: arrays (z, y, x) on an LPS ``Grid``, RAS in the file.

NIfTI-1 and NIfTI-2 are read (nibabel tells them apart); a 4D file (x, y, z, t) is a series of
volumes, each read on its own (``volume=``)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.files import atomic_write_bytes
from radlens_core.grid import Grid, lps_to_ras_affine
from radlens_core.limits import AllocationTooLarge, max_alloc_bytes, refusal

NIFTI_SUFFIXES = (".nii.gz", ".nii")


class NiftiError(ValueError, UserError):
    """A NIfTI file that cannot be read or written; the message names the file."""


class NiftiTooLarge(NiftiError, AllocationTooLarge):
    """A NIfTI header that declares more voxels than the memory limit; nothing was read.
    ``reason`` is the sentence without the file name."""

    def __init__(self, path: Path, reason: str, declared: int) -> None:
        AllocationTooLarge.__init__(self, f"{path}: {reason}", path, declared, max_alloc_bytes())
        self.reason = reason


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _load_header(path: Path) -> Any:
    """The nibabel image (header and a lazy proxy: no voxel is read)."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        return nib.load(str(path))
    except (OSError, ValueError, EOFError, MemoryError, ImageFileError) as exc:
        raise NiftiError(f"{path}: cannot read as NIfTI ({exc})") from exc


def _dims(shape: tuple[int, ...]) -> list[int]:
    dims = list(shape)
    if len(dims) == 2:
        dims.append(1)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    return dims


def _shape_xyz(path: Path, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The (x, y, z) voxel counts read_nifti returns (2D gets z = 1, trailing 1s dropped)."""
    dims = _dims(shape)
    if len(dims) != 3:
        raise NiftiError(f"{path}: expected a 2D or 3D image, got shape {tuple(shape)}")
    return dims[0], dims[1], dims[2]


def _volumes_xyz(path: Path, shape: tuple[int, ...]) -> tuple[tuple[int, int, int], int]:
    """(x, y, z) of each volume and how many volumes: 1 for 3D, t for a 4D (x, y, z, t)."""
    dims = _dims(shape)
    if len(dims) == 3:
        return (dims[0], dims[1], dims[2]), 1
    if len(dims) == 4:
        return (dims[0], dims[1], dims[2]), dims[3]
    raise NiftiError(
        f"{path}: expected a 2D, 3D or 4D (time series) image, got shape {tuple(shape)}"
    )


def nifti_volumes(path: str | Path) -> tuple[Grid, int]:
    """The grid of each volume and the number of volumes (t of a 4D file, else 1), from
    the header alone."""
    path = Path(path)
    img = _load_header(path)
    (x, y, z), count = _volumes_xyz(path, tuple(int(n) for n in img.header.get_data_shape()))
    return _grid(path, (z, y, x), img.affine), count


def frame_time_ms(path: str | Path) -> float | None:
    """The time between the volumes of a 4D file (pixdim[4] in its time unit), in ms."""
    img = _load_header(Path(path))
    try:
        step = float(img.header["pixdim"][4])
        unit = img.header.get_xyzt_units()[1]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    scale = {"sec": 1000.0, "msec": 1.0, "usec": 0.001}.get(str(unit))
    if scale is None or not math.isfinite(step) or step <= 0:
        return None
    return step * scale


def _grid(path: Path, shape_zyx: tuple[int, int, int], ras_affine: Any) -> Grid:
    affine = lps_to_ras_affine(np.asarray(ras_affine, dtype=float))  # RAS -> LPS
    lin = affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)  # a degenerate axis: unit spacing
    try:
        return Grid(
            shape_zyx,
            tuple(float(s) for s in spacing),  # type: ignore[arg-type]
            tuple(float(o) for o in affine[:3, 3]),  # type: ignore[arg-type]
            lin / spacing,
        )
    except ValueError as exc:
        raise NiftiError(f"{path}: unusable geometry ({exc})") from exc


def _read_itemsize(img: Any) -> int:
    """Bytes per voxel of the array nibabel returns: scaled data comes back as float64."""
    itemsize = int(np.dtype(img.get_data_dtype()).itemsize)
    try:
        slope, inter = img.header.get_slope_inter()
    except (AttributeError, TypeError, ValueError):
        slope, inter = None, None
    scaled = (slope is not None and slope not in (0, 1)) or (inter is not None and inter != 0)
    return max(itemsize, 8) if scaled else itemsize


def check_nifti_size(path: str | Path, dtype: Any = None, img: Any = None, volumes: int = 1) -> int:
    """The bytes reading ``path`` declares (from its header; one of ``volumes`` equal parts
    when one volume of a 4D file is read); raises NiftiTooLarge, naming the file, its
    declared size and the limit, when that is more than the limit."""
    path = Path(path)
    img = _load_header(path) if img is None else img
    shape = tuple(int(n) for n in img.header.get_data_shape())
    voxels = (math.prod(shape) if shape else 0) // max(1, volumes)
    read = voxels * _read_itemsize(img)
    out = voxels * (np.dtype(dtype).itemsize if dtype is not None else _read_itemsize(img))
    declared = max(read, out)
    # The voxels are read, transposed into a contiguous copy, then converted: up to three
    # arrays at the peak.
    peak = 2 * read + (out if dtype is not None else 0)
    what = f"{'×'.join(map(str, shape))} voxels"
    if volumes > 1:
        what = f"one volume of {what}"
    reason = refusal(declared, what, peak)
    if reason is not None:
        raise NiftiTooLarge(path, reason, declared)
    return declared


def read_nifti_grid(path: str | Path) -> Grid:
    """The grid ``read_nifti`` would return, from the header alone (no voxel is read)."""
    path = Path(path)
    img = _load_header(path)
    x, y, z = _shape_xyz(path, tuple(int(n) for n in img.header.get_data_shape()))
    return _grid(path, (z, y, x), img.affine)


def read_nifti(
    path: str | Path, dtype: Any = None, volume: int | None = None
) -> tuple[np.ndarray, Grid]:
    """Read a 2D or 3D NIfTI-1 or NIfTI-2 file (a trailing axis of length 1 is dropped), or
    volume ``volume`` (0-based) of a 4D one; returns the array indexed (z, y, x) and its
    grid in LPS. A 4D file without ``volume`` is refused. The file is opened read-only.

    The size the header declares is checked against ``radlens_core.limits`` first:
    NiftiTooLarge, before any voxel is read, when it does not fit."""
    from nibabel.filebasedimages import ImageFileError

    path = Path(path)
    img = _load_header(path)
    shape = tuple(int(n) for n in img.header.get_data_shape())
    if volume is None:
        _shape_xyz(path, shape)
        count = 1
    else:
        _, count = _volumes_xyz(path, shape)
        if not 0 <= volume < count:
            raise NiftiError(f"{path}: has {count} volume(s); there is no volume {volume + 1}")
    check_nifti_size(path, dtype, img, volumes=count)
    try:
        if count > 1:
            dims = _dims(shape)
            # Only this volume's voxels are read (nibabel slices its proxy).
            index = (slice(None),) * 3 + (volume,) + (0,) * (len(shape) - 4)
            data = np.asanyarray(img.dataobj[index])
            data = data.reshape(dims[:3])
        else:
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
    grid = _grid(path, tuple(int(s) for s in arr.shape), img.affine)  # type: ignore[arg-type]
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
