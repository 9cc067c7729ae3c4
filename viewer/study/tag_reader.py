"""A small DICOM tag reader for the folder scan: the listed attributes of a plain file, fast.

pydicom parses every element and converts each value it is asked for through several
layers (about 0.6 ms a file); a scan of thousands of files only needs some thirty
attributes of files that are nearly always uncompressed-syntax, little-endian and flat.
This reader walks the element headers of such a file (compressed syntaxes included: their
elements are explicit little-endian too) with ``struct``, skips what it does
not need (nested sequences included), converts the listed attributes itself and stops at
the pixel data. Anything outside that plain case returns None and the caller reads the
file with pydicom as before: another transfer syntax (deflated, big-endian, or no file
meta), a listed sequence (enhanced multi-frame functional groups, a Modality LUT),
non-ASCII text (the character set then matters), a value it cannot convert, no pixel data
within ``MAX_HEADER_BYTES``, or nesting deeper than ``MAX_DEPTH``. What it returns is a
``TagSet``: the subset of pydicom's ``Dataset`` interface that ``header_from_dataset``
uses, answering only the keywords of ``HEADER_KEYWORDS`` (any other is a programming error
and raises, so a new attribute read by the header code cannot silently read as missing).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, BinaryIO

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

#: The most header bytes read before giving the file to pydicom.
MAX_HEADER_BYTES = 4 << 20
#: First read: most image headers (private groups included) fit.
FIRST_READ = 16 << 10
#: Nested sequences deeper than this are left to pydicom.
MAX_DEPTH = 12

_PIXEL_DATA = 0x7FE00010
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, _PIXEL_DATA}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
#: Explicit VRs whose length field takes 4 bytes after 2 reserved ones.
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
#: Text VRs whose bytes depend on the Specific Character Set (ASCII reads the same in all).
_CHARSET_VRS = {"LO", "LT", "PN", "SH", "ST", "UC", "UT"}
#: Text VRs kept whole (a backslash is text, not a value separator).
_SINGLE_VRS = {"LT", "ST", "UT", "UR"}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "TM", "UI", *_CHARSET_VRS, *_SINGLE_VRS}
_EXPLICIT = struct.Struct("<I2sH")
_IMPLICIT = struct.Struct("<II")
_LENGTH = struct.Struct("<I")
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}


_NATIVE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}


def _encapsulated_le(syntax: str) -> bool:
    """A compressed syntax (JPEG, JPEG 2000, JPEG-LS, RLE...) whose elements are explicit
    VR little-endian: the header reads the same, the pixel data is encapsulated."""
    try:
        uid = UID(syntax)
        return (
            uid.is_transfer_syntax
            and uid.is_encapsulated
            and uid.is_little_endian
            and not uid.is_implicit_VR
            and not uid.is_deflated
        )
    except (ValueError, AttributeError):
        return False


class _Fallback(Exception):
    """The file is not the plain case: read it with pydicom."""


class TagSet:
    """Converted values of the listed attributes of one file, answered like a Dataset."""

    __slots__ = ("_known", "_values", "file_meta", "original_encoding")

    def __init__(
        self,
        values: dict[str, Any],
        known: frozenset[str],
        transfer_syntax: str,
        implicit: bool,
    ) -> None:
        self._values = values
        self._known = known
        self.file_meta = {"TransferSyntaxUID": transfer_syntax}
        self.original_encoding = (implicit, True)

    def _check(self, keyword: str) -> None:
        if keyword not in self._known:
            raise KeyError(
                f"{keyword} is not read by the fast tag reader: add it to "
                "viewer.study.headers.HEADER_KEYWORDS"
            )

    def get(self, keyword: str, default: Any = None) -> Any:
        if keyword == "file_meta":
            return self.file_meta
        self._check(keyword)
        return self._values.get(keyword, default)

    def __contains__(self, keyword: object) -> bool:
        if not isinstance(keyword, str):
            return False
        self._check(keyword)
        return keyword in self._values

    def __getattr__(self, keyword: str) -> Any:
        if keyword.startswith("_"):
            raise AttributeError(keyword)
        self._check(keyword)
        try:
            return self._values[keyword]
        except KeyError:
            raise AttributeError(keyword) from None


class _Reader:
    """The file's leading bytes, read further only when an element needs them."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.data = fp.read(FIRST_READ)
        self.eof = len(self.data) < FIRST_READ

    def need(self, end: int) -> None:
        while end > len(self.data):
            if self.eof or end > MAX_HEADER_BYTES:
                raise _Fallback
            want = min(MAX_HEADER_BYTES, max(2 * len(self.data), end)) - len(self.data)
            more = self.fp.read(want)
            self.eof = len(more) < want
            self.data += more


class KeywordTable:
    """The tags, keywords and dictionary VRs of a keyword list, resolved once."""

    def __init__(self, keywords: Iterable[str], sequences: Iterable[str]) -> None:
        self.keywords = frozenset(keywords) | frozenset(sequences)
        self.by_tag: dict[int, tuple[str, str]] = {}
        for kw in self.keywords:
            tag = tag_for_keyword(kw)
            if tag is None:
                raise ValueError(f"{kw} is not a DICOM keyword")
            self.by_tag[tag] = (kw, dictionary_VR(tag))
        #: Listed attributes whose presence sends the file to pydicom (sequences).
        self.fallback = {tag_for_keyword(kw) for kw in sequences}


def _convert(vr: str, raw: bytes) -> Any:
    if vr in _TEXT_VRS:
        if vr in _CHARSET_VRS and (max(raw, default=0) >= 0x80 or 0x1B in raw):
            raise _Fallback  # the character set decides what these bytes mean
        text = raw.decode("ascii").rstrip(" \0")
        if vr in _SINGLE_VRS:
            return text
        parts = text.split("\\")
        return parts[0] if len(parts) == 1 else parts
    if vr in ("DS", "IS"):
        text = raw.decode("ascii").rstrip(" \0")
        if not text.strip():
            return None
        parts = text.split("\\")
        try:
            values = [float(p) if vr == "DS" else int(p) for p in parts]
        except ValueError:
            raise _Fallback from None  # pydicom words the damage
        return values[0] if len(values) == 1 else values
    code = _BINARY.get(vr)
    if code is None:
        raise _Fallback  # a listed attribute in an unexpected VR
    size = struct.calcsize(code)
    if not raw:
        return None
    if len(raw) % size:
        raise _Fallback
    values = list(struct.unpack(f"<{len(raw) // size}{code}", raw))
    return values[0] if len(values) == 1 else values


def _header(r: _Reader, pos: int, implicit: bool) -> tuple[int, str | None, int, int]:
    """(tag, explicit VR or None, value length, value offset) of the element at ``pos``."""
    r.need(pos + 8)
    group, elem = struct.unpack_from("<HH", r.data, pos)
    tag = group << 16 | elem
    if implicit or group == 0xFFFE:
        (length,) = struct.unpack_from("<I", r.data, pos + 4)
        return tag, None, length, pos + 8
    vr = r.data[pos + 4 : pos + 6]
    if vr in _LONG_VRS:
        r.need(pos + 12)
        (length,) = struct.unpack_from("<I", r.data, pos + 8)
        return tag, vr.decode("ascii"), length, pos + 12
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Fallback  # not an explicit VR: let pydicom sort the file out
    (length,) = struct.unpack_from("<H", r.data, pos + 6)
    return tag, vr.decode("ascii"), length, pos + 8


def _skip_sequence(r: _Reader, pos: int, implicit: bool, depth: int) -> int:
    """Offset after an undefined-length sequence whose items start at ``pos``."""
    if depth > MAX_DEPTH:
        raise _Fallback
    while True:
        tag, _, length, pos = _header(r, pos, True)
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Fallback
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # an undefined-length item: its elements up to the item delimiter
            tag, vr, length, pos = _header(r, pos, implicit)
            if tag == _ITEM_END:
                break
            if length == _UNDEFINED:
                if vr not in (None, "SQ"):
                    raise _Fallback  # encapsulated or undefined-length UN inside a sequence
                pos = _skip_sequence(r, pos, implicit, depth + 1)
            else:
                pos += length


def read_tags(fp: BinaryIO, table: KeywordTable) -> tuple[TagSet, int] | None:
    """(the listed attributes, offset of the PixelData value) of the plain file open in
    ``fp`` (at its start), or None when pydicom must read it (see the module docstring)."""
    try:
        return _read(_Reader(fp), table)
    except (_Fallback, struct.error, UnicodeDecodeError):
        return None


def _read(r: _Reader, table: KeywordTable) -> tuple[TagSet, int] | None:
    r.need(132 + 12)
    if r.data[128:132] != b"DICM":
        return None
    pos, syntax = 132, None
    while True:  # the file meta group, always explicit little-endian
        r.need(pos + 8)
        if struct.unpack_from("<H", r.data, pos)[0] != 0x0002:
            break
        tag, vr, length, start = _header(r, pos, False)
        if length == _UNDEFINED:
            return None
        if tag == 0x00020010:
            r.need(start + length)
            syntax = r.data[start : start + length].decode("ascii").rstrip(" \0")
        pos = start + length
    if syntax == ImplicitVRLittleEndian:
        implicit = True
    elif syntax == ExplicitVRLittleEndian or _encapsulated_le(syntax):
        implicit = False
    else:
        return None
    values: dict[str, Any] = {}
    by_tag = table.by_tag
    fallback = table.fallback
    # The hot loop of a scan: element headers unpacked in one call, the buffer re-read only
    # when an element runs past it.
    explicit_head = _EXPLICIT.unpack_from
    implicit_head = _IMPLICIT.unpack_from
    long_length = _LENGTH.unpack_from
    data, end = r.data, len(r.data)
    while True:
        if pos + 12 > end:
            r.need(pos + 8)
            data, end = r.data, len(r.data)
        if implicit:
            swapped, length = implicit_head(data, pos)
            vr = None
            start = pos + 8
        else:
            swapped, vr_bytes, length = explicit_head(data, pos)
            if vr_bytes in _LONG_VRS:
                r.need(pos + 12)
                data, end = r.data, len(r.data)
                (length,) = long_length(data, pos + 8)
                start = pos + 12
            elif (swapped & 0xFFFF) == 0xFFFE:
                return None  # a delimiter at the top level: damaged, pydicom's to word
            else:
                if not (65 <= vr_bytes[0] <= 90 and 65 <= vr_bytes[1] <= 90):
                    return None
                start = pos + 8
            vr = vr_bytes.decode("ascii")
        tag = (swapped & 0xFFFF) << 16 | swapped >> 16
        if tag in _PIXEL_TAGS:
            if tag != _PIXEL_DATA or (length == _UNDEFINED) != (syntax not in _NATIVE):
                return None  # float pixels, or pixel data not stored as its syntax says
            return TagSet(values, table.keywords, syntax, implicit), start
        if tag in fallback:
            return None
        if length == _UNDEFINED:
            if vr not in (None, "SQ"):
                return None
            pos = _skip_sequence(r, start, implicit, 1)
            data, end = r.data, len(r.data)
            continue
        pos = start + length
        wanted = by_tag.get(tag)
        if wanted is not None:
            keyword, dict_vr = wanted
            if vr is None:
                vr = dict_vr
            if len(vr) != 2:
                return None  # an ambiguous dictionary VR ("US or SS") in an implicit file
            if pos > end:
                r.need(pos)
                data, end = r.data, len(r.data)
            values[keyword] = _convert(vr, data[start:pos])
