"""The built-in demo study: the synthetic chest CT phantom as a Volume and as a DICOM series."""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from phantoms.chest import chest_ct
from radlens_core.files import atomic_write, atomic_write_text, fsync_dir
from radlens_core.paths import user_data_dir
from viewer.study.errors import StudyError
from viewer.study.volume import Volume

DEMO_SHAPE = (96, 256, 256)
DEMO_SEED = 2026
DEMO_WINDOWS = [(40.0, 400.0, "MEDIASTINUM"), (-600.0, 1500.0, "LUNG"), (400.0, 1800.0, "BONE")]
CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
#: Stored values are HU + 1024 in 12 bits, as most CT scanners write them.
INTERCEPT = -1024
#: Marks a complete cached copy; written last so a half-written cache is never used.
COMPLETE_MARKER = "chest-ct.complete"


def _uid(seed: int, *parts: object) -> UID:
    # Deterministic UIDs: the demo's label store key must not change between runs.
    return generate_uid(entropy_srcs=["radlens-demo", str(seed), *map(str, parts)])


def demo_volume(seed: int = DEMO_SEED) -> Volume:
    """The synthetic chest CT (HU, int16, 96 x 256 x 256) with its ground truth in ``meta``.

    ``meta["truth_labels"]`` is the label map (1 lung, 2 nodule), ``meta["nodules"]`` the
    list of ``phantoms.chest.Nodule``. Axial, patient origin at the volume's centre.
    """
    ct = chest_ct(shape=DEMO_SHAPE, seed=seed)
    nz, ny, nx = ct.hu.shape
    sx, sy, sz = ct.spacing
    origin = (-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, -(nz - 1) / 2 * sz)
    return Volume(
        ct.hu.astype(np.int16),
        spacing=ct.spacing,
        origin=origin,
        direction=np.eye(3),
        modality="CT",
        series_uid=_uid(seed, "series"),
        description="RadLens demo chest CT (synthetic)",
        windows=list(DEMO_WINDOWS),
        meta={
            "patient_name": "RADLENS^DEMO",
            "patient_id": "RADLENS-DEMO",
            "study_uid": _uid(seed, "study"),
            "study_description": "Synthetic chest CT phantom",
            "body_part": "CHEST",
            "frame_of_reference_uid": _uid(seed, "frame"),
            "truth_labels": ct.labels,
            "nodules": list(ct.nodules),
            "synthetic": True,
        },
    )


def _slice_dataset(vol: Volume, z: int, seed: int) -> Dataset:
    meta = vol.meta
    sop_uid = _uid(seed, "slice", z)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = meta["patient_name"]
    ds.PatientID = meta["patient_id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = meta["study_uid"]
    ds.SeriesInstanceUID = vol.series_uid
    ds.FrameOfReferenceUID = meta["frame_of_reference_uid"]
    ds.StudyDate = "20260101"
    ds.StudyTime = "000000"
    ds.StudyID = "DEMO"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = meta["study_description"]
    ds.SeriesDescription = vol.description
    ds.SeriesNumber = 1
    ds.InstanceNumber = z + 1
    ds.Modality = "CT"
    ds.Manufacturer = "RadLens (synthetic phantom)"
    ds.InstitutionName = "RadLens demo"
    ds.BodyPartExamined = "CHEST"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in vol.index_to_patient((z, 0, 0))]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [f"{vol.spacing[1]:.6f}", f"{vol.spacing[0]:.6f}"]
    ds.SliceThickness = f"{vol.spacing[2]:.6f}"
    ds.SliceLocation = f"{vol.index_to_patient((z, 0, 0))[2]:.4f}"
    ds.RescaleSlope = 1
    ds.RescaleIntercept = INTERCEPT
    ds.RescaleType = "HU"
    ds.WindowCenter = [w[0] for w in DEMO_WINDOWS]
    ds.WindowWidth = [w[1] for w in DEMO_WINDOWS]
    ds.WindowCenterWidthExplanation = [w[2] for w in DEMO_WINDOWS]
    stored = np.clip(vol.array[z].astype(np.int32) - INTERCEPT, 0, 4095).astype(np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = stored.tobytes()
    return ds


def _dcmwrite(ds: Dataset, out: BinaryIO) -> None:
    pydicom.dcmwrite(out, ds, enforce_file_format=True)


def write_demo_series(out_dir: Path | str, seed: int = DEMO_SEED) -> list[Path]:
    """Write the demo volume as a DICOM CT series (one file per slice) into ``out_dir``.

    Refuses to replace existing files of the same names.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vol = demo_volume(seed)
    names = [f"CT{z + 1:04d}.dcm" for z in range(vol.shape[0])]
    clash = [n for n in names if (out / n).exists()]
    if clash:
        raise StudyError(out / clash[0], "already exists; choose an empty folder for the demo")
    paths = []
    for z, name in enumerate(names):
        ds = _slice_dataset(vol, z, seed)
        target = out / name
        atomic_write(target, partial(_dcmwrite, ds))
        paths.append(target)
    return paths


def demo_series_dir() -> Path:
    """A cached DICOM copy of the demo under the user data folder, written on first use."""
    root = user_data_dir() / "demo"
    series = root / "chest-ct"
    marker = root / COMPLETE_MARKER
    if marker.exists() and series.is_dir():
        return series
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the final place, then swap in, so a crash never leaves a partial cache.
    tmp = Path(tempfile.mkdtemp(prefix=".chest-ct-", dir=root))
    try:
        write_demo_series(tmp)
        if series.exists():
            shutil.rmtree(series)
        os.replace(tmp, series)
        fsync_dir(root)
        atomic_write_text(marker, "ok\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return series
