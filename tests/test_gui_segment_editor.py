"""The Segment Editor in the window: real mouse events and panel buttons -> label Document."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from phantoms.chest import chest_ct
from tests.test_gui_annotate import Harness
from viewer.study.volume import Volume
from viewer.ui.tools.segment_editor import PREVIEW_LAYER

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


def dice(a, b) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


@pytest.fixture
def ui(qtbot):
    ct = chest_ct(shape=(16, 48, 56), seed=5, n_nodules=1, vessels=False, noise_hu=5.0)
    volume = Volume(ct.hu, spacing=ct.spacing, modality="CT", series_uid="1.2.3.16.1")
    h = Harness(qtbot, volume)
    h.truth = ct.labels
    h.editor = h.window.annotations.segment_editor
    h.seg_panel = h.window.annotations.segment_panel
    yield h
    h.close()


def lung_voxel(truth, z: int) -> tuple[int, int, int]:
    """A lung voxel of slice z far from the lung's edge."""
    from scipy import ndimage

    inside = ndimage.distance_transform_edt(truth[z] == 1)
    y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
    return z, int(y), int(x)


def test_click_grows_the_lung_on_the_slice_and_shift_click_removes_it(ui, qtbot):
    z = 8
    p = lung_voxel(ui.truth, z)
    ui.goto(p)
    ui.window.annotations.set_tool("click_segment")
    ui.ctrl.set_label(1)
    view = ui.views["axial"].graphics.viewport()
    QTest.mouseClick(view, LEFT, Qt.KeyboardModifier.NoModifier, ui.at("axial", p))
    arr = ui.doc.labelmap.array
    lung_side = ui.truth[z] == 1
    # One lung (the one clicked): the grown region is its connected half of the lungs.
    assert (arr[z] == 1).sum() > 0 and not (arr[z - 1] == 1).any()
    from scipy import ndimage

    halves, _ = ndimage.label(lung_side)
    clicked = halves == halves[p[1], p[2]]
    assert dice(arr[z] == 1, clicked) > 0.9
    QTest.mouseClick(view, LEFT, Qt.KeyboardModifier.ShiftModifier, ui.at("axial", p))
    assert not (ui.doc.labelmap.array == 1).any()
    ui.ctrl.undo()
    assert dice(ui.doc.labelmap.array[z] == 1, clicked) > 0.9


def test_grow_from_seeds_previews_live_and_accept_is_one_undo_step(ui, qtbot):
    z = 8
    p = lung_voxel(ui.truth, z)
    ui.goto(p)
    button = ui.seg_panel.findChild(type(ui.seg_panel.seeds_start), "seeds_background")
    qtbot.mouseClick(button, LEFT)
    background = ui.ctrl.ctx.label
    assert ui.doc.label_set.get(background).name == "background"
    qtbot.mouseClick(ui.seg_panel.seeds_start, LEFT)
    assert ui.editor.seeds_on and ui.window.annotations.controller.tool_name == "brush"
    ui.ctrl.ctx.brush_radius_mm = 3.0
    body = (ui.truth[z] == 0) & (ui.volume.array[z] > -300)
    by, bx = np.argwhere(body)[len(np.argwhere(body)) // 2]
    ui.drag("axial", (z, by, bx), (z, by, bx + 2))  # a stroke in the chest wall
    # ...and one in the mediastinum, between the lungs on the row of the lung stroke.
    row = (ui.truth[z, p[1]] == 0) & (ui.volume.array[z, p[1]] > -300)
    mid = np.flatnonzero(row)
    mx = int(mid[np.argmin(np.abs(mid - ui.truth.shape[2] / 2))])
    ui.drag("axial", (z, p[1] - 1, mx), (z, p[1] + 1, mx))
    ui.ctrl.set_label(1)
    ui.drag("axial", (z, p[1] - 2, p[2]), (z, p[1] + 2, p[2]))  # a stroke in a lung
    qtbot.waitUntil(
        lambda: ui.editor.preview is not None and ui.editor.preview.labels == (1, background),
        timeout=20_000,
    )
    first = ui.editor.preview
    assert PREVIEW_LAYER in ui.state.layers.names()
    # Another stroke (the other lung): the preview follows.
    cols = np.arange(ui.truth.shape[2])
    far_side = cols > mx if p[2] < mx else cols < mx
    other = np.argwhere((ui.truth[z] == 1) & far_side)
    oy, ox = other[len(other) // 2]
    ui.drag("axial", (z, oy, ox), (z, oy + 1, ox))
    qtbot.waitUntil(
        lambda: ui.editor.preview is not first and not ui.editor._preview_running,
        timeout=20_000,
    )
    seeds = ui.doc.labelmap.array.copy()
    qtbot.waitUntil(lambda: ui.seg_panel.seeds_accept.isEnabled(), timeout=5_000)
    n_undo = len(ui.doc._undo)
    qtbot.mouseClick(ui.seg_panel.seeds_accept, LEFT)
    qtbot.waitUntil(lambda: not ui.editor.seeds_on, timeout=30_000)
    assert PREVIEW_LAYER not in ui.state.layers.names()
    arr = ui.doc.labelmap.array
    assert len(ui.doc._undo) == n_undo + 1
    assert not (arr == background).any()  # the background label's result is cleared
    lungs = ui.truth == 1
    # Within the region the strokes span (plus its margin), the lungs are found.
    region = ui.editor._grower.region_of(seeds)
    assert dice(arr[region] == 1, lungs[region]) > 0.85
    assert not (arr == 1)[tuple(slice(0, r.start) for r in region)].any()
    ui.ctrl.undo()
    assert np.array_equal(ui.doc.labelmap.array, seeds)


def test_keep_largest_island_from_the_panel_and_undo(ui, qtbot):
    arr = ui.doc.labelmap.array
    big = np.zeros(arr.shape, bool)
    big[4:10, 10:20, 10:20] = True
    small = np.zeros(arr.shape, bool)
    small[4:6, 30:33, 30:33] = True
    from viewer.labels.mask_edits import apply_label_mask

    apply_label_mask(ui.doc, 1, big | small, "paint")
    ui.ctrl.set_label(1)
    panel = ui.seg_panel
    panel.island_mode.setCurrentIndex(panel.island_mode.findData("keep_largest"))
    qtbot.mouseClick(panel.findChild(type(panel.seeds_start), "islands_apply"), LEFT)
    assert np.array_equal(ui.doc.labelmap.array == 1, big)
    ui.ctrl.undo()
    assert np.array_equal(ui.doc.labelmap.array == 1, big | small)
    # Keep the one clicked: a click on the small island with the island tool.
    panel.in_3d.setChecked(True)  # the island in 3D, not only on the slice shown
    panel.island_mode.setCurrentIndex(panel.island_mode.findData("keep_selected"))
    qtbot.mouseClick(panel.findChild(type(panel.seeds_start), "islands_apply"), LEFT)
    assert ui.ctrl.tool_name == "island"
    ui.goto((5, 31, 31))
    view = ui.views["axial"].graphics.viewport()
    QTest.mouseClick(view, LEFT, Qt.KeyboardModifier.NoModifier, ui.at("axial", (5, 31, 31)))
    assert np.array_equal(ui.doc.labelmap.array == 1, small)


def test_a_result_computed_while_the_labels_changed_is_dropped(ui, qtbot):
    import threading

    from viewer.labels.mask_edits import apply_label_mask, label_mask_edit

    release = threading.Event()
    arr = ui.doc.labelmap.array
    mask = np.zeros(arr.shape, bool)
    mask[2:4, 5:9, 5:9] = True

    def work(cancelled):
        release.wait(10)
        return label_mask_edit(arr, 1, mask, "late")

    applied = []
    ui.editor.run_job("Late work…", work, lambda edit: applied.append(edit), True)
    other = np.zeros(arr.shape, bool)
    other[10, 1:3, 1:3] = True
    apply_label_mask(ui.doc, 2, other, "paint meanwhile")  # the user goes on editing
    release.set()
    with qtbot.waitSignal(ui.editor.operation_finished, timeout=10_000) as finished:
        pass
    assert finished.args == ["dropped"] and not applied
    assert not (ui.doc.labelmap.array == 1).any()
