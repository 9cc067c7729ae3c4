"""How one scan-cache entry is written and read back: header values as JSON, FileHeader as a
row of its fields, records with paths and tuples tagged (viewer.study.scan_cache keeps them).
A damaged or unknown value raises: the entry is not used and the file is read again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from viewer.study.headers import HEADER_KEYWORDS, HEADER_SEQUENCES, FileHeader
from viewer.study.tag_reader import TagSet

_KNOWN = frozenset(HEADER_KEYWORDS) | frozenset(HEADER_SEQUENCES)


class _NotCached(Exception):
    """A value this cache does not know how to keep: the entry is simply not stored."""


def _plain(value: Any) -> Any:
    """A header value as JSON: text, numbers, lists of them."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # IS and other int subclasses
    if isinstance(value, float):
        return float(value)  # DSfloat
    if isinstance(value, Sequence):
        raise _NotCached
    if isinstance(value, (list, tuple, MultiValue)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        raise _NotCached
    return str(value)  # PersonName, UID and other str-like values


def _tags(ds: Any) -> dict[str, Any]:
    out = {}
    for kw in HEADER_KEYWORDS:
        if kw in ds:
            try:
                out[kw] = _plain(ds.get(kw))
            except _NotCached:
                continue
    return out


def _tagset(tags: dict[str, Any], syntax: str) -> TagSet:
    return TagSet(dict(tags), _KNOWN, syntax, False)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return {"p": str(value)}
    if isinstance(value, tuple):
        return {"t": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, FileHeader):
        return {"h": _fields(value)}
    if hasattr(value, "item") and hasattr(value, "dtype"):
        return value.item()  # a numpy scalar
    raise _NotCached


def _fields(record: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(record):
        if f.name == "dataset":
            continue
        out[f.name] = _encode(getattr(record, f.name))
    return out


#: FileHeader fields in order, without the dataset: a cached header is the list of their
#: values (arrays read back as tuples: FileHeader holds no lists).
_HEADER_FIELDS = [f.name for f in dataclasses.fields(FileHeader) if f.name != "dataset"]
_HEADER_OK = not any(
    str(f.type).startswith(("list", "dict", "set")) for f in dataclasses.fields(FileHeader)
)


def _tuples(value: list[Any]) -> tuple[Any, ...]:
    return tuple(_tuples(v) if type(v) is list else v for v in value)


def _header_row(header: FileHeader) -> list[Any]:
    row = []
    for name in _HEADER_FIELDS:
        value = getattr(header, name)
        if name == "path":
            value = str(value)
        elif not (value is None or isinstance(value, (bool, int, float, str, tuple))):
            raise _NotCached
        row.append(value)
    return row


#: Plain field types a cached value is checked against (a damaged entry is not used).
_PLAIN = {"int": (int,), "str": (str,), "float": (int, float), "Path": (str,)}
_HEADER_TYPES = {
    f.name: _PLAIN.get(str(f.type)) for f in dataclasses.fields(FileHeader) if f.name != "dataset"
}


def _header_from_row(row: list[Any], tags: TagSet) -> FileHeader:
    if not isinstance(row, list) or len(row) != len(_HEADER_FIELDS):
        raise ValueError("header row")
    for name, value in zip(_HEADER_FIELDS, row, strict=True):
        kinds = _HEADER_TYPES[name]
        if kinds is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise ValueError(f"{name} is {value!r}")
    values = {
        name: _tuples(v) if type(v) is list else v
        for name, v in zip(_HEADER_FIELDS, row, strict=True)
    }
    values["path"] = Path(values["path"])
    return FileHeader(**values, dataset=tags)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "p" in value:
            return Path(value["p"])
        if "t" in value:
            return tuple(_decode(v) for v in value["t"])
        if "h" in value:
            return FileHeader(**{k: _decode(v) for k, v in value["h"].items()})
        raise ValueError("unknown entry")
    return value
