"""A compressed greyscale frame decoded straight from its codestream, with no pydicom Dataset.

The header pass already knows where a file's encapsulated PixelData starts
(``FileHeader.encapsulated_offset``): the frame's fragments are read there and joined with
``pydicom.encaps``, handed to the field's decoder library and given pydicom's own sign and
unused-bit corrections, so the array is the one ``Dataset.pixel_array`` gives (the tests
compare them on every syntax, signed and unsigned). Parsing the file again with pydicom and
going through its decoder runner cost 0.5-1 ms a frame, as much as a whole RLE decode.

Decoder per syntax: the fastest installed, measured as CPU ms per 512×512 16-bit CT frame
on this machine (tests/benchmarks/test_bench_folder_load.py's series):

- JPEG lossless (processes 14, 14 SV1): imagecodecs' libjpeg-turbo 3 (``jpeg8_decode``)
  1.6, GDCM 4.4 (what SimpleITK uses), pylibjpeg-libjpeg 8.6;
- JPEG-LS: pyjpegls (CharLS) 4.5, imagecodecs (CharLS) 4.9, GDCM 6.5, pylibjpeg 21
  (imagecodecs first all the same: it decodes without the GIL, see below);
- JPEG 2000: imagecodecs (OpenJPEG) 27.5, pylibjpeg-openjpeg 28, GDCM 31 (one library
  underneath: no decoder is faster, only more cores are);
- RLE: imagecodecs 0.20, pylibjpeg-rle 0.27, pydicom's numpy decoder 1.3.

imagecodecs releases the GIL while it decodes (its codecs run ``with nogil``, as tifffile's
threaded tile decoding relies on), so a series it decodes is decoded on the loading
process's own threads, in parallel, with no decoder processes to start; the other
libraries hold the GIL and go to decoder processes (viewer.study.decode).

Anything outside the plain case (colour, palette, more than one sample, a codestream
whose size or component count is not the header's, a decoder missing or failing) answers
None and the caller decodes through pydicom as before, which also words the damage.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom.encaps import encapsulate, generate_frames

from viewer.study.codestream import frame_size
from viewer.study.headers import FileHeader
from viewer.study.opening import open_regular

JPEG_LOSSLESS = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
JPEG_2000 = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
RLE = {"1.2.840.10008.1.2.5"}
DIRECT_SYNTAXES = JPEG_LOSSLESS | JPEG_LS | JPEG_2000 | RLE

#: (7FE0,0010) OB with undefined length: what must precede the value at the offset.
_PIXEL_ELEMENT = (0x7FE0, 0x0010)
_UNDEFINED = 0xFFFFFFFF
#: What a JPEG, JPEG-LS and JPEG 2000 codestream ends with (EOI, EOC).
_END = b"\xff\xd9"
#: A compressed frame longer than this many times its decoded size is not read here.
MAX_EXPANSION = 2


def _module(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_MODULES: dict[str, Any] = {}


def _lib(name: str) -> Any | None:
    if name not in _MODULES:
        _MODULES[name] = _module(name)
    return _MODULES[name]


def plain(h: FileHeader) -> bool:
    """Whether ``h``'s frames can be decoded here: one greyscale sample of 8 or 16 bits in
    a syntax with a direct decoder."""
    return (
        h.transfer_syntax in DIRECT_SYNTAXES
        and h.samples_per_pixel == 1
        and h.photometric in ("MONOCHROME1", "MONOCHROME2")
        and h.bits_allocated in (8, 16)
        and 0 < h.bits_stored <= h.bits_allocated
    )


def read_codestream(h: FileHeader) -> bytes | None:
    """The one frame of single-frame file ``h``, read at its encapsulated PixelData offset
    (its fragments joined), or None when the file is not laid out as the scan found it."""
    offset = h.encapsulated_offset
    if offset is None or h.frames != 1 or offset < 12:
        return None
    limit = MAX_EXPANSION * h.rows * h.cols * h.bits_allocated // 8 + (64 << 10)
    with open_regular(h.path) as fp:
        size = os.fstat(fp.fileno()).st_size
        if size - offset > limit:
            return None
        fp.seek(offset - 12)
        head = fp.read(12)
        if len(head) < 12:
            return None
        group, element, vr, _, length = struct.unpack("<HH2sHI", head)
        if (group, element) != _PIXEL_ELEMENT or vr not in (b"OB", b"OW") or length != _UNDEFINED:
            return None  # the file changed since it was scanned: pydicom reads it again
        data = fp.read(size - offset)
    try:
        return next(generate_frames(data, number_of_frames=1))
    except (ValueError, StopIteration, struct.error):
        return None


def _dtype(h: FileHeader, itemsize: int) -> np.dtype:
    return np.dtype(f"<{'i' if h.pixel_representation else 'u'}{itemsize}")


def _shift(arr: np.ndarray, bits: int) -> np.ndarray:
    """Sign-extend (signed) or mask (unsigned) values of ``bits`` bits, as pydicom does."""
    shift = 8 * arr.dtype.itemsize - bits
    if shift > 0:
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


def _precision_itemsize(precision: int) -> int | None:
    if 0 < precision <= 8:
        return 1
    return 2 if 8 < precision <= 16 else None


def _jpeg_precision(data: bytes) -> int | None:
    """The sample precision a JPEG's start-of-frame declares (the byte before its size)."""
    at = 2
    end = min(len(data), 64 << 10)
    while at + 4 <= end and data[at] == 0xFF:
        marker = data[at + 1]
        if marker in (0xC3, 0xC7, 0xCB, 0xCF, 0xF7):  # lossless SOFs, JPEG-LS SOF55
            return data[at + 4] if at + 5 <= len(data) else None
        if marker == 0xFF:
            at += 1
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        at += 2 + length
    return None


def _through_pydicom(h: FileHeader, data: bytes, plugin: str) -> np.ndarray | None:
    """pydicom's decoder ``plugin`` on the codestream, its pixel description given as
    arguments (no Dataset): pydicom's corrections exactly, its runner's cost (~0.3 ms)."""
    from pydicom.pixels.decoders.base import get_decoder

    decoder = get_decoder(h.transfer_syntax)
    if plugin not in decoder.available_plugins:
        return None
    arr, _ = decoder.as_array(
        encapsulate([data]),
        rows=h.rows,
        columns=h.cols,
        samples_per_pixel=1,
        bits_allocated=h.bits_allocated,
        bits_stored=h.bits_stored,
        pixel_representation=h.pixel_representation,
        photometric_interpretation=h.photometric,
        number_of_frames=1,
        decoding_plugin=plugin,
    )
    return arr


def _jpeg_lossless(h: FileHeader, data: bytes) -> np.ndarray | None:
    codecs = _lib("imagecodecs")
    if codecs is None or not getattr(codecs, "JPEG8", None) or not codecs.JPEG8.available:
        return _through_pydicom(h, data, "gdcm")  # the next fastest
    arr = codecs.jpeg8_decode(data)
    dtype = _dtype(h, h.bits_allocated // 8)
    arr = arr.view(dtype) if arr.dtype.itemsize == dtype.itemsize else arr.astype(dtype)
    return _shift(arr, h.bits_stored)  # pydicom's correct_unused_bits for JPEG


def _jpeg_ls(h: FileHeader, data: bytes) -> np.ndarray | None:
    precision = _jpeg_precision(data)
    itemsize = _precision_itemsize(precision or 0)
    if itemsize is None or precision is None:
        return None
    codecs = _lib("imagecodecs")
    jpeg_ls = _lib("jpeg_ls")
    if codecs is not None and codecs.JPEGLS.available:
        decoded = codecs.jpegls_decode(data)  # without the GIL: threads decode in parallel
        if decoded.dtype.itemsize != itemsize:
            return None
        arr = decoded.view(_dtype(h, itemsize))
    elif jpeg_ls is not None:
        buffer, info = jpeg_ls.decode_pixel_data(data)
        if info.get("components", 1) != 1 or info.get("bits_per_sample") != precision:
            return None
        arr = np.frombuffer(buffer, _dtype(h, itemsize))
    else:
        return None
    arr = arr.reshape(-1)
    if not arr.flags.writeable:
        arr = arr.copy()
    # JPEG-LS has no sign: pydicom sign-extends signed data from the codestream's precision.
    return _shift(arr, precision) if h.pixel_representation else arr


def _j2k_component(data: bytes) -> tuple[int, bool, int] | None:
    """(precision, signed, components) from a bare J2K codestream's SIZ marker segment."""
    if not data.startswith(b"\xff\x4f\xff\x51") or len(data) < 4 + 41:
        return None
    (components,) = struct.unpack_from(">H", data, 4 + 36)
    ssiz = data[4 + 38]
    return (ssiz & 0x7F) + 1, bool(ssiz & 0x80), components


def _jpeg_2000(h: FileHeader, data: bytes) -> np.ndarray | None:
    siz = _j2k_component(data)
    if siz is None:
        return None  # a JP2 file rather than a codestream: pydicom's decoders handle it
    precision, signed, components = siz
    itemsize = _precision_itemsize(precision)
    if itemsize is None or components != 1:
        return None
    codecs = _lib("imagecodecs")
    openjpeg = _lib("openjpeg")
    if codecs is not None and codecs.JPEG2K.available:
        arr = codecs.jpeg2k_decode(data)  # without the GIL: threads decode in parallel
    elif openjpeg is not None:
        arr = openjpeg.decode(data)
    else:
        return None
    if arr.dtype.itemsize != itemsize:
        return None
    arr = arr.view(_dtype(h, itemsize))
    if not arr.flags.writeable:
        arr = arr.copy()
    if signed != bool(h.pixel_representation):
        _shift(arr, precision)  # pydicom's J2K sign correction
    return arr


def _rle(h: FileHeader, data: bytes) -> np.ndarray | None:
    dtype = _dtype(h, h.bits_allocated // 8)
    codecs = _lib("imagecodecs")
    if codecs is not None and codecs.DICOMRLE.available:
        arr = np.frombuffer(codecs.dicomrle_decode(data, dtype.str), dtype)
    else:
        rle = _lib("rle")
        if rle is None:
            return None
        arr = np.frombuffer(
            rle.decode_pixel_data(
                data, version=2, rows=h.rows, columns=h.cols, bits_allocated=h.bits_allocated
            ),
            dtype,
        )
    arr = arr.reshape(-1)
    if not arr.flags.writeable:
        arr = arr.copy()
    return _shift(arr, h.bits_stored)  # pydicom's correct_unused_bits


_DECODERS: dict[str, Callable[[FileHeader, bytes], np.ndarray | None]] = {
    **dict.fromkeys(JPEG_LOSSLESS, _jpeg_lossless),
    **dict.fromkeys(JPEG_LS, _jpeg_ls),
    **dict.fromkeys(JPEG_2000, _jpeg_2000),
    **dict.fromkeys(RLE, _rle),
}

#: What the decoder libraries raise on a codestream they cannot read.
_LIBRARY_ERRORS = (RuntimeError, ValueError, TypeError, KeyError, IndexError, OverflowError)


def decode_codestream(h: FileHeader, data: bytes) -> np.ndarray | None:
    """Frame ``data`` of a file described by ``h`` as (rows, cols) stored values, or None
    when it is not the plain case or the library refuses it (pydicom's path then decides)."""
    if not plain(h):
        return None
    size = frame_size(data, h.transfer_syntax)
    if size is not None and size != (h.rows, h.cols, 1):
        return None  # another size or several components: pydicom's checks word it
    if h.transfer_syntax not in RLE and not bytes(data[-4:]).rstrip(b"\0").endswith(_END):
        # No end-of-image marker: a truncated frame, which libjpeg-turbo and OpenJPEG would
        # decode with a grey or blank remainder; pydicom's decoders refuse it in a sentence.
        return None
    try:
        arr = _DECODERS[h.transfer_syntax](h, data)
    except _LIBRARY_ERRORS:
        return None
    if arr is None or arr.size != h.rows * h.cols:
        return None
    return arr.reshape(h.rows, h.cols)


def decode_file_direct(h: FileHeader) -> np.ndarray | None:
    """Single-frame file ``h`` decoded from its codestream, or None (see decode_codestream)."""
    if not plain(h):
        return None
    data = read_codestream(h)
    return None if data is None else decode_codestream(h, data)


#: imagecodecs' codec per syntax: it decodes without holding the GIL (``with nogil``), so
#: the loading process's own threads decode frames in parallel, no processes needed.
_GIL_FREE = {
    **dict.fromkeys(JPEG_LOSSLESS, "JPEG8"),
    **dict.fromkeys(JPEG_LS, "JPEGLS"),
    **dict.fromkeys(JPEG_2000, "JPEG2K"),
    **dict.fromkeys(RLE, "DICOMRLE"),
}


def decodes_without_gil(h: FileHeader) -> bool:
    """Whether ``h``'s frames are decoded here by a library that releases the GIL."""
    codecs = _lib("imagecodecs")
    codec = _GIL_FREE.get(h.transfer_syntax)
    return bool(
        plain(h)
        and codec is not None
        and codecs is not None
        and getattr(codecs, codec).available
        and (h.frames > 1 or h.encapsulated_offset is not None)
    )


def decoder_names() -> dict[str, str]:
    """Which library decodes each syntax family here (for the benchmark's report)."""
    codecs = _lib("imagecodecs")
    has = (
        (lambda name: codecs is not None and getattr(codecs, name).available)
        if codecs
        else (lambda name: False)
    )
    return {
        "JPEG lossless": "imagecodecs (libjpeg-turbo)" if has("JPEG8") else "pydicom: gdcm",
        "JPEG-LS": "imagecodecs (CharLS)"
        if has("JPEGLS")
        else ("pyjpegls (CharLS)" if _lib("jpeg_ls") else "pydicom"),
        "JPEG 2000": "imagecodecs (OpenJPEG)"
        if has("JPEG2K")
        else ("pylibjpeg-openjpeg" if _lib("openjpeg") else "pydicom"),
        "RLE": "imagecodecs"
        if has("DICOMRLE")
        else ("pylibjpeg-rle" if _lib("rle") else "pydicom"),
    }
