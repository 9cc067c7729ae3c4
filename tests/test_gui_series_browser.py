"""Series browser fits its narrow dock: five columns by default, the rest from the header menu."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint

from viewer.study.scan import SeriesInfo
from viewer.ui.dock_layout import SERIES_WIDTH
from viewer.ui.panels.series_browser import COLUMNS, SeriesBrowser

pytestmark = pytest.mark.gui


def _info(description: str, number: int, problems: list[str] | None = None) -> SeriesInfo:
    return SeriesInfo(
        series_uid=f"1.2.{number}",
        study_uid="1.2",
        patient_name="DEMO^CHEST",
        patient_id="P001",
        study_date="20240115",
        study_description="Chest CT",
        modality="CT",
        description=description,
        series_number=number,
        n_images=64,
        rows=512,
        cols=512,
        files=[Path(f"/data/{number}.dcm")],
        problems=problems or [],
    )


def _browser(qtbot) -> SeriesBrowser:
    b = SeriesBrowser()
    qtbot.addWidget(b)
    b.set_series([_info("Lung 1.0 mm axial with a long name", 3), _info("Scout", 1, ["odd"])])
    b.resize(SERIES_WIDTH, 300)
    b.show()
    qtbot.waitExposed(b)
    return b


def test_default_columns_fit_the_dock_without_sideways_scrolling(qtbot):
    b = _browser(qtbot)
    assert b.shown_columns() == ["Patient", "Date", "Modality", "Description", "Images"]
    assert b.tree.horizontalScrollBar().maximum() == 0
    header = b.tree.header()
    description = header.sectionSize(COLUMNS.index("Description"))
    # Description, the field that tells series apart, gets the most room after the date.
    assert description >= max(header.sectionSize(c) for c in (0, 2, 4))
    assert description >= 50


def test_header_right_click_menu_toggles_hidden_columns(qtbot):
    b = _browser(qtbot)
    b.tree.header().customContextMenuRequested.emit(QPoint(5, 5))
    menu = b.column_menu
    assert menu is not None
    actions = {a.text(): a for a in menu.actions()}
    assert list(actions) == list(COLUMNS)
    assert not actions["Size"].isChecked()
    actions["Size"].trigger()
    assert "Size" in b.shown_columns()
    actions["Patient"].trigger()
    assert "Patient" not in b.shown_columns()
    menu.close()


def test_last_shown_column_cannot_be_hidden(qtbot):
    b = _browser(qtbot)
    for name in COLUMNS:
        b.set_column_shown(name, False)
    assert len(b.shown_columns()) == 1


def test_row_tooltip_carries_every_field_including_hidden_ones(qtbot):
    b = _browser(qtbot)
    scout = b.item_for(b.series[1])
    tip = scout.toolTip(0)
    assert scout.toolTip(3) == tip
    for text in ("DEMO^CHEST (P001)", "2024-01-15", "Chest CT", "Scout", "512×512", "64", "⚠ odd"):
        assert text in tip
    assert "Series number: 1" in tip


def test_column_choice_is_remembered_for_the_next_window(qtbot):
    from viewer.ui.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.browser.set_column_shown("Size", True)
    first.browser.set_column_shown("Patient", False)
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.browser.shown_columns() == ["Date", "Modality", "Description", "Images", "Size"]


def test_unknown_saved_columns_keep_the_defaults(qtbot):
    b = SeriesBrowser()
    qtbot.addWidget(b)
    b.set_shown_columns(["", "Colour"])
    assert b.shown_columns() == ["Patient", "Date", "Modality", "Description", "Images"]


def test_rows_are_in_series_number_order_even_before_any_series(qtbot):
    b = SeriesBrowser()
    qtbot.addWidget(b)
    assert b.tree.header().sortIndicatorSection() == COLUMNS.index("Series number")
    b.set_series([_info("later", 5), _info("earlier", 2)])
    assert b.tree.topLevelItem(0).text(3) == "earlier"


def _volumes(n: int, files: int = 1) -> list[SeriesInfo]:
    """The ``n`` volumes of one multi-volume series."""
    out = []
    for k in range(1, n + 1):
        info = _info(f"Phase {k}", 5)
        info.series_uid = f"1.2.5#{k}"
        info.volume_index, info.volume_count, info.volume_group = k, n, "1.2.5"
        info.files = [Path(f"/data/5-{k}-{j}.dcm") for j in range(files)]
        out.append(info)
    return out


def _volume(key: str):
    import numpy as np

    from viewer.study.volume import Volume

    return Volume(np.zeros((2, 4, 4), np.int16), series_uid=key)


def test_a_partial_scan_report_keeps_the_loaded_volumes_of_unchanged_series(qtbot):
    b = SeriesBrowser()
    qtbot.addWidget(b)
    first = _volumes(2)
    b.set_series(first)
    for info in first:
        b.remember(_volume(info.series_uid))
    b.activate(first[1])
    assert len(b.cache) == 2
    # The scan reports again: the same series (new records) plus one found since.
    again = _volumes(2) + [_info("Scout", 1)]
    b.set_series(again)
    assert len(b.cache) == 2, "a partial scan report must not empty the volume cache"
    assert b.current is again[1]
    assert b.tree.currentItem() is b.item_for(again[1])
    # A series whose file list grew is loaded anew: its cached volume is dropped.
    grown = _volumes(2)
    grown[0].files = grown[0].files + [Path("/data/5-1-late.dcm")]
    b.set_series(grown)
    assert "1.2.5#1" not in b.cache and "1.2.5#2" in b.cache
    b.set_series([])
    assert len(b.cache) == 0 and b.current is None
