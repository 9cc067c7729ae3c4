"""JSON files of an nnU-Net folder read as data: size and nesting capped, fields checked.

Every check raises :class:`NnunetError` with a sentence naming the file and the field
(``plans.json: field 'configurations.3d_fullres.patch_size' ...``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from inference.card_data import json_depth
from inference.nnunet.errors import NnunetError

#: plans.json of TotalSegmentator's 117-class models is ~20 kB, dataset.json ~10 kB.
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 12


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Read ``path`` as JSON with a byte and a nesting limit (checked before parsing)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise NnunetError(f"{path}: missing, or not a regular file (links are not followed)")
    size = path.stat().st_size
    if size > max_bytes:
        raise NnunetError(
            f"{path}: {size} bytes is larger than the {max_bytes} bytes allowed for this file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NnunetError(f"{path}: cannot be read as UTF-8 text ({exc})") from exc
    _check_depth_text(path, text, max_depth)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NnunetError(f"{path}: is not valid JSON ({exc})") from exc


def _check_depth_text(path: Path, text: str, max_depth: int) -> None:
    """Refuse a file nested deeper than ``max_depth`` before parsing it (the card reader's
    own bracket count, which skips brackets inside strings)."""
    if json_depth(text) > max_depth:
        raise NnunetError(
            f"{path}: nested deeper than {max_depth} levels; refused as not an nnU-Net file"
        )


class Fields:
    """Typed field access on one JSON file's data; errors name the file and the field path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def error(self, field: str, problem: str) -> NnunetError:
        return NnunetError(f"{self.where}: field '{field}' {problem}")

    def get(self, data: Any, field: str, key: str, required: bool = True) -> Any:
        if not isinstance(data, dict):
            raise self.error(field, "must be a JSON object")
        if key not in data:
            if required:
                raise self.error(f"{field}.{key}" if field else key, "is missing")
            return None
        return data[key]

    def obj(self, value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(field, f"must be a JSON object, got {_kind(value)}")
        return value

    def string(self, value: Any, field: str, max_len: int = 200) -> str:
        if not isinstance(value, str) or not value or len(value) > max_len:
            raise self.error(field, f"must be a non-empty string of at most {max_len} characters")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(field, f"must be true or false, got {_short(value)}")
        return value

    def integer(self, value: Any, field: str, lo: int, hi: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self.error(field, f"must be an integer from {lo} to {hi}, got {_short(value)}")
        return value

    def number(self, value: Any, field: str, lo: float, hi: float, lo_open: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and lo <= value <= hi and not (lo_open and value == lo)
        if not ok:
            bound = f"greater than {lo}" if lo_open else f"from {lo}"
            raise self.error(field, f"must be a number {bound} up to {hi}, got {_short(value)}")
        return float(value)

    def int_list(
        self, value: Any, field: str, length: int | tuple[int, int], lo: int, hi: int
    ) -> list[int]:
        n_lo, n_hi = (length, length) if isinstance(length, int) else length
        if not isinstance(value, list) or not n_lo <= len(value) <= n_hi:
            want = str(n_lo) if n_lo == n_hi else f"{n_lo} to {n_hi}"
            raise self.error(field, f"must be a list of {want} integers, got {_short(value)}")
        return [self.integer(v, f"{field}[{i}]", lo, hi) for i, v in enumerate(value)]

    def num_list(self, value: Any, field: str, length: int, lo: float, hi: float) -> list[float]:
        if not isinstance(value, list) or len(value) != length:
            raise self.error(field, f"must be a list of {length} numbers, got {_short(value)}")
        return [self.number(v, f"{field}[{i}]", lo, hi, lo_open=True) for i, v in enumerate(value)]


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else "null"
    )


def _short(value: Any) -> str:
    text = json.dumps(value) if _plain(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
