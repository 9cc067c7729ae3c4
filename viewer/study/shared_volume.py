"""A series' volume in shared memory, which decoder processes write their frames into.

The loading process allocates the volume once in a named shared-memory block and wraps it
as the Volume's array; each decoder process maps the same block (given its name, the
series' headers and how values are stored, once per pool) and writes the rescaled frame
straight into its slice, so no decoded array crosses a pipe and nothing is copied back.
A load still holds the volume plus one decoded frame per worker. Where shared memory is
missing or too small (a container's 64 MB /dev/shm), the caller decodes the old way.
"""

from __future__ import annotations

import mmap
import os
import time
import weakref
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from viewer.study.decode import decode_task
from viewer.study.errors import StudyError, UnsupportedFormat
from viewer.study.headers import FileHeader

#: Leave this much of the shared-memory file system free (other programs use it too).
SHM_HEADROOM = 64 << 20


@dataclass(frozen=True)
class StoreRule:
    """How a frame's stored values become the volume's: RGB copied, else rescaled (modality
    LUT or slope/intercept) and, for MONOCHROME1, mirrored about ``mirror`` (lo + hi)."""

    rgb: bool
    saturate: bool
    mirror: float | None


def store_frame(out: np.ndarray, h: FileHeader, raw: np.ndarray, rule: StoreRule) -> None:
    """Put a frame's stored values into ``out`` (one slice of the volume)."""
    expected = (h.rows, h.cols, 3) if rule.rgb else (h.rows, h.cols)
    if raw.shape != expected:
        raise UnsupportedFormat(h.path, f"pixels have shape {raw.shape}, expected {expected}")
    if rule.rgb:
        out[...] = raw
        return
    if h.modality_lut is not None:
        first, table = h.modality_lut
        lut = np.asarray(table, dtype=out.dtype)  # the layout chose a dtype that holds it
        out[...] = lut[np.clip(raw.astype(np.int64) - first, 0, len(table) - 1)]
    elif h.slope == 1.0 and h.intercept == 0.0 and rule.mirror is None:
        out[...] = raw
    elif out.dtype.kind in "iu" and h.slope == 1.0 and not rule.saturate:
        if raw.dtype.itemsize == out.dtype.itemsize and raw.dtype.kind in "iu":
            # Integer HU in one pass in the volume's own type (raw is often the volume's
            # slice itself): two's complement addition wraps exactly as computing wider and
            # storing with an unsafe cast did, bit for bit, at a third of the time.
            intercept = np.array(int(h.intercept)).astype(out.dtype)
            np.add(raw.view(out.dtype), intercept, out=out)
        else:
            # Computed wider then stored (the layout checked the range).
            np.add(raw, np.int32(h.intercept), out=out, casting="unsafe")
    else:
        # Scaled in float64 first so an integer slope cannot overflow before the intercept.
        scaled = raw * np.float64(h.slope) + h.intercept
        if out.dtype.kind in "iu":
            info = np.iinfo(out.dtype)
            scaled = np.clip(np.rint(scaled), info.min, info.max)
        out[...] = scaled
    if rule.mirror is not None:
        np.subtract(np.array(rule.mirror).astype(out.dtype), out, out=out)


def _unlink(name: str) -> None:
    try:
        block = shared_memory.SharedMemory(name)
    except FileNotFoundError:
        return  # unlinked already
    block.close()
    block.unlink()


class SharedVolume:
    """A zeroed array of ``shape``/``dtype`` in a named shared-memory block.

    ``array`` outlives this object (it maps the block itself); the name is removed by
    ``release()`` or when this object is collected, after which no new process can map it.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
        block = shared_memory.SharedMemory(create=True, size=nbytes)
        self.name = block.name
        self._release = weakref.finalize(self, _unlink, self.name)
        try:
            # Mapped on its own: the array then keeps the mapping alive without the
            # SharedMemory object (whose close() refuses while an array uses its buffer).
            mapping = mmap.mmap(block._fd, nbytes)  # type: ignore[attr-defined]  # POSIX only
        finally:
            block.close()
        self.array: np.ndarray = np.frombuffer(mapping, dtype, int(np.prod(shape))).reshape(shape)

    def release(self) -> None:
        """Remove the block's name (the mapping lives on in ``array``)."""
        self._release()

    @staticmethod
    def fits(nbytes: int) -> bool:
        """Whether shared memory can hold ``nbytes`` more (POSIX, with headroom)."""
        if os.name != "posix" or not hasattr(shared_memory.SharedMemory, "_fd"):
            return False
        try:
            st = os.statvfs("/dev/shm")
        except OSError:
            return False
        return st.f_bavail * st.f_frsize >= nbytes + SHM_HEADROOM


# ---- in a decoder process -------------------------------------------------------------------
_WORKER: dict[str, object] = {}


def init_worker(
    headers: list[FileHeader], name: str, shape: tuple[int, ...], dtype: str, rule: StoreRule
) -> None:
    """Pool initializer: map the volume and keep the series' headers for every task."""
    block = shared_memory.SharedMemory(name)
    mapping = mmap.mmap(block._fd, block.size)  # type: ignore[attr-defined]
    block.close()
    count = int(np.prod(shape))
    _WORKER.update(
        headers=headers,
        array=np.frombuffer(mapping, np.dtype(dtype), count).reshape(shape),
        rule=rule,
    )


def decode_into(
    z: int, hi: int, frame: int, payload: tuple | None
) -> tuple[StudyError | None, float]:
    """Decode frame ``frame`` of header ``hi`` into slice ``z`` of the shared volume:
    (None, cpu) or (the error naming the file, cpu)."""
    start = time.process_time()
    headers: list[FileHeader] = _WORKER["headers"]  # type: ignore[assignment]
    array: np.ndarray = _WORKER["array"]  # type: ignore[assignment]
    rule: StoreRule = _WORKER["rule"]  # type: ignore[assignment]
    h = headers[hi]
    arr, error, _ = decode_task(h, frame, payload)
    if error is None:
        assert arr is not None
        try:
            store_frame(array[z], h, arr, rule)
        except StudyError as exc:
            error = exc
    return error, time.process_time() - start
