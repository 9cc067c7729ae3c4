"""Reading one DICOM file's header (the fast tag reader, else pydicom) into a FileHeader.

The record itself lives in viewer.study.file_header; FileHeader, decoded_pixel_bytes and
frames_text are still importable from here.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from radlens_core.limits import ENV_VAR, human_bytes, max_alloc_bytes, refusal
from viewer.study.dataset import (
    CALIBRATION_KEYWORDS,
    CALIBRATION_SEQUENCES,
    HEADER_ERRORS,
    NOT_DICOM,
    _count,
    _first_item,
    _floats,
    _thickness,
    _windows,
    frame_attributes,
    frame_time_ms,
    has_patient_orientation,
    modality_lut,
    read_dataset,
    ultrasound_spacing,
    voi_lut,
)
from viewer.study.errors import NotAnImage, TooLarge, UnreadableFile
from viewer.study.file_header import FileHeader, decoded_pixel_bytes, frames_text
from viewer.study.opening import open_regular
from viewer.study.tag_reader import KeywordTable, read_tags

#: Every attribute the header code (header_from_dataset, modality_lut, the scan's series
#: fields) reads from a dataset. The folder scan reads these, and only these, with the fast
#: tag reader (viewer.study.tag_reader): a keyword read but missing here raises at once.
#: Add a keyword here when the header code starts reading it.
HEADER_KEYWORDS = (
    "BitsAllocated",
    "BitsStored",
    "Columns",
    "DoseGridScaling",
    "GridFrameOffsetVector",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "ImagerPixelSpacing",
    "InstanceNumber",
    "Modality",
    "NumberOfFrames",
    "PatientID",
    "PatientName",
    "PhotometricInterpretation",
    "PixelRepresentation",
    "PixelSpacing",
    "RescaleIntercept",
    "RescaleSlope",
    "Rows",
    "SOPClassUID",
    "SOPInstanceUID",
    "SamplesPerPixel",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SliceThickness",
    "StudyDate",
    "StudyDescription",
    "StudyInstanceUID",
    "WindowCenter",
    "WindowCenterWidthExplanation",
    "WindowWidth",
    # what the multi-volume split, calibration, cine and VOI LUT read (viewer.study.dataset)
    *CALIBRATION_KEYWORDS,
)
#: Sequences the header code reads: a file holding one is read with pydicom instead.
HEADER_SEQUENCES = (
    "ModalityLUTSequence",
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
    *CALIBRATION_SEQUENCES,
)

#: SOP classes that hold no pixels to show: listed by the scan, never loaded.
NON_IMAGE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "encapsulated CDA",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT structure set",
    "1.2.840.10008.5.1.4.1.1.481.5": "RT plan",
    "1.2.840.10008.5.1.4.1.1.481.4": "RT beams treatment record",
    "1.2.840.10008.5.1.4.1.1.11.1": "presentation state",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
    "1.2.840.10008.5.1.4.1.1.66.1": "spatial registration",
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation",
    "1.2.840.10008.1.3.10": "media directory (DICOMDIR)",
}
#: Uncompressed little-endian syntaxes whose pixels can be read straight from the file.
RAW_SYNTAXES = {ImplicitVRLittleEndian, ExplicitVRLittleEndian}


@functools.lru_cache(maxsize=64)
def _encapsulated(syntax: str) -> bool:
    try:
        uid = pydicom.uid.UID(syntax)
        return uid.is_transfer_syntax and uid.is_encapsulated and not uid.is_deflated
    except ValueError:  # a private syntax: pydicom cannot tell
        return False


def non_image_kind(sop_class_uid: str) -> str | None:
    """A short name for a SOP class without pixels (SR, PDF, RTSTRUCT...), else None."""
    if sop_class_uid in NON_IMAGE_SOP_CLASSES:
        return NON_IMAGE_SOP_CLASSES[sop_class_uid]
    if sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return "structured report"
    return None


def header_from_dataset(
    ds: Dataset, path: Path, pixel_offset: int | None = None, keep: bool = False
) -> FileHeader:
    """Reduce a (header-only) dataset to a FileHeader; raises NotAnImage for pixel-less objects."""
    sop_class = str(ds.get("SOPClassUID", ""))
    kind = non_image_kind(sop_class)
    if kind is not None or "Rows" not in ds or "Columns" not in ds:
        raise NotAnImage(path, f"{kind or 'DICOM object without pixels'}: nothing to display")
    rows = _count(ds, "Rows", 0, 0, 2**32 - 1)
    cols = _count(ds, "Columns", 0, 0, 2**32 - 1)
    frames = _count(ds, "NumberOfFrames", 1, 0, 2**32 - 1) or 1
    samples = _count(ds, "SamplesPerPixel", 1, 1, 4) or 1
    bits_allocated = _count(ds, "BitsAllocated", 16, 1, 64) or 16
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    # The memory decoding would take, from the header alone: checked before anything that
    # grows with the frame count is built (a header may declare billions of frames).
    refused = refusal(
        rows * cols * frames * decoded_pixel_bytes(samples, bits_allocated, photometric),
        frames_text(frames, rows, cols, samples, bits_allocated),
    )
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")

    spacing = _floats(ds.get("PixelSpacing"), 2)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    positions: list[tuple[float, float, float] | None]
    if refused is not None:
        positions = []
    elif per_frame:
        # Enhanced multi-frame: geometry lives in the functional groups (shared, then frame 1).
        for group in (shared[0] if shared else None, per_frame[0]):
            if group is None:
                continue
            pm = _first_item(group, "PixelMeasuresSequence")
            if pm is not None and spacing is None:
                spacing = _floats(pm.get("PixelSpacing"), 2)
            po = _first_item(group, "PlaneOrientationSequence")
            if po is not None and orientation is None:
                orientation = _floats(po.get("ImageOrientationPatient"), 6)
            pv = _first_item(group, "PixelValueTransformationSequence")
            if pv is not None and "RescaleSlope" in pv:
                slope = float(pv.get("RescaleSlope", 1.0) or 1.0)
                intercept = float(pv.get("RescaleIntercept", 0.0) or 0.0)
        positions = []
        for item in per_frame:
            pp = _first_item(item, "PlanePositionSequence")
            pos = _floats(pp.get("ImagePositionPatient"), 3) if pp is not None else None
            positions.append(pos)  # type: ignore[arg-type]
    else:
        pos = _floats(ds.get("ImagePositionPatient"), 3)
        offsets = _floats(ds.get("GridFrameOffsetVector"))
        if frames == 1:
            positions = [pos]  # type: ignore[list-item]
        elif pos is not None and offsets is not None and len(offsets) == frames:
            # RT dose and similar: frame k lies at IPP + offset[k] along the slice normal.
            n = slice_normal(orientation)
            positions = [tuple(float(v) for v in np.asarray(pos) + o * n) for o in offsets]  # type: ignore[misc]
        else:
            positions = [None] * frames
    spacing_source = "patient"
    if spacing is None:
        # Projection images: the size at the detector (the patient is magnified onto it).
        spacing = _floats(ds.get("ImagerPixelSpacing"), 2)
        spacing_source = "detector"
    if spacing is None:
        regions = ultrasound_spacing(ds)  # already (x, y)
        spacing = None if regions is None else (regions[1], regions[0])
        spacing_source = "ultrasound"
    if spacing is None:
        spacing_source = "none"
    dose_scaling = ds.get("DoseGridScaling")
    if dose_scaling not in (None, ""):
        # RT dose: stored value x DoseGridScaling = dose in DoseUnits (Gy or relative).
        scaling = float(dose_scaling)
        if math.isfinite(scaling) and scaling > 0:
            slope *= scaling
    lut = modality_lut(ds)
    if lut is not None:
        slope, intercept = 1.0, 0.0  # the LUT is the modality transform (C.11.1)
    if spacing is not None:
        # DICOM PixelSpacing is (row spacing, column spacing); Volume wants (x, y).
        spacing = (spacing[1], spacing[0])
    ts = (
        str(ds.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian))
        if ds.get("file_meta") is not None
        else str(ImplicitVRLittleEndian)
    )
    modality = str(ds.get("Modality", "OT") or "OT")
    inst = ds.get("InstanceNumber")
    try:
        instance_number = int(inst) if inst not in (None, "") else None
    except (TypeError, ValueError):
        instance_number = None
    return FileHeader(
        path=path,
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_class_uid=sop_class,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        modality=modality,
        instance_number=instance_number,
        rows=rows,
        cols=cols,
        frames=frames,
        samples_per_pixel=samples,
        photometric=photometric,
        bits_allocated=bits_allocated,
        bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16),
        pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
        transfer_syntax=ts,
        pixel_offset=pixel_offset if ts in RAW_SYNTAXES else None,
        encapsulated_offset=pixel_offset if _encapsulated(ts) else None,
        pixel_spacing=spacing,  # type: ignore[arg-type]
        orientation=orientation,
        positions=tuple(positions),
        slope=slope,
        intercept=intercept,
        windows=_windows(ds),
        slice_thickness=_thickness(ds),
        refused=refused,
        spacing_source=spacing_source,
        patient_orientation=has_patient_orientation(modality, orientation),
        frame_time_ms=frame_time_ms(ds) if frames > 1 else None,
        frame_attributes=frame_attributes(ds, frames) if refused is None else (),
        voi_lut=voi_lut(ds),
        modality_lut=lut,
        dataset=ds if keep else None,
    )


DEFLATED = b"1.2.840.10008.1.2.1.99"


def _check_deflated(path: Path, fp: BinaryIO) -> None:
    """A deflated dataset is inflated whole by pydicom before any attribute is read, and
    deflate expands up to a thousandfold: measure what it inflates to (streaming, nothing
    kept) and refuse it above the memory limit. Leaves ``fp`` at the start."""
    head = fp.read(144)
    # The file meta group follows the preamble and DICM, or opens a file written without them.
    start = 132 if head[128:132] == b"DICM" else 0
    if len(head) < start + 12 or head[start : start + 4] != b"\x02\x00\x00\x00":
        fp.seek(0)
        return
    (group_length,) = struct.unpack("<I", head[start + 8 : start + 12])
    fp.seek(start + 12)
    meta = fp.read(min(group_length, 1 << 16))
    if DEFLATED not in meta:
        fp.seek(0)
        return
    fp.seek(start + 12 + group_length)
    limit = max_alloc_bytes()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        while total <= limit:
            chunk = inflater.unconsumed_tail or fp.read(1 << 20)
            if not chunk:
                break
            total += len(inflater.decompress(chunk, 1 << 24))
    except zlib.error:
        pass  # pydicom words the damage itself
    fp.seek(0)
    if total > limit:
        raise TooLarge(
            path,
            f"its deflated data inflates to more than {human_bytes(limit)}, the most one "
            f"image may use on this computer; not read ({ENV_VAR} sets the limit)",
        )


_TABLE: list[KeywordTable] = []


def _keyword_table() -> KeywordTable:
    if not _TABLE:
        _TABLE.append(KeywordTable(HEADER_KEYWORDS, HEADER_SEQUENCES))
    return _TABLE[0]


def read_header(path: Path, keep: bool = False, full: bool = False) -> FileHeader:
    """Read one file's header (no pixels); raises UnreadableFile or NotAnImage naming the file.

    A plain file (uncompressed little-endian, flat, ASCII) is read by the fast tag reader;
    the dataset ``keep`` keeps is then its TagSet, which answers HEADER_KEYWORDS only (what
    the folder scan needs). ``full`` reads with pydicom and keeps the whole header.
    """
    path = Path(path)
    fast = None
    try:
        with open_regular(path) as fp:
            if not full:
                fast = read_tags(fp, _keyword_table())
                if fast is None:
                    fp.seek(0)
            if fast is None:
                _check_deflated(path, fp)
                ds = read_dataset(path, fp, stop_before_pixels=True)
                # pydicom rewinds to the start of the PixelData element when it stops there.
                tag_start = fp.tell()
            size = os.fstat(fp.fileno()).st_size
    except InvalidDicomError:
        raise UnreadableFile(path, NOT_DICOM) from None
    except PermissionError:
        raise UnreadableFile(path, "permission denied; check the file's read rights") from None
    except HEADER_ERRORS as exc:
        raise UnreadableFile(path, f"damaged or truncated DICOM header ({exc})") from None
    if fast is not None:
        ds, offset = fast  # type: ignore[assignment]
    if "SOPClassUID" not in ds and "Rows" not in ds and "PatientID" not in ds:
        raise UnreadableFile(path, "not a DICOM file (no image or patient attributes)")
    sop_name = pydicom.uid.UID(str(ds.get("SOPClassUID", ""))).name
    if "Rows" not in ds and "Image" in sop_name:
        # An image object whose header stops short: a broken copy, not a report.
        raise UnreadableFile(
            path, f"truncated or damaged {sop_name}: the image attributes are missing"
        )
    if fast is None:
        explicit = not ds.original_encoding[0] if ds.original_encoding[0] is not None else False
        offset = tag_start + (12 if explicit else 8)
    try:
        header = header_from_dataset(ds, path, offset, keep=keep)
    except HEADER_ERRORS as exc:
        raise UnreadableFile(path, f"invalid header value ({exc})") from None
    if header.pixel_offset is not None and header.refused is None:
        need = header.expected_pixel_bytes()
        if size < header.pixel_offset + need:
            short = header.pixel_offset + need - size
            raise UnreadableFile(
                path,
                f"truncated: its pixels need {need} bytes"
                + (f" ({human_bytes(need)})" if need >= 1024 else "")
                + f" but the file ends {short} bytes short",
            )
    return header


def slice_normal(orientation: tuple[float, ...] | None) -> np.ndarray:
    """Unit normal of the slice plane (row x column cosines); +z when orientation is unknown."""
    if orientation is None:
        return np.array([0.0, 0.0, 1.0])
    row = np.asarray(orientation[:3], float)
    col = np.asarray(orientation[3:], float)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
