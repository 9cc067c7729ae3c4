"""The first series is shown before the folder scan has finished; the browser fills in as the
rest is found, and a series a later folder adds files to is loaded again, complete."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.dicom_factory import write_ct_series
from viewer.study import scan as scan_module
from viewer.study.scan import scan_folder
from viewer.ui.main_window import MainWindow

pytestmark = pytest.mark.gui


def _hold_folder(monkeypatch, folder_name: str, release: threading.Event) -> None:
    """Headers of files in ``folder_name`` are read only once ``release`` is set (a slow
    share): the scan cannot end before then, whatever the machine's speed."""
    real = scan_module.read_header

    def held(path, *args, **kwargs):
        if path.parent.name == folder_name:
            release.wait(30)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(scan_module, "read_header", held)


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.cancel_work()
    w.wait_idle()


def test_first_series_is_shown_before_the_scan_ends(qtbot, window, tmp_path, monkeypatch):
    first = write_ct_series(tmp_path / "s1", shape=(4, 16, 16), description="first")
    write_ct_series(tmp_path / "s2", shape=(3, 8, 8), description="second")
    write_ct_series(tmp_path / "s3", shape=(5, 8, 8), description="third")
    release = threading.Event()
    _hold_folder(monkeypatch, "s3", release)
    shown: list[tuple[str, bool]] = []

    def volume_shown():
        if window.state.volume is not None:
            shown.append((window.state.volume.description, window.scan_result is not None))
            release.set()

    window.state.volume_changed.connect(volume_shown)
    loaded = []
    window.series_loaded.connect(lambda v: loaded.append(v.description))
    try:
        window.open_path(tmp_path, open_first=True)
        qtbot.waitUntil(lambda: window.scan_result is not None, timeout=30000)
        qtbot.waitUntil(lambda: not window.tasks, timeout=30000)
    finally:
        release.set()
    assert shown[0] == ("first", False), "the first series should show while the scan runs"
    selected = window.browser.tree.currentItem()
    assert window.browser.series[selected.data(0, Qt.ItemDataRole.UserRole)].description == "first"
    # The browser ends with every series; the one shown was loaded once, complete.
    assert sorted(s.description for s in window.browser.series) == ["first", "second", "third"]
    assert loaded == ["first"]
    assert np.array_equal(window.state.volume.array, first.values)
    assert window.current_series.description == "first"
    assert len(window.current_series.files) == 4


def test_a_series_a_later_folder_adds_to_is_loaded_again(qtbot, window, tmp_path, monkeypatch):
    truth = write_ct_series(tmp_path / "all", shape=(8, 12, 12), description="split")
    (tmp_path / "a").mkdir()
    (tmp_path / "c").mkdir()
    for k, path in enumerate(truth.paths):  # half the slices in a, the rest two folders on
        shutil.move(path, tmp_path / ("a" if k % 2 == 0 else "c") / path.name)
    (tmp_path / "all").rmdir()
    write_ct_series(tmp_path / "b", shape=(3, 8, 8), description="other")
    release = threading.Event()
    _hold_folder(monkeypatch, "c", release)
    shapes: list[tuple[int, ...]] = []

    def volume_shown():
        if window.state.volume is not None:
            shapes.append(window.state.volume.shape)
            release.set()

    window.state.volume_changed.connect(volume_shown)
    try:
        window.open_path(tmp_path, open_first=True)
        qtbot.waitUntil(lambda: window.scan_result is not None, timeout=30000)
        qtbot.waitUntil(lambda: not window.tasks, timeout=30000)
    finally:
        release.set()
    assert shapes[0] == (4, 12, 12)  # what the first folder held, shown during the scan
    assert window.state.volume.shape == (8, 12, 12)
    assert np.array_equal(window.state.volume.array, truth.values)
    assert len(window.current_series.files) == 8
    assert sorted(s.description for s in window.browser.series) == ["other", "split"]


def test_several_series_still_wait_for_a_double_click_without_open_first(qtbot, window, tmp_path):
    write_ct_series(tmp_path / "a", shape=(3, 8, 8), description="first")
    write_ct_series(tmp_path / "b", shape=(4, 8, 8), description="second")
    listed: list[int] = []
    window.browser.tree.model().rowsInserted.connect(
        lambda *_: listed.append(window.browser.tree.topLevelItemCount())
    )
    with qtbot.waitSignal(window.scan_finished, timeout=15000):
        window.open_path(tmp_path)
    assert window.state.volume is None
    assert 1 in listed  # the browser showed the first folder's series before the end
    assert window.browser.tree.topLevelItemCount() == 2


def test_scan_reports_series_as_each_folder_is_done(tmp_path, monkeypatch):
    monkeypatch.setattr(scan_module, "REPORT_INTERVAL_S", 0.0)  # every folder, not throttled
    write_ct_series(tmp_path / "a", shape=(3, 8, 8), description="first")
    write_ct_series(tmp_path / "b", shape=(4, 8, 8), description="second")
    write_ct_series(tmp_path / "c", shape=(2, 8, 8), description="third")
    reports: list[list[tuple[str, int]]] = []
    result = scan_folder(
        tmp_path,
        use_cache=False,
        on_series=lambda found: reports.append(sorted((s.description, s.n_images) for s in found)),
    )
    # After a and after b (the end is the result itself).
    assert reports == [[("first", 3)], [("first", 3), ("second", 4)]]
    assert sorted((s.description, s.n_images) for s in result.series) == [
        ("first", 3),
        ("second", 4),
        ("third", 2),
    ]
    assert all(s.loadable for s in result.series)
