"""Oblique MPR and thick slabs as the user drives them: Ctrl+drag turns the crosshair, the
other views show resampled oblique slices, reset returns to orthogonal; the slab box and
thickness make every view a MIP / MinIP / mean that matches numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from tests.test_oblique_slab import COEF, linear_volume
from viewer.study.volume import Volume
from viewer.ui.main_window import MainWindow
from viewer.ui.oblique import OUTSIDE, ObliqueSlice

pytestmark = pytest.mark.gui
CTRL = Qt.KeyboardModifier.ControlModifier
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.area.set_layout("2x2")
    yield w
    w.close()


def _send(vp, kind, pos: QPointF, button, buttons, mods) -> None:
    QApplication.sendEvent(
        vp, QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons, mods)
    )


def ctrl_drag_around_centre(qtbot, view, degrees: float, steps: int = 12) -> None:
    """Ctrl+left-drag on ``view`` along an arc of ``degrees`` about the crosshair centre
    (pyqtgraph drops moves closer than its rate limit, so the hand pauses between them)."""
    vp = view.graphics.viewport()
    centre = view.graphics.mapFromScene(view.view_box.mapViewToScene(view.cursor_scene()))
    radius = 0.3 * min(vp.width(), vp.height())

    def at(deg: float) -> QPointF:
        a = math.radians(deg)
        return QPointF(centre.x() + radius * math.cos(a), centre.y() + radius * math.sin(a))

    _send(vp, QMouseEvent.Type.MouseButtonPress, at(0), LEFT, LEFT, CTRL)
    for k in range(1, steps + 1):
        _send(
            vp,
            QMouseEvent.Type.MouseMove,
            at(degrees * k / steps),
            Qt.MouseButton.NoButton,
            LEFT,
            CTRL,
        )
        qtbot.wait(20)
    _send(vp, QMouseEvent.Type.MouseButtonRelease, at(degrees), LEFT, Qt.MouseButton.NoButton, CTRL)


def test_ctrl_drag_on_the_axial_crosshair_tilts_coronal_and_sagittal(qtbot, window):
    vol = linear_volume(shape=(20, 40, 36))
    window.state.set_volume(vol)
    QApplication.processEvents()
    views = window.area.views
    before = views["axial"].crosshair.angles()
    ctrl_drag_around_centre(qtbot, views["axial"], 30)
    state = window.state
    assert not state.is_oblique("axial")
    assert state.is_oblique("coronal") and state.is_oblique("sagittal")
    after = views["axial"].crosshair.angles()
    turned = {p: (after[p] - before[p]) % 180 for p in after}
    for p, d in turned.items():
        # The lines follow the pointer (within a few degrees of the drawn arc)
        assert d == pytest.approx(30, abs=4), p
    # The coronal view now shows the resampled oblique slice: every pixel inside the volume
    # holds the linear function's value at the patient point it shows.
    cor = views["coronal"]
    ob = state.oblique_slice("coronal")
    assert isinstance(ob, ObliqueSlice) and cor.geometry_ is None  # tools don't draw here
    shown = cor.image.image
    assert shown.shape == (ob.rows, ob.cols)
    t = ob.depth_of(state.cursor_patient())
    rows, cols = np.indices(shown.shape)
    f = ob.frame
    lps = (
        ob.centre
        + (ob.x0 + (cols + 0.5) * ob.pixel_mm)[..., None] * f.right
        + (ob.y0 + (rows + 0.5) * ob.pixel_mm)[..., None] * f.down
        + t * f.normal
    )
    idx = vol.patient_to_index(lps.reshape(-1, 3)).reshape(*shown.shape, 3)
    inside = np.all((idx >= 0) & (idx <= np.asarray(vol.shape) - 1), axis=-1)
    assert inside.sum() > 200
    assert shown[inside] == pytest.approx((lps @ COEF + 10.0)[inside], abs=1e-3)
    far_outside = np.any((idx < -1) | (idx > np.asarray(vol.shape)), axis=-1)
    assert far_outside.any() and np.all(shown[far_outside] == OUTSIDE)  # black in any window
    assert "Oblique (Coronal)" in cor.corner["tr"].text()
    # Turning further keeps the oblique view's zoom and pan (its scene does not move).
    shown_range = cor.view_box.viewRange()
    state.rotate("axial", math.radians(10))
    assert cor.view_box.viewRange() == shown_range
    state.rotate("axial", math.radians(-10))
    assert cor.corner["bl"].text().startswith("Oblique ")
    # A click on the oblique view moves the cursor to the patient point under it.
    target = QPointF(ob.width_mm * 0.4, ob.height_mm * 0.6)
    cor.move_cursor_to(target)
    expected = ob.patient_of(target.x(), target.y(), t)
    assert state.cursor_patient() == pytest.approx(expected, abs=1e-6)
    # Reset returns to orthogonal planes and thin stored slices.
    window.action_map["reset_oblique"].trigger()
    assert not state.frames.any_oblique and cor.geometry_ is not None
    g = cor.geometry_
    assert np.array_equal(cor.image.image, g.slice_of(vol.array, cor.index()))
    assert views["axial"].crosshair.angles() == before


def test_scrolling_an_oblique_view_moves_along_its_tilted_normal(qtbot, window):
    vol = linear_volume(shape=(20, 40, 36))
    window.state.set_volume(vol)
    window.state.rotate("axial", math.radians(35))
    start = window.state.cursor_patient()
    normal = window.state.oblique_slice("sagittal").frame.normal
    window.state.step_slice("sagittal", 3)
    moved = window.state.cursor_patient() - start
    step = window.state.oblique_slice("sagittal").slice_step()
    assert moved == pytest.approx(3 * step * normal, abs=1e-6)


def test_a_projection_or_rgb_image_cannot_be_turned(qtbot, window):
    rgb = Volume(np.zeros((5, 10, 12, 3), np.uint8))
    window.state.set_volume(rgb)
    window.state.rotate("axial", 0.5)
    assert not window.state.frames.any_oblique


def _values() -> np.ndarray:
    return np.random.default_rng(5).integers(-1000, 1500, size=(24, 30, 28)).astype(np.int16)


def test_mip_slab_from_the_tool_bar_matches_numpy_and_says_so(qtbot, window):
    arr = _values()
    vol = Volume(arr, (0.8, 0.8, 2.0), modality="CT", meta={"patient_name": "SLAB^TEST"})
    window.state.set_volume(vol)
    window.state.set_cursor((12.0, 15.0, 14.0))
    c = window.controls
    c.slab_spin.setValue(10.0)
    c.slab_combo.setCurrentIndex(c.slab_combo.findText("MIP"))
    axial = window.area.views["axial"]
    assert np.array_equal(axial.image.image, arr[10:15].max(axis=0))
    assert "MIP 10 mm" in axial.corner["bl"].text()
    coronal = window.area.views["coronal"]  # 10 mm = 12.5 rows of 0.8 mm -> 12 rows
    g = coronal.geometry_
    stack = [g.slice_of(arr, i) for i in range(15 - 5, 15 - 5 + 12)]
    assert np.array_equal(coronal.image.image, np.max(stack, axis=0))
    c.slab_combo.setCurrentIndex(c.slab_combo.findText("MinIP"))
    assert np.array_equal(axial.image.image, arr[10:15].min(axis=0))
    assert "MinIP 10 mm" in axial.corner["bl"].text()
    c.slab_combo.setCurrentIndex(c.slab_combo.findText("Mean"))
    assert axial.image.image == pytest.approx(arr[10:15].mean(axis=0), abs=1e-3)
    c.slab_combo.setCurrentIndex(c.slab_combo.findText("Thin"))
    assert np.array_equal(axial.image.image, arr[12])
    assert "MIP" not in axial.corner["bl"].text()


def test_a_slab_on_an_oblique_view_reduces_parallel_oblique_slices(qtbot, window):
    vol = linear_volume(shape=(20, 40, 36))
    window.state.set_volume(vol)
    window.state.rotate("axial", math.radians(20))
    QApplication.processEvents()
    c = window.controls
    c.slab_spin.setValue(4.5)  # 5 steps of 0.9 mm
    c.slab_combo.setCurrentIndex(c.slab_combo.findText("MIP"))
    cor = window.area.views["coronal"]
    ob = window.state.oblique_slice("coronal")
    t = ob.depth_of(window.state.cursor_patient())
    background = OUTSIDE
    stack = [
        ob.sample(vol.array, t + k * ob.slice_step(), background=background) for k in range(-2, 3)
    ]
    assert np.array_equal(cor.image.image, np.max(stack, axis=0))
    assert "MIP 4.5 mm" in cor.corner["bl"].text()


def test_slab_controls_are_off_for_a_single_image(qtbot, window):
    window.state.set_volume(Volume(np.zeros((1, 20, 20), np.int16), modality="CR"))
    assert not window.controls.slab_combo.isEnabled()
    assert not window.action_map["reset_oblique"].isEnabled()
