"""DICOM series the SEG/RTSTRUCT/SR tests generate: axial CT, negated orientation, multi-frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_series(
    folder: Path,
    shape: tuple[int, int, int] = (6, 20, 24),
    spacing_xyz: tuple[float, float, float] = (0.7, 0.9, 2.0),
    row_cos: tuple[float, float, float] = (1.0, 0.0, 0.0),
    col_cos: tuple[float, float, float] = (0.0, 1.0, 0.0),
    origin: tuple[float, float, float] = (-10.0, -12.0, 30.0),
    slice_sign: float = 1.0,
    for_uid: str | None = None,
    modality: str = "CT",
) -> dict:
    """One CT file per slice; slice z is at origin + z * slice_sign * spacing along
    row x col. Files are written in reverse so the reader must sort by position.
    Returns the UIDs (study, series, for, sops in slice order)."""
    folder.mkdir(parents=True, exist_ok=True)
    uids = {
        "study": generate_uid(),
        "series": generate_uid(),
        "for": for_uid or generate_uid(),
        "sops": [],
    }
    normal = np.cross(row_cos, col_cos) * slice_sign
    arr = (np.arange(np.prod(shape)).reshape(shape) % 300 - 100).astype(np.int16)
    for z in reversed(range(shape[0])):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"f{shape[0] - z:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.PatientName, ds.PatientID, ds.PatientSex = "Doe^Jane", "PID-42", "F"
        ds.PatientBirthDate, ds.AccessionNumber, ds.ReferringPhysicianName = "19600101", "A1", ""
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
        ds.FrameOfReferenceUID = uids["for"]
        ds.Modality, ds.StudyDate, ds.StudyTime, ds.StudyID = modality, "20240301", "080000", "1"
        ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = 2, z + 1, "Phantom"
        pos = np.asarray(origin) + normal * spacing_xyz[2] * z
        ds.ImagePositionPatient = [float(v) for v in pos]
        ds.ImageOrientationPatient = [*map(float, row_cos), *map(float, col_cos)]
        ds.PixelSpacing = [spacing_xyz[1], spacing_xyz[0]]
        ds.SliceThickness = spacing_xyz[2]
        ds.Rows, ds.Columns = shape[1], shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = arr[z].tobytes()
        ds.save_as(str(path), enforce_file_format=True)
        uids["sops"].insert(0, sop)
    return uids


def load(folder: Path):
    """The series as the viewer loads it (scan, then load)."""
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series

    return load_series(scan_folder(folder).series[0])


def blobs(shape: tuple[int, int, int], labels: int = 3, seed: int = 0) -> np.ndarray:
    """A label map with ``labels`` boxes of distinct labels, on a subset of slices."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.uint8)
    for k in range(1, labels + 1):
        z0 = int(rng.integers(0, shape[0] - 1))
        y0, x0 = int(rng.integers(0, shape[1] - 4)), int(rng.integers(0, shape[2] - 4))
        out[z0 : z0 + 2, y0 : y0 + 3 + k % 2, x0 : x0 + 4] = k
    return out
