"""Whether two frames are the same image, by a digest of their decoded pixels: each frame
decoded once, a bounded number of bytes per series (the multi-volume split's copy test)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom

from viewer.study.dataset import read_dataset
from viewer.study.headers import FileHeader
from viewer.study.opening import open_regular

#: Decoded pixels one series' comparison of copies may read in all (each frame once).
MAX_COMPARE_BYTES = 512 * 1024 * 1024


class FramePixels:
    """Compares frames by a digest of their decoded pixels, decoding each frame once and
    at most ``max_bytes`` of pixels in all; beyond that a comparison answers None (not
    compared). One instance serves one series."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = MAX_COMPARE_BYTES if max_bytes is None else max_bytes
        self.decoded_bytes = 0
        self._digests: dict[tuple[Path, int], tuple[tuple[int, ...], str, str] | None] = {}

    def digest(self, h: FileHeader, frame: int) -> tuple[tuple[int, ...], str, str] | None:
        key = (h.path, frame)
        if key in self._digests:
            return self._digests[key]
        if self.decoded_bytes >= self.max_bytes or h.refused is not None:
            return None
        try:
            with open_regular(h.path) as fp:
                ds = read_dataset(h.path, fp, stop_before_pixels=False)
            pixels = np.asarray(pydicom.pixels.pixel_array(ds, index=frame))
            # Big-endian files decode to big-endian arrays: compare values, not byte order.
            pixels = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
        except Exception:  # noqa: BLE001 - a frame that cannot be decoded is not compared
            self._digests[key] = None
            return None
        self.decoded_bytes += pixels.nbytes
        found = (pixels.shape, pixels.dtype.str, hashlib.sha256(pixels.tobytes()).hexdigest())
        self._digests[key] = found
        return found

    def __call__(self, a: FileHeader, fa: int, b: FileHeader, fb: int) -> bool | None:
        """Whether two frames are the same image: the same size, photometric
        interpretation and rescale, and identical decoded pixels (whatever transfer
        syntax stored them); None when they could not be compared."""
        if (a.rows, a.cols, a.samples_per_pixel, a.photometric, a.slope, a.intercept) != (
            b.rows,
            b.cols,
            b.samples_per_pixel,
            b.photometric,
            b.slope,
            b.intercept,
        ) or a.modality_lut != b.modality_lut:
            return False
        da, db = self.digest(a, fa), self.digest(b, fb)
        if da is None or db is None:
            return None
        return da == db
