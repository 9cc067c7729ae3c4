"""The PACS panel in the main window against a real Orthanc: search, series, Retrieve with
progress and Cancel in the window's activity bar, Retry, Open, Send (only when confirmed),
node management, and failures shown as sentences."""

from __future__ import annotations

import pydicom
import pytest
from PySide6.QtCore import QTimer

from tests.orthanc import (  # noqa: F401 (fixtures)
    ORTHANC_AET,
    free_port,
    loopback_network,
    orthanc_factory_fixture,
    orthanc_server,
    write_study,
)
from viewer.pacs import DimseNode, NodeBook, WebNode
from viewer.ui.main_window import MainWindow
from viewer.ui.panels.pacs_node import NodeDialog

pytestmark = pytest.mark.gui


def _window(qtbot) -> MainWindow:
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1500, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def _idle(qtbot, win, timeout=30_000):
    qtbot.waitUntil(lambda: win.pacs.task is None, timeout=timeout)


@pytest.fixture
def archive(orthanc, tmp_path):
    a = write_study(tmp_path / "a", "DOE^JANE", "P-001", "20260105", "ACC-001", "CT", series=2)
    b = write_study(tmp_path / "b", "ROE^RICHARD", "P-002", "20260220", "ACC-002", "MR")
    orthanc.upload(a.paths + b.paths)
    return a, b


def _add_dimse(win, orthanc, name="orthanc", **kw):
    node = DimseNode(
        name, ORTHANC_AET, "127.0.0.1", orthanc.dimse_port, local_port=free_port(), **kw
    )
    win.pacs.save_node(node)
    return node


def test_search_lists_studies_then_series(qtbot, orthanc, archive):
    win = _window(qtbot)
    _add_dimse(win, orthanc)
    panel = win.pacs.panel
    assert panel.node_name == "orthanc"
    panel.patient.setText("doe")
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.study_table.rowCount() == 1, timeout=30_000)
    _idle(qtbot, win)
    assert panel.study_table.item(0, 0).text() == "DOE JANE"
    assert panel.study_table.item(0, 2).text() == "2026-01-05"
    headers = [panel.study_table.horizontalHeaderItem(c).text() for c in range(8)]
    assert headers[6:] == ["Series", "Images"]
    assert [panel.study_table.item(0, c).text() for c in (6, 7)] == ["2", "8"]
    assert "1 study found" in panel.status.text()
    panel.patient.clear()
    panel.dates.setText("20260201-")
    panel.search_button.click()
    qtbot.waitUntil(lambda: "1 study found" in panel.status.text(), timeout=30_000)
    _idle(qtbot, win)
    assert panel.study_table.item(0, 1).text() == "P-002"
    panel.dates.setText("2026-02")  # a bad range is a sentence, nothing is asked
    panel.search_button.click()
    assert "not YYYYMMDD" in panel.status.text() and win.pacs.task is None
    panel.dates.clear()
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.study_table.rowCount() == 2, timeout=30_000)
    _idle(qtbot, win)
    row = next(r for r in range(2) if panel.study_table.item(r, 1).text() == "P-001")
    panel.study_table.selectRow(row)
    qtbot.waitUntil(lambda: panel.series_table.rowCount() == 2, timeout=30_000)
    assert [s.series_uid for s in panel.series] == archive[0].series_uids


def test_retrieve_shows_progress_cancels_resumes_and_opens(qtbot, orthanc, tmp_path):
    big = write_study(tmp_path / "big", "BIG^STUDY", "P-BIG", "20260110", "ACC-B", series=1,
                      slices=120, size=256)  # fmt: skip
    orthanc.upload(big.paths)
    win = _window(qtbot)
    _add_dimse(win, orthanc)
    panel, feature = win.pacs.panel, win.pacs
    panel.search_button.click()
    qtbot.waitUntil(lambda: panel.study_table.rowCount() == 1, timeout=30_000)
    _idle(qtbot, win)
    panel.study_table.selectRow(0)
    qtbot.waitUntil(lambda: panel.series_table.rowCount() == 1, timeout=30_000)
    _idle(qtbot, win)

    # The window keeps drawing while the retrieve runs: a timer ticks on the main thread.
    ticks = []
    timer = QTimer(win)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    seen = []
    bar = win.services.activity

    def on_progress(fraction, sentence):
        seen.append((fraction, sentence))
        if 0 < fraction < 1 and not cancelled:
            cancelled.append(1)
            orthanc.pause()  # hold the transfer where it is, so Cancel lands mid-way
            bar.cancel_button.click()  # the window's one Cancel
            orthanc.resume()

    cancelled: list[int] = []

    panel.retrieve_button.click()
    task = feature.task
    assert task is not None and task in bar.tasks
    task.progressed.connect(on_progress)
    assert not panel.retrieve_button.isEnabled()  # no second retrieve while one runs
    _idle(qtbot, win, 60_000)
    timer.stop()
    assert any("Retrieving from orthanc" in s for _, s in seen)
    assert panel.status.text() == "Cancelled." and panel.retry_button.isVisible()
    cached = feature.cache.series_files(big.study_uid, big.series_uids[0])
    assert 0 < len(cached) < 120
    assert len(ticks) > 5
    assert panel.retrieve_button.isEnabled()

    panel.retry_button.click()  # resumes: only the missing instances
    _idle(qtbot, win, 60_000)
    report = feature.report
    assert report is not None and report.reused == len(cached)
    assert report.fetched == 120 - len(cached)
    assert "Retrieved 120 images" in panel.status.text()
    assert panel.series_table.item(0, 4).text() == "yes"
    files = feature.cache.series_files(big.study_uid, big.series_uids[0])
    assert {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files} == (
        big.sop_uids
    )
    assert panel.open_button.isEnabled()
    panel.open_button.click()  # scans the cache folder: the series appears in the browser
    qtbot.waitUntil(lambda: len(win.browser.series) == 1, timeout=30_000)
    assert win.browser.series[0].n_images == 120


def test_failures_are_sentences_with_retry(qtbot, orthanc, archive):
    win = _window(qtbot)
    down = DimseNode("gone", "PACS", "127.0.0.1", free_port(), timeout_s=5)
    win.pacs.save_node(down)
    panel = win.pacs.panel
    panel.search_button.click()
    _idle(qtbot, win)
    assert "PACS node 'gone'" in panel.status.text() and "cannot be reached" in panel.status.text()
    assert panel.retry_button.isVisible()
    # The node comes back (here: the node is corrected to point at the running Orthanc).
    win.pacs.save_node(DimseNode("gone", ORTHANC_AET, "127.0.0.1", orthanc.dimse_port), "gone")
    panel.retry_button.click()
    qtbot.waitUntil(lambda: panel.study_table.rowCount() == 2, timeout=30_000)


def test_echo_and_send_only_when_confirmed(qtbot, orthanc, tmp_path):
    win = _window(qtbot)
    win.pacs.save_node(WebNode("web", orthanc.web_url))
    panel = win.pacs.panel
    panel.echo_button.click()
    _idle(qtbot, win)
    assert "PACS node 'web' answered in" in panel.status.text()
    results = write_study(tmp_path / "results", "RES^ULT", "P-R", "20260105", "ACC-R", slices=2)
    asked = []
    win.pacs.confirm_send = lambda node, files: asked.append((node.name, len(files))) or False
    assert win.pacs.send_files([results.paths[0].parent]) is None
    assert asked == [("web", 2)]
    assert orthanc.instance_count() == 0  # refused: nothing left the machine
    win.pacs.confirm_send = lambda node, files: True
    win.pacs.send_files([results.paths[0].parent])
    _idle(qtbot, win)
    assert "Sent 2 of 2 file(s) to web." in panel.status.text()
    assert orthanc.sop_uids() == results.sop_uids
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("hello")
    assert win.pacs.send_files([not_dicom]) is None
    assert "is not a DICOM file" in panel.status.text()


def test_node_dialog_builds_and_refuses_nodes(qtbot):
    dialog = NodeDialog()
    qtbot.addWidget(dialog)
    dialog.name.setText("main")
    dialog.aet.setText("PACS1")
    dialog.host.setText("10.1.2.3")
    dialog.port.setValue(104)
    dialog.method.setCurrentIndex(1)
    node = dialog.build()
    assert node == DimseNode("main", "PACS1", "10.1.2.3", 104, retrieve="move")
    dialog.kind.setCurrentIndex(1)
    dialog.url.setText("https://pacs.example/dicom-web")
    dialog.auth.setCurrentIndex(1)
    dialog.user.setText("alice")
    dialog.password.setText("pw")
    assert dialog.build() == WebNode("main", "https://pacs.example/dicom-web", "alice", "pw")
    dialog.url.setText("ftp://nope")
    dialog.accept()
    assert dialog.result_node is None and "not an http(s) DICOMweb URL" in dialog.error.text()
    again = NodeDialog(None, WebNode("w", "https://h/dw", token="t", verify_tls=False))
    qtbot.addWidget(again)
    assert again.auth.currentIndex() == 2 and not again.verify.isChecked()
    assert again.build() == WebNode("w", "https://h/dw", token="t", verify_tls=False)


def test_nodes_saved_from_the_panel_are_the_command_lines(qtbot):
    win = _window(qtbot)
    win.pacs.save_node(WebNode("shared", "https://h/dw", user="u", password="secret-pw"))
    assert NodeBook.load().get("shared").password == "secret-pw"
    assert win.pacs.panel.node_name == "shared"
