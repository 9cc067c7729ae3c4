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


def read_at(path: Path | str, offset: int, buffer: memoryview) -> int:
    """Read ``len(buffer)`` bytes of regular file ``path`` from ``offset`` straight into
    ``buffer`` (one ``preadv``, no file object); the bytes read. Same checks as open_regular."""
    name = os.fspath(path)
    why = not_regular(Path(name)) if not os.path.isfile(name) else None
    if why is not None:
        raise UnreadableFile(Path(name), why)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(name, flags)
    except PermissionError:
        raise UnreadableFile(
            Path(name), "permission denied; check the file's read rights"
        ) from None
    except OSError as exc:
        raise UnreadableFile(Path(name), f"cannot be opened ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableFile(Path(name), f"{kind_of(mode)}, not a file: skipped")
        if not hasattr(os, "preadv"):
            os.lseek(fd, offset, os.SEEK_SET)
            return os.readv(fd, [buffer])
        got = 0
        while got < len(buffer):  # preadv may return less than asked (signals, big reads)
            n = os.preadv(fd, [buffer[got:]], offset + got)
            if n <= 0:
                break
            got += n
        return got
    except OSError as exc:
        raise UnreadableFile(Path(name), f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


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
