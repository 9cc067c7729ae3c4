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
