"""Plane geometry and the layer model: Qt-free parts of the viewer."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.study.volume import Volume
from viewer.ui.layers import BoxItem, Layer, LayerList
from viewer.ui.planes import Plane, planes_for


def _vol(direction=None) -> Volume:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return Volume(
        arr, spacing=(0.5, 0.7, 3.0), direction=np.eye(3) if direction is None else direction
    )


def test_axial_shows_anterior_top_and_patient_right_on_image_left():
    g = Plane.of(_vol(), "axial")
    assert g.edge_letters() == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert (g.row_spacing, g.col_spacing) == (0.7, 0.5)
    assert not g.flip_rows and not g.flip_cols


def test_coronal_and_sagittal_put_superior_at_top_with_slice_spacing_vertical():
    vol = _vol()
    cor, sag = Plane.of(vol, "coronal"), Plane.of(vol, "sagittal")
    assert cor.edge_letters()["top"] == "S" and cor.edge_letters()["left"] == "R"
    assert sag.edge_letters()["top"] == "S" and sag.edge_letters()["left"] == "A"
    assert cor.row_spacing == 3.0 and cor.flip_rows
    # Top row of the coronal image is the last (most superior) z slice.
    assert np.array_equal(cor.slice_of(vol.array, 2)[0], vol.array[3, 2, :])
    assert np.array_equal(sag.slice_of(vol.array, 1)[:, 0], vol.array[::-1, 0, 1])


def test_flipped_acquisition_is_displayed_in_standard_orientation():
    # Rows run towards anterior and columns towards the right: both must be flipped back.
    g = Plane.of(_vol(np.diag([-1.0, -1.0, 1.0])), "axial")
    assert g.flip_rows and g.flip_cols
    assert g.edge_letters() == {"top": "A", "bottom": "P", "left": "R", "right": "L"}


def test_sagittally_acquired_stack_shows_its_axial_plane_across_the_rows():
    # Slices step along L (sagittal acquisition); rows go towards I, columns towards P.
    d = np.column_stack([[0, 1, 0], [0, 0, -1], [1, 0, 0]]).astype(float)
    geoms = planes_for(_vol(d))
    assert geoms["sagittal"].normal_axis == 0
    assert geoms["axial"].normal_axis == 1
    assert geoms["sagittal"].edge_letters()["top"] == "S"


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_voxel_to_screen_round_trip(plane):
    g = Plane.of(_vol(np.diag([-1.0, 1.0, -1.0])), plane)
    zyx = np.array([2.0, 3.0, 4.0])
    index, row, col = g.from_voxel(zyx)
    assert np.allclose(g.to_voxel(index, row, col), zyx)
    x, y = g.pixel_to_scene(row, col)
    assert np.allclose(g.scene_to_pixel(x, y), (row, col))
    # The voxel shown at (row, col) of the slice is the voxel we started from.
    vol = _vol(np.diag([-1.0, 1.0, -1.0]))
    assert g.slice_of(vol.array, int(index))[int(row), int(col)] == vol.array[2, 3, 4]


def test_two_d_image_has_only_one_plane():
    assert list(planes_for(Volume(np.zeros((8, 9), np.uint8)))) == ["axial"]


def test_layer_list_notifies_and_replaces_same_name():
    events = []
    layers = LayerList()
    layers.subscribe(lambda event, layer: events.append((event, layer.name)))
    layers.add(Layer("ai", "labels", np.zeros((2, 3, 4), np.uint8)))
    layers.add(Layer("ai", "heatmap", np.zeros((2, 3, 4))))
    layers.update("ai", opacity=3.0, visible=False)
    assert events == [("added", "ai"), ("removed", "ai"), ("added", "ai"), ("changed", "ai")]
    assert layers.get("ai").opacity == 1.0 and not layers.get("ai").visible
    layers.remove("ai")
    assert len(layers) == 0


def test_layer_rejects_bad_data():
    with pytest.raises(ValueError, match="uint8"):
        Layer("m", "labels", np.zeros((2, 2, 2), np.int32))
    with pytest.raises(ValueError, match="below"):
        BoxItem((3, 3, 3), (2, 4, 4))


def test_engine_results_become_layers_with_card_colours():
    from radlens_core.results import Box, HeatMap, LabelClass, LabelMap
    from tests.analysis_fakes import analysis_result
    from viewer.ui.layers import box_from_corners, layers_from_analysis

    result = analysis_result(
        label_map=LabelMap(np.zeros((2, 3, 4), np.uint8), (LabelClass(2, "lung", "#00ff80"),)),
        heat_map=np.zeros((2, 3, 4), np.float32),
        boxes=[Box((0, 1, 1, 1, 2, 3), "nodule", 0.8)],
    )
    assert isinstance(result.heat_map, HeatMap)
    layers = layers_from_analysis(result, "Lung model")
    assert [(layer.kind, layer.name) for layer in layers] == [
        ("labels", "Lung model labels"),
        ("heatmap", "Lung model heat map"),
        ("boxes", "Lung model boxes"),
    ]
    assert tuple(layers[0].label_lut()[2, :3]) == (0, 255, 128)
    box = layers[2].data[0]
    assert box.lo_zyx == (0, 1, 1) and box.hi_zyx == (1, 2, 3) and box.score == 0.8
    assert box_from_corners((5, 6, 1, 2)).lo_zyx == (0, 1, 2)  # 2D corners, min/max sorted


def _oblique_volume() -> Volume:
    """A sagittally acquired stack, tilted 20° about S, with negated row and slice axes:
    columns run towards P (and a little L), rows towards I, slices towards R."""
    t = np.deg2rad(20.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    sagittal = np.column_stack([[0, 1, 0], [0, 0, 1], [1, 0, 0]]).astype(float)
    direction = rot @ sagittal @ np.diag([1.0, -1.0, -1.0])
    arr = np.arange(7 * 9 * 11, dtype=np.int32).reshape(7, 9, 11)  # every voxel unique
    return Volume(
        arr,
        spacing=(0.8, 0.6, 2.5),
        origin=(-100.0, 50.0, 30.0),
        direction=direction,
        series_uid="1.2.3.777",
    )


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_tool_point_on_an_oblique_negated_volume_maps_to_its_lps_position(plane):
    vol = _oblique_volume()
    g = planes_for(vol)[plane]
    # The direction decides the axes: the axial plane cuts this stack across its rows.
    assert {"axial": 1, "coronal": 2, "sagittal": 0}[plane] == g.normal_axis
    index, row, col = 3, 2, 4  # a display pixel on a slice
    shown = g.slice_of(vol.array, index)[row, col]
    (true_zyx,) = np.argwhere(vol.array == shown)
    # The tools' (stored-frame) point for that pixel lands on the voxel shown there...
    r, c, s = g.from_volume(g.to_voxel(index, row, col))
    assert np.allclose(g.to_patient(r, c, s), vol.index_to_patient(true_zyx))
    # ...and one pixel down / right on screen moves by one pixel along the plane's
    # screen vectors, which point the way the edge letters say.
    below = g.from_volume(g.to_voxel(index, row + 1, col))
    step = g.to_patient(*below) - g.to_patient(r, c, s)
    assert np.allclose(step, g.row_spacing * np.asarray(g.down))
    letters = g.edge_letters()
    assert (letters["top"][0], letters["left"][0]) == {
        "axial": ("A", "R"),
        "coronal": ("S", "R"),
        "sagittal": ("S", "A"),
    }[plane]


def test_tool_event_from_the_view_maps_to_the_lps_of_the_pixel_shown(qtbot):
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QSplitter

    from viewer.ui.slice_view import SliceView
    from viewer.ui.state import ViewerState
    from viewer.ui.tools.controller import AnnotationController

    vol = _oblique_volume()
    split = QSplitter()
    qtbot.addWidget(split)
    state = ViewerState(split)
    views = {p: SliceView(state, p, split) for p in ("axial", "coronal", "sagittal")}
    ctrl = AnnotationController(state, split)
    for view in views.values():
        ctrl.attach_view(view)
    split.resize(1200, 500)
    split.show()
    state.set_volume(vol)
    qtbot.waitExposed(split)
    for view in views.values():
        g = view.geometry_
        row, col = 3, 5
        x, y = g.pixel_to_scene(row, col)
        point = view.graphics.mapFromScene(view.view_box.mapViewToScene(QPointF(x, y)))
        ev = ctrl.plane_event(view, QPointF(point))
        assert ev.plane is g  # the tools use the plane the view shows
        shown = view.image.image[row, col]  # what the user sees at that pixel
        (true_zyx,) = np.argwhere(vol.array == shown)
        lps = ev.plane.to_patient(round(ev.row), round(ev.col), ev.slice_index)
        assert np.allclose(lps, vol.index_to_patient(true_zyx)), view.plane
    ctrl.close()
