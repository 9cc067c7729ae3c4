"""A view with no image draws nothing over its background: no crosshair, no scale bar."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QWidget

from phantoms.chest import chest_ct
from viewer.study.volume import Volume
from viewer.ui.main_window import MainWindow
from viewer.ui.scale_bar import ScaleBar

pytestmark = pytest.mark.gui


def _pixels(widget) -> np.ndarray:
    """The widget rendered now onto a filled image (nothing left undefined)."""
    image = QImage(widget.size(), QImage.Format.Format_RGB32)
    image.fill(QColor(255, 0, 255))
    QWidget.render(widget, image)  # the widget and its children (texts, scale bar)
    h, w = image.height(), image.width()
    rows = np.frombuffer(image.constBits(), np.uint8, count=h * image.bytesPerLine())
    # A copy: the image (and the memory the view reads) goes when this returns.
    return rows.reshape(h, image.bytesPerLine() // 4, 4)[:, :w, :3].copy()


@pytest.fixture
def window(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.mark.parametrize("layout", ["single", "2x2"])
def test_empty_views_draw_no_crosshair_and_no_scale_bar(window, qtbot, layout):
    window.area.set_layout(layout)
    shown = window.area.visible_views()
    qtbot.waitUntil(lambda: all(v.graphics.isVisible() and v.graphics.width() > 50 for v in shown))
    assert shown
    for view in shown:
        assert not any(line.isVisible() for line in view.crosshair.lines.values())
        assert view.scale_bar.label == "" and view.scale_bar.length_px == 0
        pixels = _pixels(view.graphics)
        # One colour from corner to corner: no line, no bar, no text was painted.
        odd = np.argwhere((pixels != pixels[0, 0]).any(-1))
        assert len(odd) == 0, f"{view.plane}: drawn at {odd[:3].tolist()} on an empty view"


def test_crosshair_and_scale_bar_appear_with_an_image(window, qtbot):
    window.area.set_layout("2x2")
    ct = chest_ct((24, 64, 64), seed=2, n_nodules=0)
    window.state.set_volume(Volume(ct.hu, spacing=ct.spacing, modality="CT", series_uid="e.1"))
    qtbot.wait(50)
    for view in window.area.visible_views():
        assert all(line.isVisible() for line in view.crosshair.lines.values())
        assert view.scale_bar.label.endswith(" mm") and view.scale_bar.length_px > 0
        pixels = _pixels(view.graphics)
        assert not (pixels == pixels[0, 0]).all()


def test_scale_bar_says_nothing_without_a_usable_scale(qtbot):
    bar = ScaleBar()
    qtbot.addWidget(bar)
    bar.set_scale(0.5)
    assert bar.label == "20 mm" and bar.length_px == 40
    for scale in (0.0, -1.0, float("nan"), float("inf")):
        bar.set_scale(scale)
        assert (bar.label, bar.length_px) == ("", 0.0), scale
    bar.set_scale(0.5)
    bar.clear()
    assert (bar.label, bar.length_px) == ("", 0.0)


def test_view_text_clears_its_scale_bar_without_an_image(window, qtbot):
    ct = chest_ct((24, 64, 64), seed=2, n_nodules=0)
    vol = Volume(ct.hu, spacing=ct.spacing, modality="CT", series_uid="e.2")
    text = window.area.views["axial"].text
    text.set_scale(vol, 0.5, 1.0)
    assert text.scale_bar.label == "20 mm"
    text.set_scale(None, 0.5, 1.0)
    assert text.scale_bar.label == ""
    text.set_scale(vol, 0.5, 1.0)
    text.set_scale(vol, 0.0, 1.0)  # a view not laid out yet: no bar rather than a wrong one
    assert text.scale_bar.label == ""


def test_a_plane_left_without_an_image_drops_its_crosshair(window, qtbot):
    """A CT, then a radiograph: the planes the 2D image does not have draw no old lines."""
    window.area.set_layout("2x2")
    ct = chest_ct((24, 64, 64), seed=2, n_nodules=0)
    window.state.set_volume(Volume(ct.hu, spacing=ct.spacing, modality="CT", series_uid="e.3"))
    qtbot.wait(50)
    views = window.area.visible_views()
    assert all(any(line.isVisible() for line in v.crosshair.lines.values()) for v in views)
    xray = np.random.default_rng(0).integers(0, 4000, (1, 64, 64)).astype(np.uint16)
    window.state.set_volume(Volume(xray, spacing=(0.2, 0.2, 1.0), modality="CR", series_uid="e.4"))
    qtbot.wait(50)
    empty = [v for v in views if v.plane_geometry is None]
    assert empty, "a radiograph leaves some plane without an image"
    for view in empty:
        assert not any(line.isVisible() for line in view.crosshair.lines.values()), view.plane
