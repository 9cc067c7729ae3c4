"""The slice's image item windows integer slices through one table, drawing what pyqtgraph
draws: every pixel equal, on every integer type it takes, with and without a colour table."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from pyqtgraph import functions as fn

from viewer.ui.slice_image import SliceImage, window_table

pytestmark = pytest.mark.gui

GREY = np.arange(256, dtype=np.uint8)


def _pixels(item: pg.ImageItem) -> np.ndarray:
    item.render()
    rgb = item.qimage.convertToFormat(item.qimage.Format.Format_RGBA8888)
    return fn.ndarray_from_qimage(rgb)[..., :3].astype(int)


@pytest.mark.parametrize(
    "dtype, levels",
    [
        (np.int16, (-1350.0, 150.0)),  # CT's lung window on stored HU
        (np.int16, (-600.5, 900.25)),  # fractional levels
        (np.int16, (40.0, 40.0)),  # zero width
        (np.uint16, (10.0, 3000.0)),  # MR, CR
        (np.int8, (-50.0, 60.0)),
    ],
)
@pytest.mark.parametrize("lut", ["grey", "inverted", None])
def test_integer_slices_are_drawn_as_pyqtgraph_draws_them(qapp, dtype, levels, lut):
    info = np.iinfo(dtype)
    img = np.random.default_rng(0).integers(info.min, info.max, (96, 128), endpoint=True)
    img = img.astype(dtype)
    table = {"grey": GREY, "inverted": GREY[::-1].copy(), None: None}[lut]
    ours, theirs = SliceImage(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")
    for item in (ours, theirs):
        item.setImage(img, autoLevels=False, levels=levels, lut=table)
    assert ours._fast_pixels() is not None  # the table path, not pyqtgraph's
    # Within one grey level (pyqtgraph's own paths round differently by a level).
    assert np.abs(_pixels(ours) - _pixels(theirs)).max() <= 1
    # The item still holds the values shown and the window (readouts and tests use them).
    assert np.array_equal(ours.image, img) and tuple(ours.levels) == pytest.approx(levels)


def test_window_table_maps_each_value_through_the_window(qapp):
    table = window_table(np.dtype(np.int16), (-100.0, 100.0), GREY)
    at = lambda v: int(table[np.array([v], dtype=np.int16).view(np.uint16)[0]])  # noqa: E731
    assert at(-32768) == 0 and at(-100) == 0 and at(32767) == 255 and at(100) == 255
    assert at(0) == 128 and at(-50) < at(0) < at(50)


def test_a_new_window_redraws_and_tables_are_not_kept_without_bound(qapp):
    img = np.arange(-200, 200, dtype=np.int16).reshape(20, 20)
    item = SliceImage(axisOrder="row-major")
    item.setImage(img, autoLevels=False, levels=(-200.0, 200.0), lut=GREY)
    first = _pixels(item)
    for width in range(10, 400, 20):  # a window/level drag
        item.setLevels((-width / 2, width / 2))
        item.render()
    item.setLevels((0.0, 200.0))
    assert not np.array_equal(_pixels(item), first)
    assert len(item._tables) <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lut", ["grey", "inverted", None])
@pytest.mark.parametrize("levels", [(-1350.0, 150.0), (0.25, 0.75), (3.0, 3.0)])
def test_float_slices_are_drawn_as_pyqtgraph_draws_them(qapp, dtype, lut, levels):
    rng = np.random.default_rng(2)
    img = rng.normal(levels[0], 600, (96, 128)).astype(dtype)
    img[0, :4] = [np.inf, -np.inf, 1e30, -1e30]
    table = {"grey": GREY, "inverted": GREY[::-1].copy(), None: None}[lut]
    ours, theirs = SliceImage(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")
    for item in (ours, theirs):
        item.setImage(img, autoLevels=False, levels=levels, lut=table)
    assert ours._fast_pixels() is not None
    assert np.abs(_pixels(ours) - _pixels(theirs)).max() <= 1


@pytest.mark.parametrize("kind", ["nan", "rgb", "uint8", "int32"])
def test_other_images_go_through_pyqtgraph(qapp, kind):
    rng = np.random.default_rng(1)
    nan = rng.normal(0, 100, (16, 16)).astype(np.float32)
    nan[3, 4] = np.nan  # drawn transparent by pyqtgraph
    img = {
        "nan": nan,
        "rgb": rng.integers(0, 255, (16, 16, 3)).astype(np.uint8),
        "uint8": rng.integers(0, 255, (16, 16)).astype(np.uint8),
        "int32": rng.integers(-5000, 5000, (16, 16)).astype(np.int32),
    }[kind]
    ours, theirs = SliceImage(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")
    for item in (ours, theirs):
        item.setImage(img, autoLevels=False, levels=(-100.0, 200.0) if kind != "rgb" else None)
    assert ours._fast_pixels() is None
    assert np.array_equal(_pixels(ours), _pixels(theirs))
