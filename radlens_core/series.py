"""The one key under which a series' stored data (labels, results) lives in the user folder."""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"[A-Za-z0-9._-]{1,96}")


def series_key(series_uid: str) -> str:
    """A folder name for a series: the UID itself when it is filename-safe, else its hash.

    ``series_uid`` is ``Volume.series_uid``: the SeriesInstanceUID, or a file hash for
    non-DICOM images. An empty UID has no key: storing data for it would mix series."""
    if not series_uid:
        raise ValueError("a series without a UID has no store key")
    if _SAFE.fullmatch(series_uid) and series_uid not in (".", ".."):
        return series_uid
    return "h-" + hashlib.sha256(series_uid.encode("utf-8")).hexdigest()[:32]
