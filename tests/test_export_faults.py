"""Export under faults and with risky images: burned-in text stays out unless asked for, and a
full disk is a sentence naming the file while the previous export stays intact."""

from __future__ import annotations

import errno
import hashlib
import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from tests.test_export_dicom_seg import SALT, write_ct_series
from viewer.labels.deid import Deidentifier
from viewer.labels.document import Document
from viewer.labels.export import ExportError, export_case
from viewer.study.volume import Volume


def _doc(vol: Volume) -> Document:
    doc = Document(vol.shape, vol.series_uid)
    doc.labelmap.array[1, 2:6, 2:6] = 1
    return doc


def _export(vol: Volume, out: Path, **kw):
    kw.setdefault("formats", ["nifti"])
    return export_case(vol, _doc(vol), out, deidentifier=Deidentifier(SALT), **kw)


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# ---- burned-in annotation ---------------------------------------------------------------------
def _burned(ds) -> None:
    ds.BurnedInAnnotation = "YES"


def _ultrasound(ds) -> None:
    ds.Modality = "US"


def test_burned_in_yes_keeps_the_image_out_and_says_so(tmp_path):
    vol, _ = write_ct_series(tmp_path / "src", extra=_burned)
    res = _export(vol, tmp_path / "out", with_image=True)
    names = {p.name for p in res.folder.iterdir()}
    assert "mask.nii.gz" in names and "image.nii.gz" not in names
    info = json.loads((res.folder / "export.json").read_text())
    (warning,) = info["warnings"]
    assert "not exported" in warning and "BurnedInAnnotation YES" in warning
    assert vol.meta["source_files"][0] in warning and "--include-burned-in" in warning
    assert info["image"] == {"requested": True, "exported": False,
                             "burned_in_risk": info["image"]["burned_in_risk"]}  # fmt: skip


def test_burned_in_image_goes_out_only_when_asked_and_is_still_reported(tmp_path):
    vol, _ = write_ct_series(tmp_path / "src", extra=_burned)
    res = _export(vol, tmp_path / "out", with_image=True, include_burned_in=True)
    assert (res.folder / "image.nii.gz").exists()
    info = json.loads((res.folder / "export.json").read_text())
    assert info["image"]["exported"] is True
    assert any("exported although" in w for w in info["warnings"])


@pytest.mark.parametrize(("flag", "exported"), [(None, False), ("NO", True), ("YES", False)])
def test_ultrasound_needs_burned_in_annotation_no(tmp_path, flag, exported):
    def extra(ds) -> None:
        _ultrasound(ds)
        if flag is not None:
            ds.BurnedInAnnotation = flag

    vol, _ = write_ct_series(tmp_path / "src", extra=extra)
    res = _export(vol, tmp_path / "out", with_image=True)
    assert (res.folder / "image.nii.gz").exists() == exported
    warnings = json.loads((res.folder / "export.json").read_text())["warnings"]
    assert (warnings == []) == exported
    if flag is None:
        assert "US image without a BurnedInAnnotation attribute" in warnings[0]


def test_ct_without_the_attribute_and_without_sources_is_exported(tmp_path):
    vol, _ = write_ct_series(tmp_path / "src")
    res = _export(vol, tmp_path / "out", with_image=True)
    assert (res.folder / "image.nii.gz").exists()
    assert json.loads((res.folder / "export.json").read_text())["warnings"] == []


@pytest.mark.parametrize(
    ("modality", "meta", "refused"),
    [("OT", {}, True), ("DX", {}, False), ("OT", {"format": "png", "source_files": ["/x/shot.png"]}, True),
     ("OT", {"format": "nii", "source_files": ["/x/ct.nii"]}, False)],
)  # fmt: skip
def test_pictures_and_secondary_captures_without_headers(tmp_path, modality, meta, refused):
    vol = Volume(np.zeros((2, 8, 8), np.int16), modality=modality, series_uid="1.2.3", meta=meta)
    res = _export(vol, tmp_path / "out", with_image=True)
    assert (res.folder / "image.nii.gz").exists() != refused
    warnings = json.loads((res.folder / "export.json").read_text())["warnings"]
    assert bool(warnings) == refused
    if meta.get("format") == "png":
        assert "/x/shot.png is a PNG picture" in warnings[0]


def test_cli_include_burned_in_flag(tmp_path, capsys):
    from viewer.cli import main
    from viewer.labels.store import LabelStore
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series

    src = tmp_path / "study"
    _, uids = write_ct_series(src, extra=_burned)
    volume = load_series(scan_folder(src).series[0])
    with LabelStore.open(volume) as store:
        square = np.zeros(volume.shape[1:], bool)
        square[3:7, 3:7] = True
        store.document.paint(1, square, 2)
    args = ["export", str(src), "--out", str(tmp_path / "a"), "--with-image"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: the image was not exported" in err and "BurnedInAnnotation YES" in err
    (case,) = (tmp_path / "a").iterdir()
    assert not (case / "image.nii.gz").exists()
    args = ["export", str(src), "--out", str(tmp_path / "b"), "--with-image", "--include-burned-in"]
    assert main(args) == 0
    (case,) = (tmp_path / "b").iterdir()
    assert (case / "image.nii.gz").exists()
    assert "exported although" in capsys.readouterr().err


# ---- disk full ----------------------------------------------------------------------------------
def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def exported(tmp_path):
    vol, _ = write_ct_series(tmp_path / "src")
    first = _export(vol, tmp_path / "out", formats=["nifti", "nrrd", "json", "dicom-seg"])
    return vol, first, _hashes(first.folder)


def _assert_intact(first, before) -> None:
    assert _hashes(first.folder) == before
    assert [p.name for p in first.folder.parent.iterdir()] == [first.folder.name]  # no temp left


@pytest.mark.parametrize(
    ("target", "name"),
    [("viewer.labels.export.core_write_nifti", "mask.nii.gz"),
     ("viewer.labels.export.atomic_write_json", "label_table.json"),
     ("viewer.labels.export.atomic_write_text", "annotations.csv"),
     ("viewer.labels.dicomseg.write_segmentation", "seg.dcm")],
)  # fmt: skip
def test_disk_full_names_the_file_and_keeps_the_previous_export(
    exported, monkeypatch, target, name
):
    vol, first, before = exported
    monkeypatch.setattr(target, _enospc)
    with pytest.raises(ExportError) as err:
        _export(vol, first.folder.parent, formats=["nifti", "csv", "json", "dicom-seg"],
                overwrite=True)  # fmt: skip
    assert str(err.value) == f"cannot write {first.folder / name}: the disk is full"
    assert "Errno" not in str(err.value)
    _assert_intact(first, before)


def test_simpleitk_failure_is_a_sentence_not_a_traceback(exported, monkeypatch):
    import shutil

    import SimpleITK as sitk

    vol, first, before = exported

    def fail(image, path, *a, **k):
        raise RuntimeError(
            "Exception thrown in SimpleITK ImageFileWriter_Execute: /work/ITK/Modules/IO/NRRD/"
            f"src/itkNrrdImageIO.cxx:1164:\nITK ERROR: NrrdImageIO(0x5563): Write: Error writing {path}"
        )

    monkeypatch.setattr(sitk, "WriteImage", fail)
    usage = namedtuple("usage", "total used free")
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100, 100, 0))
    with pytest.raises(ExportError) as err:
        _export(vol, first.folder.parent, formats=["nrrd"], overwrite=True)
    assert str(err.value) == f"cannot write {first.folder / 'mask.nrrd'}: the disk is full"
    _assert_intact(first, before)
    # With space left the writer's own words come through, on one line, naming the final file.
    monkeypatch.setattr(shutil, "disk_usage", real_usage)
    with pytest.raises(ExportError) as err:
        _export(vol, first.folder.parent, formats=["nrrd"], overwrite=True)
    msg = str(err.value)
    assert msg.startswith(f"cannot write {first.folder / 'mask.nrrd'}: the writer failed (")
    assert "\n" not in msg and ".partial-" not in msg and str(first.folder / "mask.nrrd") in msg
    _assert_intact(first, before)


def test_cli_disk_full_is_one_sentence_with_the_path(tmp_path, monkeypatch, capsys):
    from viewer.cli import main
    from viewer.labels.store import LabelStore
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series

    src = tmp_path / "study"
    write_ct_series(src)
    volume = load_series(scan_folder(src).series[0])
    with LabelStore.open(volume) as store:
        square = np.zeros(volume.shape[1:], bool)
        square[3:7, 3:7] = True
        store.document.paint(1, square, 2)
    monkeypatch.setattr("viewer.labels.export.core_write_nifti", _enospc)
    assert main(["export", str(src), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("radlens export: cannot write ") and err.endswith(
        "/mask.nii.gz: the disk is full"
    )
    assert "Traceback" not in err and "Errno" not in err and len(err.splitlines()) == 1


# ---- reading back, and the dialog ---------------------------------------------------------------
def test_import_errors_are_sentences_naming_the_file(tmp_path):
    from viewer.labels.imports import LabelImportError, import_annotations, import_mask

    folder = tmp_path / "a.json"
    folder.mkdir()  # reading a folder: an OSError without a readable message
    with pytest.raises(LabelImportError) as err:
        import_annotations(folder)
    assert str(err.value).startswith(f"cannot read {folder}: ") and "Errno" not in str(err.value)
    bad = tmp_path / "mask.nrrd"
    bad.write_bytes(b"NRRD0004\ntype: nonsense\n\n")
    vol = Volume(np.zeros((2, 4, 4), np.int16), series_uid="1.2.3")
    with pytest.raises(LabelImportError) as err:
        import_mask(bad, vol)
    msg = str(err.value)
    assert msg.startswith(f"{bad}: cannot read the label map (") and "\n" not in msg
    assert ".cxx" not in msg.split("(")[0]


def test_missing_source_file_for_dicom_seg_names_it(tmp_path):
    from viewer.labels.dicomseg import SegExportError

    vol, _ = write_ct_series(tmp_path / "src")
    gone = Path(vol.meta["source_files"][2])
    gone.unlink()
    with pytest.raises(SegExportError) as err:
        _export(vol, tmp_path / "out", formats=["dicom-seg"])
    assert str(err.value) == f"cannot read the source DICOM file {gone}: no such file or folder"


def test_export_dialog_leaves_burned_in_images_out_and_shows_why(tmp_path, qtbot):
    from viewer.ui.export_dialog import ExportDialog

    vol, _ = write_ct_series(tmp_path / "src", extra=_burned)
    dialog = ExportDialog(vol, _doc(vol), str(tmp_path / "out"))
    qtbot.addWidget(dialog)
    assert not dialog.burned_in_box.isEnabled() and not dialog.burned_in_box.isChecked()
    dialog.image_box.setChecked(True)
    assert dialog.burned_in_box.isEnabled() and not dialog.burned_in_box.isChecked()
    shown: list[list[str]] = []
    dialog.show_warnings = lambda folder, warnings: shown.append(warnings)
    with qtbot.waitSignal(dialog.export_finished, timeout=20000) as done:
        assert dialog.start_export()
    qtbot.waitUntil(lambda: dialog.task is None, timeout=5000)
    assert not (done.args[0].folder / "image.nii.gz").exists()
    assert len(shown) == 1 and "BurnedInAnnotation YES" in shown[0][0]


def test_export_dialog_shows_the_disk_full_sentence(tmp_path, qtbot, monkeypatch):
    from viewer.ui.export_dialog import ExportDialog

    vol, _ = write_ct_series(tmp_path / "src")
    monkeypatch.setattr("viewer.labels.export.core_write_nifti", _enospc)
    dialog = ExportDialog(vol, _doc(vol), str(tmp_path / "out"))
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.export_failed, timeout=20000) as failed:
        assert dialog.start_export()
    qtbot.waitUntil(lambda: dialog.task is None, timeout=5000)
    (message,) = failed.args
    assert message == f"cannot write {dialog.target() / 'mask.nii.gz'}: the disk is full"
    assert dialog.status.text() == message
