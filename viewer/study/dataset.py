"""Reading a DICOM dataset as other toolkits write it: with or without the 128-byte
preamble and DICM marker, the Modality LUT that replaces rescale slope and intercept, the
VOI LUT, and the calibration and cine facts an honest label needs."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from viewer.study.errors import UnreadableFile

#: What a damaged header can make pydicom raise while parsing or converting values.
HEADER_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
    NotImplementedError,
    RecursionError,
    struct.error,
)


def modality_lut(ds: Dataset) -> tuple[int, tuple[int, ...]] | None:
    """The file's Modality LUT as (first mapped stored value, table), through pydicom's own
    apply_modality_lut over every stored value the LUT covers; None when there is none."""
    seq = ds.get("ModalityLUTSequence")
    if not seq:
        return None
    item = seq[0]
    desc = item.get("LUTDescriptor")
    if desc is None or "LUTData" not in item:
        return None
    entries = int(desc[0]) or 65536  # 0 means 2**16 entries
    first = int(desc[1])
    table = pydicom.pixels.apply_modality_lut(np.arange(first, first + entries), ds)
    return first, tuple(int(v) for v in np.asarray(table).ravel())


NOT_DICOM = "not a DICOM file (no DICM marker)"
PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


def _plausible(ds: Dataset, fp: BinaryIO, stop_before_pixels: bool) -> bool:
    """Whether a dataset parsed without the DICM marker holds what an image needs: a
    SOP Class UID that is a UID, or rows, columns and pixel data (junk parses as nonsense)."""
    sop = ds.get("SOPClassUID")
    if sop is not None and re.fullmatch(r"[0-9]+(\.[0-9]+)+", str(sop)):
        return True
    if "Rows" not in ds or "Columns" not in ds:
        return False
    if not stop_before_pixels:
        return "PixelData" in ds
    # pydicom stops with the file at the PixelData element's tag.
    at = fp.tell()
    tag = fp.read(4)
    fp.seek(at)
    return tag in PIXEL_DATA_TAGS


def read_dataset(path: Path, fp: BinaryIO, stop_before_pixels: bool = True) -> Dataset:
    """The dataset of an open DICOM file; a file without the 128-byte preamble and DICM
    marker (old ACR-NEMA style, written by some toolkits) is read too when what it parses
    to is plausibly an image. Raises UnreadableFile naming the file otherwise; pydicom's
    own parse errors (HEADER_ERRORS) pass through for the caller to word."""
    start = fp.tell()
    try:
        return pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    fp.seek(start)
    try:
        ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=True)
        plausible = _plausible(ds, fp, stop_before_pixels)
    except (InvalidDicomError, *HEADER_ERRORS):
        plausible = False
    if not plausible:
        raise UnreadableFile(path, NOT_DICOM) from None
    meta = ds.file_meta if ds.file_meta is not None else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        # No file meta: the syntax is what pydicom found the elements encoded in.
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
        ds.file_meta = meta
    return ds


# -- Calibration and cine facts (how honestly an image can be measured and labelled) ---------

#: Modalities whose images have no patient orientation: photographs, ultrasound, captures.
NO_ORIENTATION_MODALITIES = frozenset({"US", "SC", "OT", "XC", "OP", "OPT", "ES", "GM"})
#: PhysicalUnits{X,Y}Direction code for centimetres (PS3.3 C.8.5.5.1.15).
ULTRASOUND_CM = 3


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def ultrasound_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(x, y) pixel size in mm from SequenceOfUltrasoundRegions: the largest region whose
    physical units are centimetres in both directions (PhysicalDeltaX/Y x 10); None when
    no region is calibrated in cm."""
    best: tuple[float, float, float] | None = None
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        if (
            region.get("PhysicalUnitsXDirection") != ULTRASOUND_CM
            or region.get("PhysicalUnitsYDirection") != ULTRASOUND_CM
        ):
            continue
        dx = _positive(region.get("PhysicalDeltaX"))
        dy = _positive(region.get("PhysicalDeltaY"))
        if dx is None or dy is None:
            continue
        try:
            area = float(
                (
                    int(region.get("RegionLocationMaxX1", 0))
                    - int(region.get("RegionLocationMinX0", 0))
                )
                * (
                    int(region.get("RegionLocationMaxY1", 0))
                    - int(region.get("RegionLocationMinY0", 0))
                )
            )
        except (TypeError, ValueError):
            area = 0.0
        if best is None or area > best[0]:
            best = (area, dx * 10.0, dy * 10.0)
    return None if best is None else (best[1], best[2])


def has_patient_orientation(modality: str, orientation: object) -> bool:
    """Whether rows and columns point somewhere in the patient: not for ultrasound, captures
    and photographs, nor for any image without ImageOrientationPatient."""
    return modality.upper() not in NO_ORIENTATION_MODALITIES and orientation is not None


def frame_time_ms(ds: Dataset) -> float | None:
    """The time between frames of a cine in ms: FrameTime, else the mean of FrameTimeVector
    (its first entry is 0), else from RecommendedDisplayFrameRate or CineRate."""
    value = _positive(ds.get("FrameTime"))
    if value is not None:
        return value
    vector = ds.get("FrameTimeVector")
    if vector is not None:
        try:
            steps = [float(v) for v in (vector if hasattr(vector, "__iter__") else [vector])][1:]
        except (TypeError, ValueError):
            steps = []
        steps = [v for v in steps if math.isfinite(v) and v > 0]
        if steps:
            return float(sum(steps) / len(steps))
    for keyword in ("RecommendedDisplayFrameRate", "CineRate"):
        rate = _positive(ds.get(keyword))
        if rate is not None:
            return 1000.0 / rate
    return None


#: Attributes of a classic (one frame per file) image that tell volumes of a series apart.
CLASSIC_VOLUME_ATTRIBUTES = (
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "EchoNumbers",
    "EchoTime",
    "DiffusionBValue",
    "AcquisitionNumber",
    "TriggerTime",
)
#: Enhanced multi-frame: (functional group sequence, attribute, the name used for splitting).
ENHANCED_VOLUME_ATTRIBUTES = (
    ("FrameContentSequence", "TemporalPositionIndex", "TemporalPositionIndex"),
    ("FrameContentSequence", "StackID", "StackID"),
    ("MREchoSequence", "EffectiveEchoTime", "EchoTime"),
    ("MRDiffusionSequence", "DiffusionBValue", "DiffusionBValue"),
    ("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime", "TriggerTime"),
)


def _scalar(value: object) -> float | str | None:
    """A header value as a number when it is one (the first of several), else its text."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
        items = list(value)  # type: ignore[call-overload]
        if not items:
            return None
        value = items[0]
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value).strip() or None
    return number if math.isfinite(number) else None


def _group_values(group: Dataset | None, out: dict[str, float | str]) -> None:
    if group is None:
        return
    for seq_name, keyword, name in ENHANCED_VOLUME_ATTRIBUTES:
        seq = group.get(seq_name)
        if not seq:
            continue
        value = _scalar(seq[0].get(keyword))
        if value is not None:
            out[name] = value
    content = group.get("FrameContentSequence")
    if content:
        indices = content[0].get("DimensionIndexValues")
        if indices is not None:
            values = list(indices) if hasattr(indices, "__iter__") else [indices]
            for i, v in enumerate(values):
                number = _scalar(v)
                if number is not None:
                    out[f"DimensionIndexValues[{i + 1}]"] = number


def frame_attributes(ds: Dataset, frames: int) -> tuple[tuple[tuple[str, float | str], ...], ...]:
    """Per frame, the (name, value) pairs that may tell volumes apart: the classic
    attributes for every frame of the file, overridden by the enhanced functional groups
    (shared, then the frame's own)."""
    classic: dict[str, float | str] = {}
    for keyword in CLASSIC_VOLUME_ATTRIBUTES:
        value = _scalar(ds.get(keyword))
        if value is not None:
            classic[keyword] = value
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared: dict[str, float | str] = dict(classic)
    _group_values(shared_seq[0] if shared_seq else None, shared)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        one = tuple(sorted(shared.items()))
        return (one,) * frames
    out = []
    for item in per_frame:
        values = dict(shared)
        _group_values(item, values)
        out.append(tuple(sorted(values.items())))
    return tuple(out)


def voi_lut(ds: Dataset) -> tuple[int, int, tuple[int, ...]] | None:
    """The first VOI LUT as (first mapped value, bits per output entry, table), the table
    computed by pydicom's own apply_voi over every value it covers; None when absent."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        return None
    item = seq[0]
    desc = item.get("LUTDescriptor")
    if desc is None or "LUTData" not in item or len(desc) < 3:
        return None
    entries = int(desc[0]) or 65536
    first = int(desc[1])
    bits = int(desc[2])
    if entries > 65536 or not 1 <= bits <= 16:
        return None
    table = pydicom.pixels.apply_voi(np.arange(first, first + entries), ds, index=0)
    return first, bits, tuple(int(v) for v in np.asarray(table).ravel())


# -- Header values as the header code reads them ----------------------------------------------


def _floats(value: Any, n: int | None = None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        seq = (
            list(value)
            if isinstance(value, (list, tuple)) or hasattr(value, "__iter__")
            else [value]
        )
        out = tuple(float(v) for v in seq)
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) != n:
        return None
    return out


def _first_item(ds: Dataset, seq_name: str, *inner: str) -> Dataset | None:
    """ds.<seq_name>[0].<inner[0]>[0]... or None when any link is missing."""
    cur: Any = ds
    for name in (seq_name, *inner):
        seq = getattr(cur, name, None)
        if not seq:
            return None
        cur = seq[0]
    return cur


def _count(ds: Dataset, keyword: str, default: int, lo: int, hi: int) -> int:
    """An integer header attribute within [lo, hi]; ValueError naming it otherwise."""
    value = ds.get(keyword, default)
    if value in (None, ""):
        value = default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{keyword} is {value!r}, not a whole number") from None
    if not lo <= number <= hi:
        raise ValueError(f"{keyword} is {number}, outside {lo}..{hi}")
    return number


def _windows(ds: Dataset) -> tuple[tuple[float, float, str], ...]:
    src = ds
    if "WindowCenter" not in ds:
        voi = _first_item(ds, "SharedFunctionalGroupsSequence", "FrameVOILUTSequence") or (
            _first_item(ds, "PerFrameFunctionalGroupsSequence", "FrameVOILUTSequence")
        )
        if voi is None:
            return ()
        src = voi
    centers = _floats(src.get("WindowCenter"))
    widths = _floats(src.get("WindowWidth"))
    if not centers or not widths:
        return ()
    names = src.get("WindowCenterWidthExplanation", "")
    names = list(names) if isinstance(names, (list, tuple)) or hasattr(names, "append") else [names]
    out = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        if w > 0:
            out.append((c, w, str(names[i]) if i < len(names) else ""))
    return tuple(out)


def _thickness(ds: Dataset) -> float | None:
    value = _floats(ds.get("SliceThickness"), 1)
    if value is None:
        pm = _first_item(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence")
        value = _floats(pm.get("SliceThickness"), 1) if pm is not None else None
    return value[0] if value else None


#: What the calibration, cine and volume facts read (a fast header reader must read them
#: too): keywords, and sequences whose presence sends a file to pydicom.
CALIBRATION_KEYWORDS = (
    "ImagerPixelSpacing",
    "FrameTime",
    "FrameTimeVector",
    "RecommendedDisplayFrameRate",
    "CineRate",
    *CLASSIC_VOLUME_ATTRIBUTES,
)
CALIBRATION_SEQUENCES = ("SequenceOfUltrasoundRegions", "VOILUTSequence")
