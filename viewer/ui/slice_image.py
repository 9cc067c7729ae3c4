"""The slice's image item: pyqtgraph's ImageItem that windows an integer slice in one lookup.

pyqtgraph turns a signed integer image (int16: CT's stored values) into pixels through
``makeARGB``, whose rescale walks the image in a Python loop of small numpy calls (8-15 ms
a 512×512 frame here, ~100 calls). Each of those calls lets the interpreter lock go, and
while an analysis runs on a worker the UI thread then waits for the lock at every one of
them: the frame's own cost grows with the worker's, and one slow frame is one stutter.

``SliceImage`` renders a greyscale integer slice of at most 16 bits instead with one table
lookup: the window (levels) and the colour table are folded into a 2^16-entry uint8 table
(built once per window, with pyqtgraph's own ``rescaleData``, so the pixels equal the ones
pyqtgraph's levels-and-lut path gives), indexed by the slice's values viewed as unsigned,
and handed to Qt as a greyscale image. A float slice (MR and PET rescaled to float, oblique
and slab slices) is windowed in four whole-image numpy calls (pyqtgraph's chunked loop makes
~290) and its grey table applied in one lookup. ``image``, ``levels`` and
``lut`` keep their meaning (the values shown, the window): only the drawing changes.
Anything else (NaN pixels, RGB, wider integers, a callable lut, downsampling) goes through
pyqtgraph as before.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from pyqtgraph import functions_qimage

#: Integer types windowed through a table, with the unsigned type of the same width (uint8
#: images already reach Qt as an indexed image through pyqtgraph, with no pass over them).
_UNSIGNED = {
    np.dtype(np.int8): np.uint8,
    np.dtype(np.int16): np.uint16,
    np.dtype(np.uint16): np.uint16,
}
#: The identity grey table (a table equal to it is not applied).
_IDENTITY = np.arange(256, dtype=np.uint8)
#: Windows whose tables are kept (window/level drags make new ones; scrolling reuses one).
_TABLES_KEPT = 4


def window_table(
    dtype: np.dtype, levels: tuple[float, float], lut: np.ndarray | None
) -> np.ndarray:
    """uint8 display value for every value of an integer ``dtype`` (≤ 16 bits), indexed by the
    value's bits read as unsigned: pyqtgraph's levels-then-lut mapping as one table."""
    unsigned = _UNSIGNED[np.dtype(dtype)]
    values = np.arange(np.iinfo(unsigned).max + 1, dtype=np.int64).astype(unsigned)
    values = values.view(dtype).astype(np.float64)
    lo, hi = float(levels[0]), float(levels[1])
    span = (hi - lo) or 1.0
    if lut is None:
        return fn.rescaleData(values, 255.0 / span, lo, dtype=np.uint8)
    colours = lut.shape[0]
    index = fn.rescaleData(
        values, colours / span, lo, dtype=np.min_scalar_type(colours - 1), clip=(0, colours - 1)
    )
    return np.ascontiguousarray(lut[index])


class SliceImage(pg.ImageItem):
    """An ImageItem whose greyscale integer images are windowed through one table lookup."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tables: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def _plain(self) -> bool:
        """A greyscale 2D image with a window and at most a 256-entry grey/colour table."""
        img, levels, lut = self.image, self.levels, self.lut
        if img is None or img.ndim != 2 or img.size == 0:
            return False
        if self.autoDownsample or self.axisOrder != "row-major" or levels is None:
            return False
        if np.ndim(levels) != 1 or len(levels) != 2:
            return False
        return lut is None or (
            isinstance(lut, np.ndarray)
            and lut.dtype == np.uint8
            and lut.ndim == 1
            and lut.shape[0] <= 256
        )

    def _table(self) -> np.ndarray:
        img, levels, lut = self.image, self.levels, self.lut
        assert img is not None and levels is not None
        window = (float(levels[0]), float(levels[1]))
        key = (img.dtype.str, window, None if lut is None else lut.tobytes())
        table = self._tables.get(key)
        if table is None:
            table = window_table(img.dtype, window, lut)
            self._tables[key] = table
            while len(self._tables) > _TABLES_KEPT:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(key)
        return table

    def _fast_pixels(self) -> tuple[np.ndarray, None] | None:
        """(uint8 grey pixels, None), or None where pyqtgraph draws."""
        if not self._plain():
            return None
        img, levels, lut = self.image, self.levels, self.lut
        assert img is not None and levels is not None
        if np.dtype(img.dtype) in _UNSIGNED:
            return self._table()[img.view(_UNSIGNED[np.dtype(img.dtype)])], None
        if img.dtype.kind != "f":
            return None
        if self._imageHasNans is None:  # pyqtgraph's own per-image cache (reset by setImage)
            self._imageHasNans = bool(np.isnan(img.min()))
        if self._imageHasNans:
            return None  # NaN pixels: pyqtgraph draws them transparent
        # pyqtgraph's float rescale (levels to table indices, truncated) in four whole-image
        # calls instead of its chunked loop (~290 calls a 512×512 frame).
        colours = 256 if lut is None else lut.shape[0]
        top = 255.0 if lut is None else float(colours)
        lo, hi = float(levels[0]), float(levels[1])
        work = np.subtract(img, lo, dtype=img.dtype)
        np.multiply(work, top / ((hi - lo) or 1.0), out=work)
        np.clip(work, 0, colours - 1, out=work)
        index = work.astype(np.uint8)
        # A grey table folded in (one take) keeps Qt's image greyscale: as an indexed
        # image's colour table it would cost 256 qRgb calls a frame.
        if lut is None or (lut.shape[0] == 256 and np.array_equal(lut, _IDENTITY)):
            return index, None
        return lut[index], None

    def render(self) -> None:
        fast = self._fast_pixels()
        if fast is None:
            super().render()
            return
        pixels, lut = fast
        qimage = functions_qimage.try_make_qimage(pixels, levels=None, lut=lut)
        if qimage is None:  # not expected for a 2D uint8 image: draw as pyqtgraph would
            super().render()
            return
        self._processingBuffer = None
        self._displayBuffer = None
        self.qimage = qimage
        self._renderRequired = False
        self._unrenderable = False
