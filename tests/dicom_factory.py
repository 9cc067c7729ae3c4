"""Write small, valid test DICOM files into temporary folders (pydicom only, no fixtures)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def base_dataset(sop_class: str, modality: str, study_uid: str, series_uid: str) -> Dataset:
    """Patient/study/series/SOP modules common to every object written here."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    sop_uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = "TEST^PATIENT"
    ds.PatientID = "TEST-001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = datetime.date(2026, 1, 2).strftime("%Y%m%d")
    ds.StudyTime = "120000"
    ds.StudyDescription = "Factory study"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.Manufacturer = "RadLens tests"
    ds.InstitutionName = "Test Hospital"
    return ds


def set_pixels(ds: Dataset, arr: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    """Attach an uncompressed greyscale (or RGB with a trailing 3) pixel array."""
    arr = np.ascontiguousarray(arr)
    rgb = photometric in ("RGB", "YBR_FULL")
    ds.Rows, ds.Columns = arr.shape[-3:-1] if rgb else arr.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    ds.PixelData = arr.tobytes()


def save(ds: Dataset, path: Path, transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    elif transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass
class SeriesTruth:
    """What a written series should load as: (z, y, x) values and geometry, z in true order."""

    paths: list[Path]  # index = true z
    values: np.ndarray  # rescaled values, (z, y, x)
    positions: np.ndarray  # (z, 3) ImagePositionPatient in LPS mm
    spacing: tuple[float, float, float]
    orientation: tuple[float, ...]
    series_uid: str
    study_uid: str


def ct_values(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Distinct HU-like values per slice so that an order mistake is visible."""
    rng = np.random.default_rng(seed)
    vol = rng.integers(-1000, 1500, size=shape).astype(np.int16)
    vol[:, 0, 0] = np.arange(shape[0]) * 10 - 500  # a per-slice marker
    return vol


def write_ct_series(
    folder: Path,
    shape: tuple[int, int, int] = (6, 12, 10),
    spacing: tuple[float, float, float] = (0.7, 0.8, 2.5),
    origin: tuple[float, float, float] = (-20.0, -30.0, 40.0),
    orientation: tuple[float, ...] = AXIAL,
    slope: float = 1.0,
    intercept: float = -1024.0,
    values: np.ndarray | None = None,
    shuffle_seed: int | None = 7,
    tilt_deg: float = 0.0,
    z_positions: list[float] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    photometric: str = "MONOCHROME2",
    series_uid: str | None = None,
    study_uid: str | None = None,
    rows_cols: list[tuple[int, int]] | None = None,
    window: tuple[float, float] | None = (40.0, 400.0),
    description: str = "Factory CT",
    bits_stored: int = 12,
    signed: bool = False,
) -> SeriesTruth:
    """A CT series, one file per slice, with file names and InstanceNumbers in shuffled order.

    ``z_positions`` (mm along the normal) override the regular spacing (gaps, duplicates);
    ``tilt_deg`` shifts each slice along the column direction like a tilted gantry.
    """
    nz = shape[0] if z_positions is None else len(z_positions)
    shape = (nz, shape[1], shape[2])
    vals = ct_values(shape) if values is None else values
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    normal = np.cross(row, col)
    zs = [k * spacing[2] for k in range(nz)] if z_positions is None else list(z_positions)
    shear = np.tan(np.radians(tilt_deg))
    positions = np.array([np.asarray(origin) + z * normal + z * shear * col for z in zs])
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    rng = np.random.default_rng(shuffle_seed)
    perm = rng.permutation(nz) if shuffle_seed is not None else np.arange(nz)
    paths = []
    for z in range(nz):
        ds = base_dataset(CT_IMAGE, "CT", study_uid, series_uid)
        ds.SeriesDescription = description
        ds.FrameOfReferenceUID = frame_uid
        ds.InstanceNumber = int(perm[z]) + 1  # deliberately unrelated to position
        ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[z]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing, column spacing
        ds.SliceThickness = 99.0  # wrong on purpose: spacing must come from positions
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.BodyPartExamined = "CHEST"
        if window:
            ds.WindowCenter, ds.WindowWidth = window
            ds.WindowCenterWidthExplanation = "SOFT"
        stored = np.round((vals[z].astype(float) - intercept) / slope)
        if rows_cols is not None:
            r, c = rows_cols[z]
            stored = np.resize(stored, (r, c))
        set_pixels(ds, stored.astype(np.int16 if signed else np.uint16), photometric)
        ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
        name = (
            f"IM{int(perm[z]) * 37 % 1000:04d}_{z}.dcm"
            if shuffle_seed is not None
            else f"{z:04d}.dcm"
        )
        paths.append(save(ds, Path(folder) / name, transfer_syntax))
    return SeriesTruth(
        paths=paths,
        values=vals,
        positions=positions,
        spacing=spacing,
        orientation=tuple(orientation),
        series_uid=series_uid,
        study_uid=study_uid,
    )


def write_enhanced(
    path: Path,
    values: np.ndarray,
    spacing: tuple[float, float, float] = (0.9, 0.9, 3.0),
    origin: tuple[float, float, float] = (-10.0, -10.0, 0.0),
    modality: str = "CT",
    slope: float = 1.0,
    intercept: float = -1024.0,
    frame_order: list[int] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """An enhanced multi-frame CT/MR; frames may be stored out of spatial order."""
    nz = values.shape[0]
    order = list(range(nz)) if frame_order is None else frame_order
    sop = ENHANCED_CT if modality == "CT" else ENHANCED_MR
    ds = base_dataset(sop, modality, generate_uid(), generate_uid())
    ds.SeriesDescription = f"Enhanced {modality}"
    ds.FrameOfReferenceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.NumberOfFrames = nz
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [spacing[1], spacing[0]]
    pm.SliceThickness = spacing[2]
    po = Dataset()
    po.ImageOrientationPatient = list(AXIAL)
    pv = Dataset()
    pv.RescaleSlope = slope
    pv.RescaleIntercept = intercept
    pv.RescaleType = "HU" if modality == "CT" else "US"
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelValueTransformationSequence = Sequence([pv])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for z in order:
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [origin[0], origin[1], origin[2] + z * spacing[2]]
        item.PlanePositionSequence = Sequence([pp])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    stored = np.round((values[order].astype(float) - intercept) / slope).astype(np.uint16)
    set_pixels(ds, stored)
    if modality == "CT":
        ds.BitsStored, ds.HighBit = 12, 11
    return save(ds, path, transfer_syntax)


def write_2d(
    path: Path,
    values: np.ndarray,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    imager_spacing: tuple[float, float] | None = (0.15, 0.2),
    transfer_syntax: str = ExplicitVRLittleEndian,
    bits_stored: int | None = None,
) -> Path:
    """A single projection image (CR/DX/MG) with ImagerPixelSpacing and no patient position."""
    sop = {"CR": CR_IMAGE, "DX": DX_IMAGE}.get(modality, SC_IMAGE)
    ds = base_dataset(sop, modality, generate_uid(), generate_uid())
    ds.SeriesDescription = f"{modality} chest"
    ds.InstanceNumber = 1
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = [imager_spacing[1], imager_spacing[0]]
    set_pixels(ds, values, photometric)
    if bits_stored is not None:
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
    return save(ds, path, transfer_syntax)


def write_palette(path: Path, indices: np.ndarray, lut_rgb: np.ndarray) -> Path:
    """A PALETTE COLOR image: uint8 indices into an 8-bit (n, 3) LUT."""
    ds = base_dataset(SC_IMAGE, "OT", generate_uid(), generate_uid())
    set_pixels(ds, indices.astype(np.uint8), "PALETTE COLOR")
    n = len(lut_rgb)
    for name, channel in zip(("Red", "Green", "Blue"), lut_rgb.T, strict=True):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [n, 0, 16])
        data = (channel.astype(np.uint16) * 257).astype("<u2").tobytes()
        setattr(ds, f"{name}PaletteColorLookupTableData", data)
    return save(ds, path)


def write_non_image(path: Path, kind: str) -> Path:
    """A valid object without pixels: "sr", "pdf" or "rtstruct"."""
    sop, modality = {
        "sr": (BASIC_TEXT_SR, "SR"),
        "pdf": (ENCAPSULATED_PDF, "DOC"),
        "rtstruct": (RT_STRUCT, "RTSTRUCT"),
    }[kind]
    ds = base_dataset(sop, modality, generate_uid(), generate_uid())
    ds.SeriesDescription = f"a {kind} object"
    if kind == "pdf":
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    elif kind == "sr":
        ds.ValueType = "CONTAINER"
        ds.ContinuityOfContent = "SEPARATE"
    else:
        ds.StructureSetLabel = "Contours"
    return save(ds, path)


def truncate(path: Path, out: Path, keep_fraction: float = 0.6) -> Path:
    """Copy ``path`` to ``out`` cut short (a broken transfer)."""
    data = Path(path).read_bytes()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data[: int(len(data) * keep_fraction)])
    return out


def read_back(path: Path) -> Dataset:
    return pydicom.dcmread(path)


def write_declared(
    path: Path,
    rows: int,
    cols: int,
    frames: int,
    transfer_syntax: str,
    fragment: bytes = b"\xff\x4f\xff\x51" + b"\x00" * 60,
    bits: int = 16,
    modality: str = "CT",
) -> Path:
    """A compressed image whose header declares ``frames`` of ``rows`` × ``cols`` but whose
    pixel data is one tiny fake fragment: the file is a few KB, the declared size is not."""
    from pydicom.encaps import encapsulate

    ds = base_dataset(
        ENHANCED_CT if frames > 1 else CT_IMAGE, modality, generate_uid(), generate_uid()
    )
    ds.SeriesDescription = f"declares {frames} x {cols}x{rows}"
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.5, 0.5]
    ds.ImageOrientationPatient = list(AXIAL)
    ds.ImagePositionPatient = [0, 0, 0]
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def set_attribute(path: Path, keyword: str, value: object) -> Path:
    """Rewrite one header attribute of a written file (values pydicom would refuse to build
    are written as their text)."""
    import warnings

    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return path


def reencode_jpeg_lossless_sv1(paths) -> None:
    """Re-encode DICOM files in place as JPEG lossless process 14 SV1 with GDCM (pydicom has no
    encoder for it). Callers that may run without GDCM skip first (pytest.importorskip)."""
    import gdcm

    for path in paths:
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        if not reader.Read():
            raise OSError(f"GDCM cannot read {path}")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise OSError(f"GDCM cannot re-encode {path} as JPEG lossless")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise OSError(f"GDCM cannot write {path}")
