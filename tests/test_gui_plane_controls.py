"""Plane picker, MPR layout and cine controls follow the image: off for a 2D radiograph, on for volumes."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.study.volume import Volume
from viewer.ui.main_window import MainWindow

pytestmark = pytest.mark.gui

MPR = ("layout_1x3", "layout_2x2", "plane_coronal", "plane_sagittal", "cine")


def _enabled(win: MainWindow) -> dict[str, bool]:
    out = {k: win.action_map[k].isEnabled() for k in MPR}
    out["plane_combo"] = win.controls.plane_combo.isEnabled()
    out["fps_spin"] = win.controls.fps_spin.isEnabled()
    return out


def test_plane_picker_mpr_layouts_and_cine_disabled_for_2d_and_back_for_a_volume(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    assert all(_enabled(win).values())  # nothing open yet: nothing to refuse
    radiograph = Volume(np.zeros((1, 32, 32), np.int16), spacing=(0.2, 0.2, 1.0))
    win.state.set_volume(radiograph)
    assert not any(_enabled(win).values())
    assert "2D image" in win.controls.plane_combo.toolTip()
    assert win.action_map["layout_single"].isEnabled()
    ct = Volume(np.zeros((8, 16, 16), np.int16), spacing=(0.7, 0.7, 2.5))
    win.state.set_volume(ct)
    assert all(_enabled(win).values())
    win.action_map["layout_2x2"].trigger()
    assert win.area.layout_name == "2x2"
