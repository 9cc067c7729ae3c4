"""The series browser lists each volume of a multi-volume series and plays a time series,
loading each volume once; the real window opens the volume chosen."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt

from tests import dicom_factory as f
from viewer.study.scan import scan_folder
from viewer.study.series import load_series
from viewer.ui.panels.series_browser import SeriesBrowser

pytestmark = pytest.mark.gui


def _dynamic(folder, times=4, shape=(3, 6, 5)):
    series_uid, study_uid = generate_uid(), generate_uid()
    for t in range(1, times + 1):
        truth = f.write_ct_series(
            folder / f"t{t}",
            shape=shape,
            values=f.ct_values(shape, seed=t),
            series_uid=series_uid,
            study_uid=study_uid,
            description="Perfusion",
        )
        for path in truth.paths:
            f.set_attribute(path, "TemporalPositionIdentifier", t)
    return series_uid


class FakeWindowLoader:
    """What the window does with the browser's signals: load (really) and say it loaded."""

    def __init__(self, browser: SeriesBrowser) -> None:
        self.browser = browser
        self.loaded: list[str] = []
        self.shown: list[str] = []
        browser.series_activated.connect(self.load)
        browser.volume_activated.connect(lambda v: self.shown.append(v.key))

    def load(self, info) -> None:
        volume = load_series(info)
        self.loaded.append(volume.key)
        self.shown.append(volume.key)
        self.browser.remember(volume)


def _browser(qtbot, folder):
    b = SeriesBrowser()
    qtbot.addWidget(b)
    b.set_series(scan_folder(folder).series)
    b.show()
    qtbot.waitExposed(b)
    return b


def test_each_volume_is_an_entry_in_volume_order(qtbot, tmp_path):
    _dynamic(tmp_path)
    b = _browser(qtbot, tmp_path)
    texts = [b.tree.topLevelItem(r).text(3) for r in range(b.tree.topLevelItemCount())]
    assert texts == [f"Volume {t}/4 — time point {t} · Perfusion" for t in range(1, 5)]
    tip = b.tree.topLevelItem(1).toolTip(0)
    assert "Volume: Volume 2/4 — time point 2 (a time series)" in tip
    assert not b.play_bar.isVisible()  # nothing shown yet


def test_play_steps_through_every_volume_loading_each_once_then_from_cache(qtbot, tmp_path):
    _dynamic(tmp_path)
    b = _browser(qtbot, tmp_path)
    window = FakeWindowLoader(b)
    first = b.series[0]
    b.activate(first)
    assert b.play_bar.isVisible() and b.play_button.isEnabled()
    assert b.volume_label.text() == "Volume 1/4 — time point 1"
    b.play_timer.setInterval(10)
    b.play_button.click()
    assert b.playing
    qtbot.waitUntil(lambda: len(window.shown) >= 9, timeout=10000)
    b.play_button.click()
    assert not b.playing
    keys = [s.series_uid for s in sorted(b.series, key=lambda s: s.volume_index)]
    assert window.shown[:9] == (keys * 3)[:9]  # in order, wrapping round
    assert window.loaded == keys  # each volume loaded once; the rest came from the cache
    current = b.series[b.tree.currentItem().data(0, Qt.ItemDataRole.UserRole)]
    assert current is b.current  # the list shows which volume is on screen


def test_cache_is_bounded_and_reloads_what_it_dropped(qtbot, tmp_path):
    _dynamic(tmp_path, times=3)
    b = _browser(qtbot, tmp_path)
    window = FakeWindowLoader(b)
    one_volume = load_series(b.series[0]).array.nbytes
    b.cache.max_bytes = one_volume  # room for one volume only
    b.activate(b.series[0])
    b.step(1)
    b.step(1)
    b.step(1)  # back to volume 1, dropped when volume 2 came in
    assert len(window.loaded) == 4 and b.cache.nbytes <= one_volume


def test_echoes_step_but_do_not_play(qtbot, tmp_path):
    series_uid, study_uid = generate_uid(), generate_uid()
    for echo in (1, 2):
        truth = f.write_ct_series(
            tmp_path / f"e{echo}", shape=(2, 4, 4), series_uid=series_uid, study_uid=study_uid
        )
        for path in truth.paths:
            f.set_attribute(path, "EchoNumbers", echo)
    b = _browser(qtbot, tmp_path)
    window = FakeWindowLoader(b)
    b.activate(b.series[1])
    assert b.play_bar.isVisible() and not b.play_button.isEnabled()
    b.next_button.click()
    assert window.loaded[-1] == b.series[0].series_uid
    assert b.volume_label.text() == "Volume 1/2 — echo 1"


def test_the_window_opens_the_chosen_volume_with_its_label(qtbot, tmp_path):
    from viewer.study import facts
    from viewer.ui.main_window import MainWindow

    _dynamic(tmp_path, times=3)
    win = MainWindow()
    qtbot.addWidget(win)
    win.open_path(tmp_path)
    qtbot.waitUntil(lambda: win.browser.tree.topLevelItemCount() == 3, timeout=20000)
    win.wait_idle()
    item = win.browser.tree.topLevelItem(2)
    win.browser.tree.itemActivated.emit(item, 0)
    chosen = win.browser.series[item.data(0, Qt.ItemDataRole.UserRole)]
    qtbot.waitUntil(
        lambda: win.state.volume is not None and win.state.volume.key == chosen.series_uid,
        timeout=20000,
    )
    win.wait_idle()
    volume = win.state.volume
    assert facts.volume_label(volume) == "time point 3"
    assert facts.volume_position(volume) == (3, 3)
    assert np.array_equal(volume.array, f.ct_values((3, 6, 5), seed=3))
    win.close()


def test_the_window_shows_a_volume_stepped_back_to_from_the_cache(qtbot, tmp_path):
    from viewer.ui.main_window import MainWindow

    _dynamic(tmp_path, times=3)
    win = MainWindow()
    qtbot.addWidget(win)
    loads: list[str] = []
    real_open = win.open_series

    def counting_open(info):
        loads.append(info.series_uid)
        real_open(info)

    win.browser.series_activated.disconnect(win.open_series)
    win.browser.series_activated.connect(counting_open)
    win.open_path(tmp_path)
    qtbot.waitUntil(lambda: win.browser.tree.topLevelItemCount() == 3, timeout=20000)
    win.wait_idle()
    first = win.browser.siblings(win.browser.series[0])[0]
    win.browser.activate(first)
    qtbot.waitUntil(
        lambda: win.state.volume is not None and win.state.volume.key == first.series_uid,
        timeout=20000,
    )
    win.wait_idle()
    first_array = win.state.volume.array
    win.browser.step(1)
    second = win.browser.current
    qtbot.waitUntil(lambda: win.state.volume.key == second.series_uid, timeout=20000)
    win.wait_idle()
    loaded_before = len(loads)
    win.browser.step(-1)  # back to the first volume: shown from the cache, not loaded again
    qtbot.waitUntil(lambda: win.state.volume.key == first.series_uid, timeout=20000)
    assert len(loads) == loaded_before
    assert win.current_series is not None and win.current_series.series_uid == first.series_uid
    assert np.array_equal(win.state.volume.array, first_array)
    win.close()


def _window_with_held_load(qtbot, folder, monkeypatch):
    """A window showing ``folder``'s 3-volume series, whose loads stop after their first slice
    until the returned event is set (a slow disk), and the list of series it opened."""
    import threading

    from viewer.study import series as series_module
    from viewer.ui.main_window import MainWindow

    _dynamic(folder, times=3)
    release = threading.Event()
    real_read_all = series_module.SeriesReader.read_all

    def held_read_all(reader, *args, **kwargs):
        release.wait(30)
        return real_read_all(reader, *args, **kwargs)

    monkeypatch.setattr(series_module.SeriesReader, "read_all", held_read_all)
    win = MainWindow()
    qtbot.addWidget(win)
    loads: list[str] = []
    win.browser.series_activated.connect(lambda info: loads.append(info.series_uid))
    win.open_path(folder)
    qtbot.waitUntil(lambda: win.browser.tree.topLevelItemCount() == 3, timeout=20000)
    win.wait_idle()
    return win, release, loads


def _show_first_volume(qtbot, win):
    """Open the first volume of the browser's first series; return it once it is shown."""
    first = win.browser.siblings(win.browser.series[0])[0]
    win.browser.activate(first)
    qtbot.waitUntil(
        lambda: win.state.volume is not None and win.state.volume.key == first.series_uid,
        timeout=20000,
    )
    return first


def test_wait_idle_returns_with_the_ended_load_delivered(qtbot, tmp_path, monkeypatch):
    """A load that ends while the window waits for its work: ``wait_idle`` comes back with the
    load finished and its volume delivered (shown whole and kept for stepping back), not
    with the result still queued behind the wait (its thread used to need the main thread to
    quit, so the wait ran into its bound and the result came after the caller moved on)."""
    win, release, loads = _window_with_held_load(qtbot, tmp_path, monkeypatch)
    try:
        first = _show_first_volume(qtbot, win)  # its first slice on screen; the rest is held
        assert win.tasks
        release.set()
        win.wait_idle()  # no event processed between the release and the wait
        assert not win.tasks
        assert first.series_uid in win.browser.cache
        assert np.array_equal(win.state.volume.array, f.ct_values((3, 6, 5), seed=1))
    finally:
        release.set()
        win.close()


def test_a_load_that_ended_as_the_user_stepped_on_is_kept_for_stepping_back(
    qtbot, tmp_path, monkeypatch
):
    """The user steps to the next volume just as the shown one finishes loading, before its
    result reached the window: the load is superseded, but the volume it read whole is kept,
    so stepping back shows it from the cache instead of reading it again."""
    win, release, loads = _window_with_held_load(qtbot, tmp_path, monkeypatch)
    try:
        first = _show_first_volume(qtbot, win)
        [load] = win.tasks
        release.set()
        assert load.wait(10000)  # its thread ended; its result is still queued
        win.browser.step(1)  # the next volume, before the result of the first is delivered
        second = win.browser.current
        qtbot.waitUntil(
            lambda: win.state.volume.key == second.series_uid and not win.tasks, timeout=20000
        )
        loaded_before = len(loads)
        win.browser.step(-1)
        qtbot.waitUntil(lambda: win.state.volume.key == first.series_uid, timeout=20000)
        assert len(loads) == loaded_before  # from the cache, not read again
        assert np.array_equal(win.state.volume.array, f.ct_values((3, 6, 5), seed=1))
    finally:
        release.set()
        win.close()
