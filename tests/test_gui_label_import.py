"""The annotations panel's Import… puts a DICOM-SEG / RTSTRUCT on the open series (names,
colours, one undo step) and says plainly when it cannot; the export dialog writes the SEG
type chosen."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests.seg_series import blobs, load, write_series
from viewer.labels.dicomseg import build_segmentation, read_sources
from viewer.labels.model import LabelSet, annotation_class
from viewer.ui.main_window import MainWindow

THEIRS = LabelSet((annotation_class(4, "liver", "#b4643c"), annotation_class(9, "cyst", "#3cb4b4")))


@pytest.fixture
def opened(qtbot, tmp_path):
    write_series(tmp_path / "src", shape=(6, 40, 48))
    volume = load(tmp_path / "src")
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    window.state.set_volume(volume)
    yield window, volume, tmp_path
    window.close()


def _seg_file(volume, tmp_path):
    labels = np.zeros(volume.shape, np.uint8)
    b = blobs(volume.shape, 2, seed=11)
    labels[b == 1], labels[b == 2] = 4, 9
    seg, _ = build_segmentation(volume, labels, THEIRS, read_sources(volume), seg_type="binary")
    seg.save_as(str(tmp_path / "their-seg.dcm"))
    return tmp_path / "their-seg.dcm", labels


def _import(qtbot, panel, path) -> tuple[bool, str]:
    """Import… as the user gets it: read on a worker, applied when it is done."""
    with qtbot.waitSignal(panel.import_finished, timeout=20000) as done:
        assert panel.import_file(path)
    return done.args[0], done.args[1]


def test_import_button_puts_a_seg_on_the_series_with_names_and_colours(opened, qtbot):
    window, volume, tmp_path = opened
    panel = window.annotations.panel
    ctrl = window.annotations.controller
    assert panel.import_button.isVisible() and panel.import_button.text() == "Import…"
    path, labels = _seg_file(volume, tmp_path)
    ok, message = _import(qtbot, panel, path)
    assert ok and message == panel.import_status.text()
    doc = ctrl.document
    np.testing.assert_array_equal(doc.labelmap.array, labels)
    names = [panel.class_table.item(r, 1).text() for r in range(panel.class_table.rowCount())]
    assert {"liver", "cyst"} <= set(names)
    assert doc.label_set.get(4).color == "#b4643c"
    assert "Imported BINARY DICOM-SEG their-seg.dcm: liver, cyst." in panel.import_status.text()
    ctrl.undo()
    assert not doc.labelmap.array.any()


def test_import_of_a_deidentified_seg_says_why_it_cannot_be_shown(opened, qtbot):
    from viewer.labels.deid import Deidentifier
    from viewer.labels.document import Document
    from viewer.labels.export import export_case

    window, volume, tmp_path = opened
    doc = Document(volume.shape, volume.series_uid)
    doc.labelmap.array[2, 3:6, 3:6] = 1
    res = export_case(volume, doc, tmp_path / "out", ["dicom-seg"], deidentifier=Deidentifier(b"x"))
    panel = window.annotations.panel
    ok, text = _import(qtbot, panel, res.folder / "seg.dcm")
    assert not ok and text == panel.import_status.text()
    assert text.startswith("Not imported:") and "de-identif" in text
    assert not window.annotations.controller.document.labelmap.array.any()


def test_export_dialog_writes_the_seg_type_chosen(opened, qtbot):
    from viewer.ui.export_dialog import ExportDialog

    window, volume, tmp_path = opened
    doc = window.annotations.controller.document
    doc.labelmap.array[1, 2:5, 2:5] = 1
    dialog = ExportDialog(volume, doc, tmp_path / "exp")
    qtbot.addWidget(dialog)
    assert dialog.seg_type() == "labelmap"
    assert not dialog.seg_type_box.isEnabled()
    for fmt, box in dialog.format_boxes.items():
        box.setChecked(fmt == "dicom-seg")
    assert dialog.seg_type_box.isEnabled()
    dialog.seg_type_box.setCurrentIndex(dialog.seg_type_box.findData("binary"))
    dialog.deid_box.setChecked(False)
    dialog.ai_box.setChecked(False)
    assert dialog.start_export()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20000)
    ds = pydicom.dcmread(dialog.result.folder / "seg.dcm")
    assert ds.SegmentationType == "BINARY"


def test_export_dialog_exports_the_ai_results_of_an_unlabelled_series(opened, qtbot):
    from radlens_core.results import LabelClass
    from viewer.labels.results import ResultRecord, ResultStore
    from viewer.ui.export_dialog import ExportDialog

    window, volume, tmp_path = opened
    mask = np.zeros(volume.shape, np.uint8)
    mask[2:4, 10:20, 12:30] = 1
    ResultStore().save(
        volume.series_uid,
        ResultRecord(
            model_id="demo-seg", model_name="Demo", model_version="0.3", task="segmentation",
            shape=volume.shape, label_map=mask, labels=[LabelClass(1, "lesion", "#ff00aa")],
        ),
    )  # fmt: skip
    doc = window.annotations.controller.document
    dialog = ExportDialog(volume, doc, tmp_path / "exp")
    qtbot.addWidget(dialog)
    assert dialog.ai_box.isChecked()  # nothing drawn: the AI results are what there is
    for fmt, box in dialog.format_boxes.items():
        box.setChecked(fmt in ("dicom-seg", "nifti"))
    dialog.deid_box.setChecked(False)
    assert dialog.start_export()
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20000)
    info = dialog.result.info
    assert info["labels_source"] == "ai" and info["ai_results"][0]["model_id"] == "demo-seg"
    item = pydicom.dcmread(dialog.result.folder / "seg.dcm").SegmentSequence[-1]
    assert item.SegmentAlgorithmType == "AUTOMATIC" and item.SegmentLabel == "lesion"
