"""The image size a compressed frame declares in its own codestream (JPEG, JPEG-LS, JPEG 2000).

A decoder allocates what the codestream says, not what the DICOM header says: a file whose
header declares 64×64 may carry a JPEG 2000 codestream of 65535×65535. The frame's own
declaration is read (a few bytes) and compared with the header before anything is decoded.
"""

from __future__ import annotations

import struct

#: JPEG start-of-frame markers (baseline, extended, progressive, lossless, JPEG-LS).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
#: How far into a frame a size declaration is looked for.
_SEARCH = 64 * 1024


def _jpeg_size(data: bytes) -> tuple[int, int, int] | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    end = min(len(data), _SEARCH)
    while i + 4 <= end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 10 > len(data):
                return None
            rows, cols = struct.unpack(">HH", data[i + 5 : i + 9])
            return rows, cols, data[i + 9]
        i += 2 + length
    return None


#: The signature box a JP2 file (not a bare codestream) starts with.
_JP2 = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _j2k_size(data: bytes) -> tuple[int, int, int] | None:
    if data.startswith(b"\xff\x4f\xff\x51"):  # SOC then SIZ
        at = 0
    elif data.startswith(_JP2):  # a JP2 file: the codestream is in its jp2c box
        at = data.find(b"\xff\x4f\xff\x51", 0, _SEARCH)
    else:
        return None
    if at < 0 or at + 4 + 38 > len(data):
        return None
    siz = data[at + 4 :]
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", siz[4:20])
    (components,) = struct.unpack(">H", siz[36:38])
    return max(0, ysiz - yo), max(0, xsiz - xo), components


#: Transfer syntaxes whose frames are JPEG (incl. lossless and JPEG-LS) or JPEG 2000
#: (incl. HTJ2K) codestreams.
JPEG_SYNTAXES = {f"1.2.840.10008.1.2.4.{n}" for n in (50, 51, 57, 70, 80, 81)}
J2K_SYNTAXES = {f"1.2.840.10008.1.2.4.{n}" for n in (90, 91, 92, 93, 201, 202, 203)}


def frame_size(frame: bytes, transfer_syntax: str) -> tuple[int, int, int] | None:
    """(rows, columns, components) a compressed frame declares, or None when its syntax is
    neither JPEG nor JPEG 2000 (RLE, deflate: their decoders follow the header) or the
    codestream cannot be parsed (the decoder then words the damage)."""
    if transfer_syntax in JPEG_SYNTAXES:
        return _jpeg_size(frame)
    if transfer_syntax in J2K_SYNTAXES:
        return _j2k_size(frame)
    return None
