"""What the viewer says about an image, as the user sees it: units of measurements and the
scale bar, orientation letters and plane names only where the image has a patient
orientation, frames for cine, the patient on every pane, LPS positions, the preset box."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from viewer.study.volume import Volume
from viewer.ui import actions
from viewer.ui.main_window import MainWindow
from viewer.ui.slab import Slab
from viewer.ui.state import CT_PRESETS

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton
NOMOD = Qt.KeyboardModifier.NoModifier
PATIENT = {"patient_name": "DOE^JANE", "patient_id": "PID-0042", "study_date": "20240131"}


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def show(window: MainWindow, volume: Volume) -> None:
    window.state.set_volume(volume)
    actions.refresh_presets(window, window.controls)
    QApplication.processEvents()


def texts(view) -> str:
    return "\n".join(label.text() for label in (*view.corner.values(), *view.letters.values()))


def image(shape, modality: str, spacing=(1.0, 1.0, 1.0), **meta) -> Volume:
    arr = np.random.default_rng(0).integers(0, 255, size=shape).astype(np.uint8)
    return Volume(
        arr, spacing, modality=modality, description=f"{modality} test", meta={**PATIENT, **meta}
    )


def ruler_preview(window: MainWindow, view, a_rc, b_rc) -> str:
    """Press and drag the ruler tool on ``view`` (not released) and read its live caption."""
    ctrl = window.annotations.controller
    ctrl.set_tool("ruler")
    vp = view.graphics.viewport()

    def at(rc) -> QPoint:
        return ctrl.voxel_to_viewport(view, np.array([0.0, *rc]))

    QTest.mousePress(vp, LEFT, NOMOD, at(a_rc))
    QTest.mouseMove(vp, at(b_rc))
    items = ctrl.drawing(view).preview_items
    caption = [i.toPlainText() for i in items if hasattr(i, "toPlainText")]
    QTest.mouseRelease(vp, LEFT, NOMOD, at(b_rc))
    return caption[0] if caption else ""


def test_an_ultrasound_without_spacing_is_measured_in_pixels(qtbot, window):
    us = image((1, 200, 300), "US", spacing_source="none", patient_orientation=False)
    show(window, us)
    view = window.area.views["axial"]
    assert view.scale_bar.label.endswith(" px") and view.scale_bar.length_mm == 0
    assert "mm" not in texts(view)
    assert all(label.text() == "" for label in view.letters.values())
    assert "Axial" not in texts(view)
    caption = ruler_preview(window, view, (50, 40), (50, 140))
    assert caption.endswith(" px") and float(caption.split(" ")[0]) == pytest.approx(100, abs=1)


def test_an_ultrasound_region_calibration_measures_in_mm(qtbot, window):
    us = image(
        (1, 200, 300),
        "US",
        spacing=(0.51, 0.51, 1.0),
        spacing_source="ultrasound",
        patient_orientation=False,
    )
    show(window, us)
    view = window.area.views["axial"]
    assert view.scale_bar.label.endswith(" mm")
    value, unit = ruler_preview(window, view, (50, 40), (50, 140)).split(" ")
    assert unit == "mm" and float(value) == pytest.approx(100 * 0.51, abs=0.6)


def test_a_radiograph_with_imager_spacing_is_measured_at_the_detector(qtbot, window):
    cr = image((1, 240, 200), "CR", spacing=(0.2, 0.2, 1.0), spacing_source="detector")
    show(window, cr)
    view = window.area.views["axial"]
    assert view.scale_bar.label.endswith(" mm at detector")
    caption = ruler_preview(window, view, (20, 20), (20, 70))
    assert caption.endswith(" mm at detector")
    assert float(caption.split(" ")[0]) == pytest.approx(50 * 0.2, abs=0.3)


def test_a_radiograph_without_spacing_has_no_mm_scale_bar(qtbot, window):
    cr = image((1, 240, 200), "CR", spacing_source="none")
    show(window, cr)
    bar = window.area.views["axial"].scale_bar
    assert bar.label.endswith(" px") and "mm" not in bar.label


def test_the_scale_bar_label_is_never_clipped(qtbot, window):
    show(window, image((1, 240, 200), "CR", spacing=(0.2, 0.2, 1.0), spacing_source="detector"))
    view = window.area.views["axial"]
    for factor in (0.2, 1.0, 3.0, 9.0):
        view.zoom_by(factor)
        QApplication.processEvents()
        bar = view.scale_bar
        assert bar.fontMetrics().horizontalAdvance(bar.label) <= bar.width() - 2
        assert bar.length_px <= bar.width()


def test_an_echo_clip_shows_frames_and_frame_time_not_slices_and_planes(qtbot, window):
    echo = image(
        (120, 60, 80),
        "US",
        spacing=(0.3, 0.3, 1.0),
        spacing_source="ultrasound",
        patient_orientation=False,
        frame_time_ms=33.3,
    )
    show(window, echo)
    view = window.area.views["axial"]
    window.state.set_slice("axial", 60)
    bl, tr = view.corner["bl"].text(), view.corner["tr"].text()
    assert bl.startswith("Frame 61/120\n33.3 ms/frame")
    assert "Slice" not in bl and "mm" not in bl
    assert "Axial" not in tr and "US test" in tr
    assert all(label.text() == "" for label in view.letters.values())
    assert list(window.state.planes) == ["axial"]  # no reformatted planes
    window.action_map["layout_2x2"].trigger()
    assert window.area.layout_name == "single"
    assert not window.action_map["plane_coronal"].isEnabled()
    assert window.controls.plane_combo.currentText() == "Frames"
    assert window.controls.fps_spin.value() == 30  # plays at the acquired rate
    assert window.action_map["cine"].isEnabled()
    view.hovered.emit(np.array([60.0, 10.0, 20.0]))
    status = window.statusBar().findChildren(type(view.corner["bl"]))
    readout = next(s.text() for s in status if "pixel (" in s.text())
    assert "pixel (x 20, y 10)   frame 61/120" in readout and "LPS" not in readout


def test_a_stack_of_radiographs_is_not_called_axial(qtbot, window):
    stack = image((4, 64, 64), "CR", patient_orientation=False, spacing_source="none")
    show(window, stack)
    view = window.area.views["axial"]
    assert view.corner["bl"].text().startswith("Frame 3/4")
    assert "Axial" not in texts(view) and "mm" not in texts(view)


def _overlap(a, b) -> bool:
    return QRect(a.geometry()).intersects(QRect(b.geometry()))


@pytest.mark.parametrize("size", [(1200, 760), (760, 560)])
def test_the_patient_is_on_every_pane_of_2x2_and_never_over_the_letters(qtbot, window, size):
    ct = Volume(np.zeros((20, 64, 64), np.int16), (0.7, 0.7, 2.5), modality="CT", meta=PATIENT)
    window.resize(*size)
    show(window, ct)
    window.area.set_layout("2x2")
    QApplication.processEvents()
    for plane, view in window.area.views.items():
        assert view.width() < 380  # the width that used to hide the patient
        tl, tr = view.corner["tl"], view.corner["tr"]
        assert tl.isVisible() and tr.isVisible()
        lines = tl.text().split("\n")
        assert len(lines) == 3, plane
        for line, full in zip(lines, ("DOE, JANE", "PID-0042", "2024-01-31"), strict=True):
            assert line == full or (line.endswith("…") and full.startswith(line[:-1])), line
        top = view.letters["top"]
        assert top.text() and not _overlap(tl, top) and not _overlap(tr, top), plane
        assert not _overlap(view.corner["bl"], view.letters["bottom"])


def test_at_the_smallest_pane_the_patient_is_abbreviated_not_hidden(qtbot, window):
    ct = Volume(np.zeros((20, 64, 64), np.int16), (0.7, 0.7, 2.5), modality="CT", meta=PATIENT)
    show(window, ct)
    view = window.area.views["axial"]
    view.text.graphics.resize(view.minimumWidth(), view.minimumHeight())
    view.text.place()
    tl, top = view.corner["tl"], view.letters["top"]
    assert tl.isVisible() and tl.text().startswith("D") and "…" in tl.text()
    assert not _overlap(tl, top)


def test_negated_orientation_positions_agree_with_the_lps_readout(qtbot, window):
    arr = np.zeros((10, 32, 32), np.int16)
    ct = Volume(
        arr,
        (1.0, 1.0, 2.0),
        origin=(128.0, 128.0, 40.0),
        direction=np.diag([-1.0, -1.0, -1.0]),
        modality="CT",
        meta=PATIENT,
    )
    show(window, ct)
    window.area.set_layout("2x2")
    QApplication.processEvents()
    window.state.set_cursor((3.0, 0.0, 5.0))
    x, y, z = window.state.cursor_patient()
    assert y == pytest.approx(128.0)
    views = window.area.views
    assert f"LPS y {y:.1f} mm" in views["coronal"].corner["bl"].text()
    assert f"LPS z {z:.1f} mm" in views["axial"].corner["bl"].text()
    assert f"LPS x {x:.1f} mm" in views["sagittal"].corner["bl"].text()
    # The status bar's readout over the same voxel says the same coordinates.
    views["coronal"].hovered.emit(window.state.cursor.copy())
    status = window.statusBar().findChildren(type(views["axial"].corner["bl"]))
    readout = next(s.text() for s in status if "LPS (" in s.text())
    assert f"LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm" in readout


def _right_drag(view) -> None:
    vp = view.graphics.viewport()
    start = QPoint(vp.width() // 2, vp.height() // 2)
    QTest.mousePress(vp, Qt.MouseButton.RightButton, NOMOD, start)
    for k in range(1, 6):
        pos = QPointF(start + QPoint(6 * k, -4 * k))
        QApplication.sendEvent(
            vp,
            QMouseEvent(
                QMouseEvent.Type.MouseMove,
                pos,
                QPointF(vp.mapToGlobal(pos.toPoint())),
                Qt.MouseButton.NoButton,
                Qt.MouseButton.RightButton,
                NOMOD,
            ),
        )
    QTest.mouseRelease(vp, Qt.MouseButton.RightButton, NOMOD, start + QPoint(30, -20))


def test_the_preset_box_follows_the_window_shown(qtbot, window):
    ct = Volume(
        np.random.default_rng(2).integers(-1000, 1000, (8, 32, 32)).astype(np.int16),
        (0.7, 0.7, 2.5),
        modality="CT",
        windows=[(50.0, 350.0, "MEDIASTINUM")],
        meta=PATIENT,
    )
    show(window, ct)
    combo = window.controls.preset_combo
    assert combo.currentText() == "File: MEDIASTINUM"  # the window the file opens with
    combo.activated.emit(combo.findText("Lung"))
    assert (window.state.center, window.state.width) == CT_PRESETS["Lung"]
    assert combo.currentText() == "Lung"
    _right_drag(window.area.views["axial"])
    assert (window.state.center, window.state.width) != CT_PRESETS["Lung"]
    assert combo.currentText() == "Custom"
    window.action_map["reset"].trigger()
    assert combo.currentText() == "File: MEDIASTINUM"
    window.state.set_window(*CT_PRESETS["Bone"])
    assert combo.currentText() == "Bone"


@pytest.mark.parametrize("size", [(120, 120), (160, 140), (200, 260)])
def test_no_corner_text_covers_a_letter_even_in_the_smallest_pane(qtbot, window, size):
    ct = Volume(np.zeros((20, 64, 64), np.int16), (0.7, 0.7, 2.5), modality="CT", meta=PATIENT)
    show(window, ct)
    window.state.set_slab(Slab("mip", 10.0))  # the longest bottom-left text
    view = window.area.views["axial"]
    view.text.graphics.resize(*size)
    view.text.place()
    for corner in view.corner.values():
        for letter in view.letters.values():
            assert not _overlap(corner, letter), (corner.text(), letter.text())
        bar = view.scale_bar
        assert not (bar.isVisibleTo(view) and _overlap(bar, corner)), corner.text()
    tl = view.corner["tl"].text()
    for part in ("D", "P", "2"):  # name, ID and date each still begin on the pane
        assert any(line.startswith(part) for line in tl.split("\n")), tl
    assert view.corner["bl"].text().startswith("Slice ")


def test_a_files_voi_lut_is_the_window_it_opens_with_and_a_preset_among_the_others(
    qtbot, window, tmp_path
):
    from tests.test_study_calibration import _load_only, _with_voi_lut
    from viewer.study import facts
    from viewer.ui.state import VOI_LUT_PRESET

    _with_voi_lut(tmp_path / "ct" / "x.dcm")
    _, vol = _load_only(tmp_path / "ct")
    show(window, vol)
    combo = window.controls.preset_combo
    view = window.area.views["axial"]
    assert combo.currentText() == VOI_LUT_PRESET
    shown = view.image.image
    assert np.array_equal(shown, facts.apply_voi_lut(vol, vol.array[0]))  # the table's output
    combo.activated.emit(combo.findText("Lung"))  # a plain window shows the values themselves
    assert combo.currentText() == "Lung"
    assert np.array_equal(view.image.image, vol.array[0])
    window.action_map["reset"].trigger()  # back to the file's own VOI LUT
    assert combo.currentText() == VOI_LUT_PRESET
    assert np.array_equal(view.image.image, facts.apply_voi_lut(vol, vol.array[0]))


def test_the_annotations_list_gives_a_ruler_in_pixels_without_spacing_and_in_mm_with_it():
    from viewer.labels.model import Ruler
    from viewer.ui.calibration import Calibration
    from viewer.ui.panels.annotations import describe

    ruler = Ruler(id="r1", label="x", start=(0.0, 0.0, 0.0), end=(0.0, 30.0, 40.0))
    image = np.zeros((1, 64, 64), np.uint8)
    bare = Volume(image, (0.5, 0.5, 1.0), modality="US", meta={"spacing_source": "none"})
    assert describe(ruler, Calibration.of(bare)) == "50.0 px"
    calibrated = Volume(image, (0.5, 0.5, 1.0), modality="CT")
    assert describe(ruler, Calibration.of(calibrated)) == "25.0 mm"


def test_roi_caption_gives_pixels_without_spacing_and_no_volume_at_the_detector():
    from viewer.labels.stats import RoiStats
    from viewer.ui.calibration import Calibration
    from viewer.ui.tools.drawing import format_stats

    stats = RoiStats(
        voxels=100, mean=10.0, sd=1.0, min=5.0, max=15.0, area_mm2=25.0, volume_ml=0.025
    )
    image = np.zeros((1, 64, 64), np.uint8)
    bare = Calibration.of(Volume(image, (0.5, 0.5, 1.0), meta={"spacing_source": "none"}))
    detector = Calibration.of(Volume(image, (0.5, 0.5, 1.0), meta={"spacing_source": "detector"}))
    patient = Calibration.of(Volume(image, (0.5, 0.5, 1.0), modality="CT"))
    assert format_stats(stats, "", bare).splitlines()[-1] == "100 px²"
    assert format_stats(stats, "", detector).splitlines()[-1] == "25.0 mm² at detector"
    assert format_stats(stats, "HU", patient).splitlines()[-1] == "25.0 mm²  0.025 mL"


def test_corner_text_stays_readable_over_a_white_image(window):
    """Light corner text over bone or contrast: a dark halo keeps it apart from the pixels
    (before, the text over a white image was light on white)."""
    arr = np.full((4, 64, 64), 255, np.uint8)
    show(window, Volume(arr, (1.0, 1.0, 1.0), modality="OT", meta=dict(PATIENT)))
    view = window.area.views["axial"]
    window.state.set_window(0.0, 1.0)  # every pixel white
    view.zoom_by(4.0)  # the image fills the pane, corners included
    QApplication.processEvents()
    label = view.corner["tl"]
    assert "DOE, JANE" in label.text()
    shot = view.graphics.grab(label.geometry()).toImage()
    px = [
        shot.pixelColor(x, y).lightness() for y in range(shot.height()) for x in range(shot.width())
    ]
    assert max(px) >= 220  # the white image and the light text
    assert sum(v < 60 for v in px) >= 20  # the halo: dark pixels around the letters
