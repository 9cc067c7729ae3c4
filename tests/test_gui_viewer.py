"""The viewer as a user drives it: open a folder, pick a series, scroll, window, switch planes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from tests.dicom_factory import write_ct_series
from viewer.study.volume import Volume
from viewer.ui.main_window import MainWindow
from viewer.ui.state import CT_PRESETS

pytestmark = pytest.mark.gui

SHAPE = (6, 24, 20)  # z, y, x
SPACING = (0.7, 0.8, 2.5)  # x, y, z mm


def _values() -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    # Every voxel distinct and known: HU = 100 z + 3 y + x - 900.
    return (100 * z + 3 * y + x - 900).astype(np.int16)


@pytest.fixture
def series_dir(tmp_path: Path) -> Path:
    write_ct_series(tmp_path / "ct", shape=SHAPE, spacing=SPACING, values=_values())
    return tmp_path


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1100, 700)
    w.show()
    yield w
    w.cancel_work()
    w.wait_idle()


def _open_and_wait(qtbot, window: MainWindow, path: Path) -> Volume:
    with qtbot.waitSignal(window.series_loaded, timeout=15000) as blocker:
        window.open_path(path)
    qtbot.waitUntil(lambda: not window.tasks, timeout=5000)
    return blocker.args[0]


def _wheel(view, steps: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    vp = view.graphics.viewport()
    centre = QPointF(vp.width() / 2, vp.height() / 2)
    event = QWheelEvent(
        centre,
        QPointF(vp.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(vp, event)


def _drag(qtbot, view, button: Qt.MouseButton, step: QPoint, steps: int = 5) -> None:
    vp = view.graphics.viewport()
    start = QPoint(vp.width() // 2, vp.height() // 2)
    qtbot.mousePress(vp, button, pos=start)
    for k in range(1, steps + 1):
        # QTest.mouseMove cannot carry buttons; send the move with the button held.
        pos = QPointF(start + step * k)
        move = QMouseEvent(
            QMouseEvent.Type.MouseMove,
            pos,
            QPointF(vp.mapToGlobal(pos.toPoint())),
            Qt.MouseButton.NoButton,
            button,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(vp, move)
    qtbot.mouseRelease(vp, button, pos=start + step * steps)


def test_open_folder_lists_series_and_shows_the_middle_slice(qtbot, window, series_dir):
    vol = _open_and_wait(qtbot, window, series_dir)
    tree = window.browser.tree
    assert tree.topLevelItemCount() == 1
    row = [tree.topLevelItem(0).text(c) for c in range(7)]
    assert row[0] == "TEST^PATIENT" and row[2] == "CT" and row[3] == "Factory CT"
    assert row[4] == str(SHAPE[0]) and row[5] == f"{SHAPE[2]}×{SHAPE[1]}"
    assert vol.shape == SHAPE
    assert np.array_equal(vol.array, _values())
    axial = window.area.views["axial"]
    assert axial.index() == SHAPE[0] // 2
    assert np.array_equal(axial.image.image, _values()[SHAPE[0] // 2])
    assert f"Slice {SHAPE[0] // 2 + 1}/{SHAPE[0]}" in axial.corner["bl"].text()
    assert str(series_dir.resolve()) == window.settings.recent_folders()[0]


def test_two_series_wait_for_a_double_click(qtbot, window, tmp_path):
    write_ct_series(tmp_path / "a", shape=(3, 8, 8), description="first")
    write_ct_series(tmp_path / "b", shape=(4, 10, 12), description="second")
    with qtbot.waitSignal(window.scan_finished, timeout=15000):
        window.open_path(tmp_path)
    assert window.browser.tree.topLevelItemCount() == 2
    assert window.state.volume is None
    info = next(s for s in window.browser.series if s.description == "second")
    item = window.browser.item_for(info)
    with qtbot.waitSignal(window.series_loaded, timeout=15000):
        window.browser.tree.itemActivated.emit(item, 0)
    assert window.state.volume.shape == (4, 10, 12)


def test_wheel_and_keys_scroll_through_slices(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    view = window.area.views["axial"]
    start = view.index()
    _wheel(view, 1)
    assert view.index() == start + 1
    _wheel(view, -1)
    _wheel(view, -1)
    assert view.index() == start - 1
    assert np.array_equal(view.image.image, _values()[start - 1])
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.index() == start
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.index() == SHAPE[0] - 1
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert view.index() == 0
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    assert view.index() == 1  # a tenth of six slices rounds up to one


def test_ctrl_wheel_zooms_instead_of_scrolling(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    view = window.area.views["axial"]
    index, zoom = view.index(), view.zoom_factor()
    _wheel(view, 1, Qt.KeyboardModifier.ControlModifier)
    assert view.index() == index
    assert view.zoom_factor() > zoom * 1.1


def test_window_preset_and_right_drag_change_the_levels(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    view = window.area.views["axial"]
    assert (window.state.center, window.state.width) == (40.0, 400.0)  # the file's window
    lung = next(a for a in window.controls.presets_menu.actions() if a.text().startswith("Lung"))
    lung.trigger()
    assert (window.state.center, window.state.width) == CT_PRESETS["Lung"]
    assert tuple(view.image.levels) == pytest.approx((-1350.0, 150.0))

    _drag(qtbot, view, Qt.MouseButton.RightButton, QPoint(12, -8))
    assert window.state.width > CT_PRESETS["Lung"][1]  # dragged right: wider
    assert window.state.center > CT_PRESETS["Lung"][0]  # dragged up: higher level


def test_middle_drag_pans_and_fit_restores(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    view = window.area.views["axial"]
    before = view.view_box.viewRange()[0][0]
    _drag(qtbot, view, Qt.MouseButton.MiddleButton, QPoint(15, 0))
    after = view.view_box.viewRange()[0][0]
    assert after < before  # dragged right: the image moves right, the range left
    window.action_map["fit"].trigger()
    assert view.view_box.viewRange()[0][0] == pytest.approx(before, abs=0.5)


def test_dropping_a_folder_opens_it(qtbot, window, series_dir):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(series_dir))])
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.series_loaded, timeout=15000):
        window.dropEvent(drop)
    assert window.state.volume.shape == SHAPE
    assert window.area.active_view.hasFocus() or not window.isActiveWindow()


def test_plane_switch_and_mpr_layout_use_true_mm_aspect(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    window.action_map["plane_coronal"].trigger()
    coronal = window.area.views["coronal"]
    assert window.area.active_plane == "coronal" and coronal.isVisible()
    assert not window.area.views["axial"].isVisible()
    rect = coronal.image.mapRectToParent(coronal.image.boundingRect())
    assert rect.width() == pytest.approx(SHAPE[2] * SPACING[0])
    assert rect.height() == pytest.approx(SHAPE[0] * SPACING[2])
    assert coronal.letters["top"].text() == "S" and coronal.letters["left"].text() == "R"
    window.action_map["layout_1x3"].trigger()
    assert all(v.isVisible() for v in window.area.views.values())
    window.action_map["layout_2x2"].trigger()
    assert window.area.info_cell.isVisible()


def test_crosshair_click_links_the_other_planes(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    window.action_map["layout_1x3"].trigger()
    axial = window.area.views["axial"]
    geom = window.state.planes["axial"]
    x, y = geom.pixel_to_scene(row=5, col=7)
    axial.move_cursor_to(QPointF(x, y))
    assert window.state.slice_index("coronal") == 5
    assert window.state.slice_index("sagittal") == 7
    sag = window.area.views["sagittal"]
    assert np.array_equal(sag.image.image, _values()[::-1, :, 7])
    assert axial.v_line.isVisible() and axial.v_line.value() == pytest.approx(x)
    window.action_map["layout_single"].trigger()
    assert not axial.v_line.isVisible()  # no crosshair over a single image


def test_hover_shows_hu_voxel_and_patient_mm(qtbot, window, series_dir):
    assert "Open a folder" in window.hover_label.text()
    vol = _open_and_wait(qtbot, window, series_dir)
    assert "Open a folder" not in window.hover_label.text()  # the start-up hint is gone for good
    view = window.area.views["axial"]
    z = view.index()
    x_mm, y_mm = window.state.planes["axial"].pixel_to_scene(row=4, col=9)
    scene = view.view_box.mapViewToScene(QPointF(x_mm, y_mm))
    view._mouse_moved(scene)
    text = window.hover_label.text()
    assert f"{100 * z + 3 * 4 + 9 - 900} HU" in text
    assert f"voxel (x 9, y 4, z {z})" in text
    lx, ly, lz = vol.index_to_patient((z, 4, 9))
    assert f"LPS ({lx:.1f}, {ly:.1f}, {lz:.1f}) mm" in text


def test_bad_folder_names_the_skipped_files(qtbot, window, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 200)
    with qtbot.waitSignal(window.scan_finished, timeout=15000):
        window.open_path(tmp_path)
    assert "skipped" in window.last_error
    dialog = window.show_problems()
    names = {Path(dialog.tree.topLevelItem(i).text(0)).name for i in range(2)}
    assert names == {"notes.txt", "broken.dcm"}
    assert all(dialog.tree.topLevelItem(i).text(1) for i in range(2))
    window.open_path(tmp_path / "missing")
    assert "missing" in window.last_error


def test_a_series_that_fails_to_load_reports_why(qtbot, window, tmp_path):
    truth = write_ct_series(tmp_path / "s", shape=(3, 8, 8))
    write_ct_series(tmp_path / "t", shape=(2, 8, 8))  # two series: nothing opens by itself
    with qtbot.waitSignal(window.scan_finished, timeout=15000):
        window.open_path(tmp_path)
    info = next(s for s in window.browser.series if s.n_images == 3)
    for path in truth.paths:  # the files vanish between scan and open (a USB stick pulled)
        path.unlink()
    with qtbot.waitSignal(window.load_failed, timeout=15000) as blocker:
        window.open_series(info)
    message = blocker.args[0]
    assert message == window.last_error
    assert any(p.name in message for p in truth.paths)
    assert window.isVisible() and window.state.volume is None


def test_rgb_and_single_images(qtbot, window):
    rgb = np.zeros((1, 10, 12, 3), np.uint8)
    rgb[0, 2, 3] = (255, 0, 0)
    window.state.set_volume(Volume(rgb, modality="OT"))
    from viewer.ui import actions

    actions.refresh_presets(window, window.controls)
    view = window.area.views["axial"]
    assert view.image.image.shape == (10, 12, 3)
    assert not window.controls.preset_combo.isEnabled()
    window.action_map["layout_1x3"].trigger()
    assert window.area.layout_name == "single"  # a 2D image has one plane only
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.index() == 0
    assert not view.v_line.isVisible()
    assert view.letters["top"].text() == ""  # no orientation known for a projection image


def test_shortcuts_dialog_lists_the_bound_keys(qtbot, window):
    window.action_map["shortcuts"].trigger()
    texts = window.controls.dialogs["shortcuts"].shortcut_texts()
    for key in ("Ctrl+O", "A", "C", "S", "W", "I", "Space", "Home / End"):
        assert key in texts


def test_recent_folders_persist_across_windows(qtbot, window, tmp_path):
    window.settings.add_recent(tmp_path / "one")
    window.settings.add_recent(tmp_path / "two")
    window.settings.add_recent(tmp_path / "one")
    from viewer.ui.settings import Settings

    again = Settings().recent_folders()
    assert again[:2] == [str((tmp_path / "one").resolve()), str((tmp_path / "two").resolve())]


def test_demo_opens_the_synthetic_chest_ct(qtbot, window):
    with qtbot.waitSignal(window.series_loaded, timeout=60000) as blocker:
        window.open_demo()
    vol = blocker.args[0]
    assert vol.modality == "CT" and vol.shape[0] > 1
    assert "demo" in vol.description.lower()
    # The file's own windows come first, then the CT presets.
    names = [a.text() for a in window.controls.presets_menu.actions()]
    assert names[0].startswith("File:") and any(n.startswith("Stroke") for n in names)


def test_cine_advances_and_cancel_leaves_the_window_usable(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    start = window.state.slice_index("axial")
    window.area.set_cine(True, fps=50)
    qtbot.waitUntil(lambda: window.state.slice_index("axial") != start, timeout=3000)
    window.action_map["cine"].setChecked(False)
    window.area.set_cine(False)
    window.open_path(series_dir)
    window.cancel_work()
    qtbot.waitUntil(lambda: not window.tasks, timeout=10000)
    assert not window.cancel_button.isVisible()
    assert window.state.volume is not None  # what was loaded stays


def test_a_single_dicom_file_opens_too(qtbot, window, tmp_path):
    truth = write_ct_series(tmp_path / "s", shape=(3, 8, 8))
    vol = _open_and_wait(qtbot, window, truth.paths[0])
    assert vol.shape == (1, 8, 8)


def test_one_cancel_stops_every_background_job(qtbot, window):
    """Loading-style tasks and pool jobs (Analyze, training) share one bar and one Cancel."""
    import time

    from radlens_core.progress import Cancelled

    window.show()
    bar = window.services.activity
    outcome: list[str] = []

    def slow(ctx):
        for _ in range(500):
            ctx.check()  # raises the core Cancelled once Cancel is pressed
            time.sleep(0.01)
        return "done"

    task = window.services.run(slow, "Slow job", outcome.append)
    pool_job: list[str] = []
    activity = window.services.begin("Pool job", lambda: pool_job.append("cancelled"))
    activity.progress(0.5, "window 3 of 6")
    assert bar.progress.isVisible() and bar.cancel_button.isVisible()
    assert bar.sentence.text() == "window 3 of 6" and bar.progress.value() == 500
    bar.cancel_button.click()
    assert pool_job == ["cancelled"] and task.cancelled()
    qtbot.waitUntil(lambda: not window.tasks, timeout=10_000)
    assert outcome == [] and bar.progress.isVisible()  # the pool job has not ended yet
    activity.end()
    assert not bar.progress.isVisible() and not bar.cancel_button.isVisible()
    from viewer.ui import workers

    assert workers.Cancelled is Cancelled  # one Cancelled, the core one


def test_started_on_a_folder_the_viewer_shows_its_first_series_by_itself(qtbot, tmp_path):
    """`radlens FOLDER`: the first series is shown (the scan goes on for the rest); a folder
    opened from the menu still waits for a double-click when it holds several series."""
    from viewer.ui.app import open_window

    write_ct_series(tmp_path / "a", shape=(3, 8, 8), description="first")
    write_ct_series(tmp_path / "b", shape=(4, 10, 12), description="second")
    window = open_window(tmp_path, warm_up=False)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.state.volume is not None, timeout=20000)
    window.wait_idle()
    assert window.browser.tree.topLevelItemCount() == 2
    assert window.state.volume.shape in ((3, 8, 8), (4, 10, 12))
    window.close()


def test_scrolling_relays_out_only_the_corner_texts_that_changed(qtbot, window, series_dir):
    _open_and_wait(qtbot, window, series_dir)
    axial, coronal = window.area.views["axial"], window.area.views["coronal"]
    placed = {"axial": 0, "coronal": 0}
    for name, view in (("axial", axial), ("coronal", coronal)):
        real = view.text.place

        def counting(real=real, name=name):
            placed[name] += 1
            real()

        view.text.place = counting
    before = coronal.corner["bl"].text()
    _wheel(axial, 1)
    # The axial slice number changed: its corner is laid out again; the coronal plane's
    # own text (its slice, its size) did not, so nothing of it is redone.
    assert placed["axial"] >= 1
    assert placed["coronal"] == 0 and coronal.corner["bl"].text() == before
    window.state.set_window(-600.0, 1234.0)  # every pane's W/L line changes: all relaid
    assert placed["coronal"] >= 1 and coronal.corner["br"].text().startswith("W 12")  # elided
