"""The DICOM header of one file as rows of text for the tags panel (never reads pixels)."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from viewer.study.dataset import NOT_DICOM, read_dataset
from viewer.study.errors import UnreadableFile
from viewer.study.opening import open_regular

#: Longest value text shown; the panel is for reading, not for dumping binary data.
MAX_VALUE = 120
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


def _value_text(elem: DataElement) -> str:
    if elem.VR == "SQ":
        n = len(elem.value)
        return f"<{n} item{'s' if n != 1 else ''}>"
    if elem.VR in BINARY_VRS:
        size = len(elem.value) if elem.value is not None else 0
        return f"<{size} bytes>"
    value = elem.value
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = (
        "\\".join(str(v) for v in value)
        if isinstance(value, (list, tuple))
        or (hasattr(value, "__iter__") and not isinstance(value, str) and elem.VM > 1)
        else str(value)
    )
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _rows(ds: Dataset, depth: int, out: list[tuple[str, str, str, str]]) -> None:
    for elem in ds:
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        keyword = ">" * depth + (elem.keyword or elem.name)
        out.append((tag, keyword, elem.VR, _value_text(elem)))
        if elem.VR == "SQ":
            for item in elem.value:
                _rows(item, depth + 1, out)


def dicom_tags(path: Path | str) -> list[tuple[str, str, str, str]]:
    """(tag "(0010,0010)", keyword, VR, value as short text) for each header element.

    File meta first; sequence items follow their sequence with ">" per nesting level.
    """
    path = Path(path)
    try:
        with open_regular(path) as fp:  # never blocks on a FIFO; raises UnreadableFile
            ds = read_dataset(path, fp, stop_before_pixels=True)  # with or without preamble
    except InvalidDicomError:
        raise UnreadableFile(path, NOT_DICOM) from None
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise UnreadableFile(path, f"damaged or truncated DICOM header ({exc})") from None
    out: list[tuple[str, str, str, str]] = []
    if ds.file_meta is not None:
        _rows(ds.file_meta, 0, out)
    _rows(ds, 0, out)
    return out
