"""What a model package's JSON may hold (plain data, never an expression) and the error naming
a bad field: the ground both the card and the MONAI-bundle reader stand on."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from radlens_core.errors import UserError


class CardError(UserError, ValueError):
    """A model package whose card is missing or wrong; the message names the path and field."""


def refuse_expressions(value: Any, where: str, path: Path) -> Any:
    """``value`` unchanged if it is plain data; CardError naming ``where`` in ``path`` if it,
    or anything inside it, is a ``$``/``@``/``%`` expression or reference (never evaluated)."""
    if isinstance(value, str) and value.startswith(("$", "@", "%")):
        raise CardError(
            f"{path}: field '{where}' is an expression ({value[:60]!r}); bundle expressions are"
            " refused, never evaluated"
        )
    if isinstance(value, dict):
        return {k: refuse_expressions(v, f"{where}.{k}", path) for k, v in value.items()}
    if isinstance(value, list):
        return [refuse_expressions(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
    return value


#: A card or bundle metadata file larger than this is refused before it is parsed.
MAX_JSON_BYTES = 1_000_000
#: Deeper nesting than this is refused before parsing (Python's parser recurses per level).
MAX_JSON_DEPTH = 32
# C0/C1 controls (tab and newline allowed where a text may span lines), and the Unicode
# bidirectional overrides that make text read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json_capped(path: Path, what: str = "model card") -> Any:
    """``path``'s JSON, after checking it is a regular file within the size and nesting caps;
    CardError naming the file and the cap otherwise (never a RecursionError or a huge read)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise CardError(f"{path}: cannot read the {what} ({exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise CardError(f"{path}: the {what} is not a regular file; refused")
    if st.st_size > MAX_JSON_BYTES:
        raise CardError(
            f"{path}: the {what} is {st.st_size:,} bytes; the limit is {MAX_JSON_BYTES:,}"
            " bytes, so it was refused unread"
        )
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"{path}: cannot read the {what} ({exc})") from exc
    if len(raw) > MAX_JSON_BYTES:
        raise CardError(f"{path}: the {what} is over {MAX_JSON_BYTES:,} bytes; refused unread")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise CardError(
            f"{path}: the {what} nests {depth} levels deep; the limit is {MAX_JSON_DEPTH},"
            " so it was refused unread"
        )
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CardError(f"{path}: cannot read the {what} ({exc})") from exc


def plain_text(value: str, where: str, path: Path, multiline: bool = False) -> str:
    """``value`` if it holds no control characters (tab/newline allowed when ``multiline``);
    CardError naming the field otherwise. Card text is shown as plain text, never markup."""
    bad = (_CONTROL if multiline else _CONTROL_LINE).search(value)
    if bad:
        raise CardError(
            f"{path}: field '{where}' holds a control character (U+{ord(bad.group()):04X});"
            " card text must be plain text"
        )
    return value


def package_file(folder: Path, name: str) -> Path:
    """The real path of ``name`` inside the package ``folder``, checked before anything opens
    it: it must resolve inside the folder (a symlink leaving it is refused) and be a regular
    file (no device, FIFO or socket). CardError with a sentence otherwise."""
    root = Path(folder).resolve()
    path = Path(folder) / name
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise CardError(f"{path}: file is missing from the model package ({exc})") from exc
    if not real.is_relative_to(root):
        raise CardError(
            f"{path}: points outside the model package (to {real}); weights must be files"
            " inside the package folder, so it was refused"
        )
    try:
        mode = real.stat().st_mode
    except OSError as exc:
        raise CardError(f"{path}: cannot read ({exc})") from exc
    if not stat.S_ISREG(mode):
        raise CardError(
            f"{path}: is not a regular file (a device, FIFO or folder); weights must be"
            " regular files, so it was refused"
        )
    return real
