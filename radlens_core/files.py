"""Atomic file writes (temporary file in the same folder, fsync, ``os.replace``) and hashing."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def fsync_dir(folder: Path) -> None:
    """Make a rename durable; some platforms cannot open a folder, which is harmless there."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. Windows: directory fsync is not supported and not needed
    finally:
        os.close(fd)


#: Files RadLens writes hold patients' data: readable and writable by the user alone.
PRIVATE_FILE_MODE = 0o600


def atomic_write(path: Path, write: Callable[[BinaryIO], object], *, sync_dir: bool = True) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync, then ``os.replace`` it
    into place; a failure leaves the old file as it was and no temporary file behind.
    The file is created 0600 (``PRIVATE_FILE_MODE``) whatever the umask. ``sync_dir=False``:
    the folder's fsync is the caller's (once for many files written together)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if os.name == "posix":  # mkstemp's 0600 today; said here so it stays so
                os.fchmod(f.fileno(), PRIVATE_FILE_MODE)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    atomic_write(path, lambda f: f.write(data), sync_dir=sync_dir)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, default=json_default) + "\n")


def atomic_write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]


def atomic_copy(source: Path, target: Path, chunk: int = 1 << 20) -> None:
    """Copy ``source`` to ``target`` atomically (the target never exists half-written)."""

    def write(out: BinaryIO) -> None:
        with open(source, "rb") as f:
            while block := f.read(chunk):
                out.write(block)

    atomic_write(target, write)


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays, bytes and paths."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (weights files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
