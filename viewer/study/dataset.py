"""Reading a DICOM dataset as other toolkits write it: with or without the 128-byte
preamble and DICM marker, and the Modality LUT that replaces rescale slope and intercept."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO

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
