"""Opening source files safely: regular files only, never blocking on a FIFO or a device.

A named pipe, socket or device in a study folder would hang a plain ``open()`` (a FIFO waits
for a writer forever) or read without end. Every source file is checked with ``os.stat``
before it is opened, opened with ``O_NONBLOCK``, and checked again on the open descriptor
(the name may have been swapped in between).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from viewer.study.errors import UnreadableFile

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words ("a named pipe (FIFO)")."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def not_regular(path: Path) -> str | None:
    """Why ``path`` is skipped without being opened, or None for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file (a broken link, or removed during the scan)"
    except PermissionError:
        return "permission denied; check the file's read rights"
    except OSError as exc:
        return f"cannot be examined ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    return f"{kind_of(mode)}, not a file: skipped without opening it"


def open_regular(path: Path | str) -> BinaryIO:
    """``path`` opened for binary reading; raises UnreadableFile naming it when it is not a
    regular file or cannot be opened. Never blocks (``O_NONBLOCK``)."""
    path = Path(path)
    why = not_regular(path)
    if why is not None:
        raise UnreadableFile(path, why)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise UnreadableFile(path, "permission denied; check the file's read rights") from None
    except OSError as exc:
        raise UnreadableFile(path, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableFile(path, f"{kind_of(mode)}, not a file: skipped")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
