"""NIfTI, NRRD and MetaImage in and out, in LPS like every Volume.

NIfTI goes through the one NIfTI reader/writer (``radlens_core.nifti``); NRRD, MetaImage
and colour NIfTI (which that reader does not take) go through SimpleITK."""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radlens_core.files import fsync_dir
from radlens_core.limits import refusal
from radlens_core.nifti import (
    NiftiError,
    NiftiTooLarge,
    check_nifti_size,
    frame_time_ms,
    is_nifti,
    nifti_volumes,
    read_nifti,
    write_nifti,
)
from viewer.study.errors import StudyError, TooLarge, UnreadableFile, UnsupportedFormat
from viewer.study.opening import not_regular
from viewer.study.volume import Volume

if TYPE_CHECKING:
    from viewer.study.records import SeriesInfo

#: Endings SimpleITK reads and writes for us.
SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(s):
            return s
    return ""


def image_information(path: Path) -> tuple[tuple[int, ...], tuple[float, ...], str | None]:
    """(size x-first, spacing, refusal or None) from the file's header alone (SimpleITK's
    ReadImageInformation); the refusal is the sentence when its pixels exceed the limit."""
    import SimpleITK as sitk

    why = not_regular(path)
    if why is not None:
        raise UnreadableFile(path, why)
    if is_nifti(path):
        listed = _nifti_information(path)
        if listed is not None:
            return listed[0], listed[1], listed[2]
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise UnreadableFile(path, f"unreadable image file ({last})") from None
    size = tuple(int(n) for n in reader.GetSize())
    spacing = tuple(float(v) for v in reader.GetSpacing())
    name = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    found = re.search(r"(\d+)-bit", name)
    bits = int(found.group(1)) if found else 64
    per_value = max(1, bits // 8) * (2 if "complex" in name else 1)
    values = max(1, int(reader.GetNumberOfComponents()))
    declared = math.prod(size) * values * per_value
    what = f"an image of {'×'.join(map(str, size))}"
    if values > 1:
        what += f" with {values} values per voxel"
    what += f" at {bits} bits"
    # ITK reads the image, then the array is copied out of it: twice the pixels at the peak.
    return size, spacing, refusal(declared, what, 2 * declared)


def _nifti_information(
    path: Path,
) -> tuple[tuple[int, ...], tuple[float, ...], str | None, int] | None:
    """(size x-first of one volume, spacing, refusal or None, volumes) of a NIfTI-1 or
    NIfTI-2 file from its header (nibabel); None when nibabel cannot read it."""
    from nibabel.filebasedimages import ImageFileError

    try:
        grid, count = nifti_volumes(path)
    except (NiftiError, ImageFileError):
        return None
    z, y, x = grid.shape
    refused = None
    try:
        check_nifti_size(path, volumes=count)
    except NiftiTooLarge as exc:
        # Worded as for every other image file the scan lists.
        bits = 8 * max(1, exc.declared // max(1, x * y * z))
        what = f"an image of {x}×{y}×{z} at {bits} bits"
        if count > 1:
            what = f"volumes of {x}×{y}×{z} at {bits} bits"
        refused = refusal(exc.declared, what, 2 * exc.declared) or exc.reason
    return (x, y, z), tuple(float(v) for v in grid.spacing), refused, count


def image_volume_count(path: Path | str) -> int:
    """How many volumes an image file holds: t of a 4D NIfTI, else 1."""
    path = Path(path)
    if not is_nifti(path):
        return 1
    listed = _nifti_information(path)
    return listed[3] if listed is not None else 1


def read_image(path: Path | str, volume: int | None = None) -> Volume:
    """A NIfTI (.nii/.nii.gz, NIfTI-1 or -2), NRRD or MHA/MHD file as a Volume in LPS (ITK's
    own space); of a 4D NIfTI, volume ``volume`` (0-based; the first when not given), keyed
    apart from the others."""
    import SimpleITK as sitk

    path = Path(path)
    if not _suffix(path):
        raise UnsupportedFormat(path, "not a NIfTI, NRRD or MetaImage file (by its name)")
    if not path.exists():
        raise UnreadableFile(path, "no such file")
    why = not_regular(path)
    if why is not None:
        raise UnreadableFile(path, why)
    if is_nifti(path):
        from nibabel.filebasedimages import ImageFileError  # read_nifti lets it through

        count = image_volume_count(path)
        index = (volume or 0) if count > 1 else None
        if index is not None and not 0 <= index < count:
            raise UnsupportedFormat(path, f"holds {count} volumes; there is no volume {index + 1}")
        try:
            array, grid = read_nifti(path, volume=index)
        except NiftiTooLarge as exc:
            raise TooLarge(path, exc.reason) from None
        except (NiftiError, ImageFileError):
            pass  # colour or unreadable: SimpleITK reads the one and words the other
        else:
            out = _volume_of(path, array, grid.spacing, grid.origin, grid.direction)
            if index is not None:
                out.series_uid = f"{out.series_uid}#vol{index + 1}"
                out.meta.update(
                    volume_index=index + 1,
                    volume_count=count,
                    volume_label=nifti_volume_label(path, index),
                )
            return out
    _size, _spacing, refused = image_information(path)
    if refused is not None:
        raise TooLarge(path, refused)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise UnreadableFile(path, f"cannot be read as an image ({last})") from None
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise UnsupportedFormat(path, f"{dim}D images are not supported; only 2D and 3D")
    arr = sitk.GetArrayFromImage(image)
    channels = image.GetNumberOfComponentsPerPixel()
    if channels not in (1, 3, 4):
        raise UnsupportedFormat(path, f"{channels} values per voxel; only greyscale or RGB")
    spacing = list(image.GetSpacing())
    origin = list(image.GetOrigin())
    direction = np.asarray(image.GetDirection(), float).reshape(dim, dim)
    if dim == 2:
        arr = arr[np.newaxis]
        spacing.append(1.0)
        origin.append(0.0)
        d3 = np.eye(3)
        d3[:2, :2] = direction
        direction = d3
    return _volume_of(path, arr, spacing, origin, direction)


def nifti_volume_label(path: Path, index: int) -> str:
    """ "t = 4 s" from the file's time step, else "volume 3"."""
    step = frame_time_ms(path)
    if step is None:
        return f"volume {index + 1}"
    seconds = index * step / 1000.0
    return f"t = {seconds:g} s"


def _volume_of(
    path: Path,
    arr: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: np.ndarray,
) -> Volume:
    from viewer.study.scan import file_sha256

    try:
        return Volume(
            arr,
            spacing=tuple(spacing),  # type: ignore[arg-type]
            origin=tuple(origin),  # type: ignore[arg-type]
            direction=direction,
            modality="OT",
            series_uid=file_sha256(path),
            description=path.name,
            meta={"source_files": [path], "format": _suffix(path).lstrip(".")},
        )
    except ValueError as exc:
        raise UnsupportedFormat(path, f"unusable geometry in the header ({exc})") from None


def _to_sitk(volume: Volume):  # -> sitk.Image
    import SimpleITK as sitk

    arr = volume.array
    image = sitk.GetImageFromArray(arr, isVector=volume.is_rgb)
    image.SetSpacing(tuple(float(s) for s in volume.spacing))
    image.SetOrigin(tuple(float(o) for o in volume.origin))
    _check_orthogonal(None, volume)
    image.SetDirection(tuple(np.asarray(volume.direction, float).ravel()))
    return image


def _check_orthogonal(path: Path | None, volume: Volume) -> None:
    d = np.asarray(volume.direction, float)
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise UnsupportedFormat(
            path,
            "this volume is sheared (gantry tilt): NIfTI/NRRD/MHA need an orthogonal grid",
        )


def write_image(volume: Volume, path: Path | str, overwrite: bool = False) -> None:
    """Write ``volume`` atomically (temporary file, then ``os.replace``).

    Refuses to replace an existing file unless ``overwrite=True``. ``.mhd`` writes its
    ``.raw`` companion beside it, both moved into place together.
    """
    import SimpleITK as sitk

    path = Path(path)
    suffix = _suffix(path)
    if not suffix:
        raise UnsupportedFormat(path, f"choose a name ending in one of {', '.join(SUFFIXES)}")
    if path.exists() and not overwrite:
        raise StudyError(path, "already exists; choose another name or allow overwriting")
    if not path.parent.is_dir():
        raise StudyError(path, "the folder does not exist")
    if is_nifti(path) and not volume.is_rgb:
        _check_orthogonal(path, volume)
        try:
            write_nifti(path, volume.array, volume.grid)  # atomic: temporary file, fsync, replace
        except OSError as exc:
            raise StudyError(path, f"could not be written ({exc})") from None
        return
    try:
        image = _to_sitk(volume)
    except UnsupportedFormat as exc:
        raise UnsupportedFormat(path, exc.reason) from None
    tmpdir = Path(tempfile.mkdtemp(prefix=".radlens-write-", dir=path.parent))
    try:
        target = tmpdir / path.name
        try:
            sitk.WriteImage(
                image, str(target), useCompression=suffix in (".nii.gz", ".nrrd", ".mha")
            )
        except RuntimeError as exc:
            raise StudyError(
                path, f"could not be written ({str(exc).strip().splitlines()[-1]})"
            ) from None
        # Durable before they are moved; companions first (e.g. .raw for .mhd) so the
        # header never points at a missing file.
        written_files = sorted(tmpdir.iterdir(), key=lambda p: p.name == path.name)
        for written in written_files:
            with open(written, "rb") as f:
                os.fsync(f.fileno())
        for written in written_files:
            os.replace(written, path.parent / written.name)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def image_series(path: Path, key: str) -> list[SeriesInfo]:
    """The series of one image file keyed ``key`` (its hash): one, or one per volume of a
    4D NIfTI (each keyed ``<key>#vol<k>``, a time series)."""
    from dataclasses import replace

    from viewer.study.records import SeriesInfo

    size, spacing, refused = image_information(path)
    count = image_volume_count(path)
    nx, ny = size[0], size[1] if len(size) > 1 else 1
    nz = size[2] if len(size) > 2 else 1
    name = path.name
    problems = [] if refused is None else [refused]
    bad = [v for v in spacing[:3] if not (v > 0 and v < float("inf"))]
    if bad:
        problems.append(f"file {name}: spacing is {'×'.join(f'{v:g}' for v in spacing)}")
    first = SeriesInfo(
        series_uid=key,
        study_uid="",
        patient_name="",
        patient_id="",
        study_date="",
        study_description="",
        modality="OT",
        description=name,
        series_number=None,
        n_images=nz,
        rows=ny,
        cols=nx,
        files=[path],
        kind="image",
        shape=(nz, ny, nx),
        spacing=(
            spacing[0],
            spacing[1] if len(spacing) > 1 else 1.0,
            spacing[2] if len(spacing) > 2 else 1.0,
        ),
        problems=problems,
        loadable=not problems,
    )
    if count == 1:
        return [first]
    return [
        replace(
            first,
            series_uid=f"{key}#vol{k + 1}",
            volume_index=k + 1,
            volume_count=count,
            volume_label=nifti_volume_label(path, k),
            volume_group=key,
            time_series=True,
            problems=list(problems),
        )
        for k in range(count)
    ]
