"""Result display controls: one titled row per result layer, named after its model."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.ui.layers import Layer, LayerList
from viewer.ui.panels.result_display import ResultDisplayControls, row_title

pytestmark = pytest.mark.gui

SEG = "Chest CT lung and nodule segmenter (synthetic demo)"
DET = "Chest CT nodule detector (synthetic demo)"


def _controls(qtbot, width: int) -> ResultDisplayControls:
    layers = LayerList()
    heat = np.zeros((4, 8, 8), np.float32)
    for model in (SEG, DET):
        layers.add(Layer(f"{model}: heat map", "heatmap", heat))
        layers.add(Layer(f"{model}: mask", "labels", np.zeros((4, 8, 8), np.uint8)))
    w = ResultDisplayControls(layers)
    qtbot.addWidget(w)
    w.set_layers(list(layers))
    w.resize(width, 400)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_two_models_heat_map_rows_are_told_apart_by_model_name(qtbot):
    w = _controls(qtbot, 900)
    titles = {name: label.text() for name, label in w.titles.items()}
    assert titles[f"{SEG}: heat map"] == "Heat map — Chest CT lung and nodule segmenter"
    assert titles[f"{DET}: heat map"] == "Heat map — Chest CT nodule detector"
    assert titles[f"{SEG}: mask"] == "Mask — Chest CT lung and nodule segmenter"
    assert len(set(titles.values())) == 4


def test_row_titles_are_elided_in_a_narrow_dock_with_full_name_in_tooltip(qtbot):
    w = _controls(qtbot, 240)
    label = w.titles[f"{SEG}: heat map"]
    assert label.text().endswith("…")
    assert label.text().startswith("Heat map")
    assert label.toolTip() == f"{SEG}: heat map"
    assert w.width() == 240
    assert label.width() <= 240


def test_layer_name_without_model_keeps_its_text():
    assert row_title("Drawn labels") == "Drawn labels"
