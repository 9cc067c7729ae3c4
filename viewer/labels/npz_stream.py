"""Write big arrays as a standard ``.npz`` in slabs, so that the UI thread keeps the interpreter lock.

``np.savez_compressed`` copies each array into 16 MiB ``bytes`` (``tobytes``, under the
interpreter lock: 50-120 ms per copy on a loaded 2-core machine) before zlib sees it, and
compresses at level 6. Here each array goes to the archive a few slices at a time as a
``memoryview`` of the array itself (no copy); the CRC, the deflate and the file write each
release the lock for the whole slab, so a thread saving a 300×512×512 result never holds it
for long. Level 1 by default: label maps and quantised heat maps are long runs of one value
and shrink almost as much, several times faster. ``np.load`` reads the result as any npz.
Qt-free and torch-free.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

#: Bytes of array per write: big enough that the per-call overhead is nothing, small enough
#: that the few numpy steps done with the lock held per slab (a view, a quantisation) are short.
SLAB_BYTES = 1 << 21
#: zlib level of the archive's members.
LEVEL = 1

#: A member: an array, or (shape, dtype, slabs) where ``slabs(step)`` yields consecutive
#: C-ordered blocks of ``step`` rows along axis 0 (for data made while it is written).
Member = np.ndarray | tuple[tuple[int, ...], np.dtype, Callable[[int], Iterator[np.ndarray]]]


def rows_per_slab(shape: tuple[int, ...], itemsize: int, slab_bytes: int = SLAB_BYTES) -> int:
    """How many rows along axis 0 make about ``slab_bytes`` (at least one)."""
    row = int(np.prod(shape[1:], dtype=np.int64)) * itemsize if len(shape) > 1 else itemsize
    return max(1, slab_bytes // max(1, row))


def _array_slabs(array: np.ndarray) -> Callable[[int], Iterator[np.ndarray]]:
    def slabs(step: int) -> Iterator[np.ndarray]:
        if array.ndim == 0:
            yield array.reshape(1)
            return
        for z in range(0, array.shape[0], step):
            yield array[z : z + step]

    return slabs


def write_npz(
    out: BinaryIO, members: Mapping[str, Member], level: int = LEVEL, slab_bytes: int = SLAB_BYTES
) -> None:
    """Write ``members`` to the open binary file ``out`` as a compressed ``.npz``."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, member in members.items():
            if isinstance(member, np.ndarray):
                array = member if member.flags.c_contiguous else np.ascontiguousarray(member)
                shape, dtype, slabs = array.shape, array.dtype, _array_slabs(array)
            else:
                shape, dtype, slabs = member
                dtype = np.dtype(dtype)
            if dtype.hasobject:
                raise ValueError(f"{name}: object arrays are not written (no pickles)")
            header: dict[str, Any] = {
                "descr": npy_format.dtype_to_descr(dtype),
                "fortran_order": False,
                "shape": tuple(int(s) for s in shape),
            }
            with archive.open(f"{name}.npy", "w", force_zip64=True) as fp:
                npy_format.write_array_header_1_0(fp, header)
                step = rows_per_slab(tuple(shape), dtype.itemsize, slab_bytes)
                for slab in slabs(step):
                    block = np.ascontiguousarray(slab, dtype=dtype)
                    fp.write(block.data.cast("B"))
