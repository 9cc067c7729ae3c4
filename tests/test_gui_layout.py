"""Window layout: dock defaults, saved layouts coming back, tabs raised, the intended-use banner."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from radlens_core.results import Box, LabelClass
from viewer.labels.result_findings import summarise
from viewer.labels.results import ResultRecord
from viewer.study.volume import Volume
from viewer.ui.analysis import AnalysisOutcome
from viewer.ui.dock_layout import RIGHT_TABS, RIGHT_WIDTH, SERIES_WIDTH
from viewer.ui.main_window import MainWindow

pytestmark = pytest.mark.gui
RIGHT = Qt.DockWidgetArea.RightDockWidgetArea


def _window(qtbot) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1600, 900)
    win.show()
    qtbot.waitExposed(win)
    qtbot.wait(50)  # the default dock widths are applied once the window has its size
    return win


def _shown(dock) -> bool:
    return dock.isVisible() and not dock.visibleRegion().isEmpty()


def test_right_panels_are_one_tabbed_column_and_views_get_the_rest(qtbot):
    win = _window(qtbot)
    right = [win.docks[name] for name in RIGHT_TABS]
    assert all(win.dockWidgetArea(d) == RIGHT for d in right)
    assert set(win.tabifiedDockWidgets(right[0])) == set(right[1:])
    assert abs(win.docks["series"].width() - SERIES_WIDTH) <= 20
    assert abs(win.docks["layers"].width() - RIGHT_WIDTH) <= 20
    assert win.area.width() > 1600 - SERIES_WIDTH - RIGHT_WIDTH - 60


def test_saved_layout_puts_back_docks_made_after_the_window(qtbot):
    win = _window(qtbot)
    # Findings and Models are created by features after the window's own docks.
    left = Qt.DockWidgetArea.LeftDockWidgetArea
    win.addDockWidget(left, win.docks["findings"])
    win.addDockWidget(left, win.docks["models"])
    win.close()
    again = _window(qtbot)
    assert again.dockWidgetArea(again.docks["findings"]) == left
    assert again.dockWidgetArea(again.docks["models"]) == left
    assert again.dockWidgetArea(again.docks["annotations"]) == RIGHT


def test_choosing_an_annotation_tool_raises_the_annotations_tab(qtbot):
    win = _window(qtbot)
    win.state.set_volume(Volume(np.zeros((4, 16, 16), np.int16), modality="CT", series_uid="9.1"))
    assert not _shown(win.docks["annotations"])
    win.annotations.set_tool("box")
    qtbot.waitUntil(lambda: _shown(win.docks["annotations"]), timeout=2000)


def _finish(win: MainWindow, intended_use: str) -> ResultRecord:
    volume = win.state.volume
    label_map = np.zeros(volume.shape, np.uint8)
    label_map[1, 4:8, 4:8] = 1
    rec = ResultRecord(
        model_id="seg",
        model_name="Seg",
        model_version="1",
        task="segmentation",
        shape=volume.shape,
        label_map=label_map,
        labels=[LabelClass(1, "nodule", "#ff7043")],
        boxes=[Box((1, 4, 4, 1, 8, 8), "nodule", 0.9)],
        intended_use=intended_use,
    )
    outcome = AnalysisOutcome(rec, summarise(rec, volume.spacing), "key", None, volume)
    win.analyze.controller.analysis_finished.emit(outcome)
    return rec


def test_intended_use_banner_shows_while_a_result_layer_is_visible(qtbot):
    win = _window(qtbot)
    win.state.set_volume(Volume(np.zeros((4, 16, 16), np.int16), modality="CT", series_uid="9.2"))
    assert not win.banner.isVisible()
    _finish(win, "Demonstration only; not for diagnosis.")
    qtbot.waitUntil(win.banner.isVisible, timeout=2000)
    assert "Demonstration only; not for diagnosis." in win.banner.text()
    assert _shown(win.docks["findings"])  # the findings tab is raised with the results
    banner_box = win.banner.geometry()
    assert banner_box.bottom() < win.area.geometry().top() + 1  # above the views, not on them
    for layer in list(win.state.layers):
        if layer.name.startswith("Seg:"):
            win.state.layers.update(layer.name, visible=False)
    qtbot.waitUntil(lambda: not win.banner.isVisible(), timeout=2000)
    layer = next(layer for layer in win.state.layers if layer.name.startswith("Seg:"))
    win.state.layers.update(layer.name, visible=True)
    qtbot.waitUntil(win.banner.isVisible, timeout=2000)


def test_long_layer_names_are_shortened_not_widening_the_column(qtbot):
    from viewer.ui.layers import Layer

    win = _window(qtbot)
    name = "Chest CT lung and nodule segmenter (synthetic demo): heat map"
    win.state.layers.add(Layer(name, "heatmap", np.zeros((4, 16, 16), np.float32)))
    qtbot.wait(20)
    assert win.layers_panel.minimumSizeHint().width() < RIGHT_WIDTH - 100
    row = win.layers_panel.rows[name]
    assert "…" in row.visible.text() and row.visible.text().endswith("heat map")
    assert name in row.visible.toolTip()


def test_findings_rows_cut_to_the_dock_width_carry_their_whole_text(qtbot):
    win = _window(qtbot)
    win.state.set_volume(Volume(np.zeros((4, 16, 16), np.int16), modality="CT", series_uid="9.3"))
    _finish(win, "Demonstration only.")
    tree = win.analyze.findings.tree
    top = tree.topLevelItem(0)
    assert top.text(0) in top.toolTip(0) and "Demonstration only." in top.toolTip(0)
    finding = next(
        top.child(i) for i in range(top.childCount()) if "nodule" in top.child(i).text(0)
    )
    assert finding.toolTip(0).startswith(finding.text(0))


def test_reset_panel_layout_brings_moved_and_closed_panels_back(qtbot):
    win = _window(qtbot)
    win.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, win.docks["findings"])
    win.docks["annotations"].close()
    listed = set(win.controls.panels_menu.actions())
    assert all(dock.toggleViewAction() in listed for dock in win.docks.values())
    win.action_map["reset_layout"].trigger()
    right = [win.docks[name] for name in RIGHT_TABS]
    assert all(win.dockWidgetArea(d) == RIGHT and not d.isHidden() for d in right)
    assert set(win.tabifiedDockWidgets(right[0])) == set(right[1:])


def test_first_window_fits_its_screen_though_docks_stack_before_tabbing(qtbot):
    from viewer.ui.dock_layout import WINDOW_SIZE

    win = MainWindow()  # no saved geometry: conftest gives empty settings
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    room = win.screen().availableGeometry().size()
    assert win.height() <= max(room.height(), win.minimumSizeHint().height())
    assert win.size() == WINDOW_SIZE.boundedTo(room).expandedTo(win.minimumSizeHint())


_BARS_SCRIPT = """
import json, sys
from PySide6.QtWidgets import QApplication, QTabBar
from viewer.ui.main_window import MainWindow
app = QApplication([])
w = MainWindow(); w.resize(1400, 900); w.show()
def bars():
    for _ in range(30):
        app.processEvents()
    return sorted(sorted(b.tabText(i) for i in range(b.count()))
                  for b in w.findChildren(QTabBar) if b.parent() is w and b.isVisible())
first = bars()
w.action_map["reset_layout"].trigger()
reset = bars()
w.action_map["reset_layout"].trigger()
print(json.dumps({"first": first, "reset": reset, "reset_again": bars(),
                  "right": [w.docks[n].windowTitle() for n in sys.argv[1:]]}))
w.close()
"""


def test_only_the_two_columns_tab_bars_are_drawn_no_stale_ones_over_the_panels(tmp_path):
    """Run as a program is run (a fresh process: in-process the stale bars of tabbing twice
    did not show): Qt draws exactly the left and the right column's tab bars."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", RADLENS_DATA_DIR=str(tmp_path))
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    out = subprocess.run(
        [sys.executable, "-c", _BARS_SCRIPT, *RIGHT_TABS],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    expected = sorted([sorted(["Series", "PACS"]), sorted(got["right"])])
    assert got["first"] == expected
    # View > Panels > Reset (twice) leaves the same two bars: no second bar of a group drawn
    # over the first, no bar of another grouping.
    assert got["reset"] == expected
    assert got["reset_again"] == expected
