"""Overlay layers (label map, heat map, boxes) land on the right voxels on every plane."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.study.volume import Volume
from viewer.ui.layers import BoxItem, Layer
from viewer.ui.overlays import heat_rgba, label_outline
from viewer.ui.panels.layers_panel import LayersPanel
from viewer.ui.state import ViewerState
from viewer.ui.viewer_area import ViewerArea

pytestmark = pytest.mark.gui

SHAPE = (5, 9, 11)


@pytest.fixture
def area(qtbot):
    state = ViewerState()
    area = ViewerArea(state)
    qtbot.addWidget(area)
    area.resize(900, 400)
    area.set_layout("1x3")
    area.show()
    # Non-identity direction: the flips must apply to overlays exactly as to the image.
    vol = Volume(
        np.zeros(SHAPE, np.int16),
        spacing=(0.5, 0.75, 3.0),
        direction=np.diag([-1.0, 1.0, -1.0]),
        modality="CT",
    )
    state.set_volume(vol)
    state.set_cursor((2, 4, 6))
    return area


def _pixel_of(area, plane: str, zyx) -> tuple[int, int]:
    geom = area.state.planes[plane]
    _, row, col = geom.from_voxel(zyx)
    return int(row), int(col)


def test_label_map_voxel_is_drawn_at_the_same_pixel_as_the_image(area):
    labels = np.zeros(SHAPE, np.uint8)
    labels[2, 4, 6] = 3
    area.state.layers.add(Layer("mask", "labels", labels, opacity=0.6))
    for plane, view in area.views.items():
        overlay = view.overlays["mask"]
        rgba = overlay.drawn_rgba()
        row, col = _pixel_of(area, plane, (2, 4, 6))
        assert rgba[row, col, 3] == 255, plane
        assert rgba[..., 3].sum() == 255, plane  # exactly one opaque pixel
        # Same placement as the image item: same rect in scene mm.
        assert overlay.mapRectToParent(overlay.boundingRect()) == view.image.mapRectToParent(
            view.image.boundingRect()
        )
        assert overlay.opacity() == pytest.approx(0.6)


def test_heat_map_threshold_and_layer_visibility(area):
    heat = np.zeros(SHAPE, np.float32)
    heat[2, 4, 6] = 0.9
    heat[2, 4, 7] = 0.1
    area.state.layers.add(Layer("cam", "heatmap", heat, threshold=0.5))
    axial = area.views["axial"]
    rgba = axial.overlays["cam"].drawn_rgba()
    r, c = _pixel_of(area, "axial", (2, 4, 6))
    r2, c2 = _pixel_of(area, "axial", (2, 4, 7))
    assert rgba[r, c, 3] == 255 and rgba[r2, c2, 3] == 0
    area.state.layers.update("cam", visible=False)
    assert not axial.overlays["cam"].isVisible()


def test_boxes_outline_their_voxels_on_planes_that_cut_them(area):
    box = BoxItem((1, 2, 3), (2, 5, 6), label="nodule", score=0.87)
    area.state.layers.add(Layer("ai boxes", "boxes", [box]))
    axial = area.views["axial"]
    geom = area.state.planes["axial"]
    (rect,) = axial.overlays["ai boxes"].rects
    # x flipped by the direction: columns 3..6 of x show at screen columns 4..7.
    assert rect.left() == pytest.approx((SHAPE[2] - 1 - 6) * geom.col_spacing)
    assert rect.width() == pytest.approx(4 * geom.col_spacing)
    assert rect.top() == pytest.approx(2 * geom.row_spacing)
    assert rect.height() == pytest.approx(4 * geom.row_spacing)
    coronal = area.views["coronal"]
    (crect,) = coronal.overlays["ai boxes"].rects
    assert crect.height() == pytest.approx(2 * 3.0)  # two slices of 3 mm
    area.state.set_slice("axial", 4)  # outside the box: nothing drawn on axial
    assert axial.overlays["ai boxes"].rects == []


def test_layers_panel_shows_hides_and_removes(area, qtbot):
    panel = LayersPanel(area.state.layers)
    qtbot.addWidget(panel)
    area.state.layers.add(Layer("mask", "labels", np.zeros(SHAPE, np.uint8)))
    row = panel.rows["mask"]
    row.visible.setChecked(False)
    assert not area.state.layers.get("mask").visible
    row.opacity.setValue(25)
    assert area.state.layers.get("mask").opacity == pytest.approx(0.25)
    row.remove.click()
    assert "mask" not in area.views["axial"].overlays and not panel.rows


def test_layer_of_another_shape_is_never_drawn_misaligned(area):
    area.state.layers.add(Layer("other", "labels", np.ones((2, 3, 4), np.uint8)))
    assert not area.views["axial"].overlays["other"].isVisible()


def test_outline_keeps_only_region_borders_and_heat_is_clipped():
    lab = np.zeros((5, 5), np.uint8)
    lab[1:4, 1:4] = 2
    edge = label_outline(lab)
    assert edge[2, 2] == 0 and edge[1, 1] == 2 and edge.sum() == 2 * 8
    rgba = heat_rgba(np.array([[np.nan, 2.0]]), "jet", 0.5)
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] == 255
