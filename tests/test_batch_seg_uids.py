"""A SEG's Series and SOP Instance UIDs come from what it is the result of (source series,
model id and version): `radlens analyze` and `radlens batch` run twice give the same SEG
instance, so a resend replaces it on the PACS instead of adding a second one."""

from __future__ import annotations

import json
import re

import pydicom
import pytest

pytest.importorskip("torch")
pytest.importorskip("highdicom")

from radlens_core.series import series_key  # noqa: E402
from tests.batch_factory import write_phantom_ct  # noqa: E402
from viewer.cli import main  # noqa: E402
from viewer.commands.analyze_outputs import seg_uids  # noqa: E402

UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _analyze(folder, out) -> pydicom.Dataset:
    args = ["analyze", str(folder), "--out", str(out), "--format", "dicom-seg", "--quiet"]
    assert main([*args, "--device", "cpu", "--threads", "1"]) == 0
    return pydicom.dcmread(out / "seg.dcm")


def test_seg_uids_are_valid_distinct_and_depend_on_series_model_and_version():
    series, sop = seg_uids("1.2.3.4", "radlens-ct-chest-seg", "1.0.0")
    for uid in (series, sop):
        assert UID.match(uid) and len(uid) <= 64 and not re.search(r"\.0[0-9]", uid)
    assert series != sop
    assert seg_uids("1.2.3.4", "radlens-ct-chest-seg", "1.0.0") == (series, sop)
    others = [
        seg_uids("1.2.3.5", "radlens-ct-chest-seg", "1.0.0"),
        seg_uids("1.2.3.4", "radlens-ct-nodule-det", "1.0.0"),
        seg_uids("1.2.3.4", "radlens-ct-chest-seg", "1.0.1"),
        # the parts are kept apart: ("1.2.3.4", "1") + "x" is not ("1.2.3.41", "") + "x"
        seg_uids("1.2.3.41", "radlens-ct-chest-seg", "1.0.0"),
    ]
    assert len({series, *(o[0] for o in others)}) == 5
    assert len({sop, *(o[1] for o in others)}) == 5


def test_analyze_twice_writes_the_same_seg_instance_and_another_series_another(tmp_path):
    one = write_phantom_ct(tmp_path / "ct1", 1)
    two = write_phantom_ct(tmp_path / "ct2", 2)
    first = _analyze(tmp_path / "ct1", tmp_path / "a")
    again = _analyze(tmp_path / "ct1", tmp_path / "b")
    other = _analyze(tmp_path / "ct2", tmp_path / "c")
    assert first.Modality == "SEG"
    assert first.SOPInstanceUID == again.SOPInstanceUID
    assert first.SeriesInstanceUID == again.SeriesInstanceUID
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    model = json.loads((tmp_path / "a" / "findings.json").read_text())["model"]
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == seg_uids(
        one.series_uid, model["id"], model["version"]
    )
    assert other.SOPInstanceUID != first.SOPInstanceUID
    assert other.SeriesInstanceUID != first.SeriesInstanceUID
    assert other.ReferencedSeriesSequence[0].SeriesInstanceUID == two.series_uid


def test_batch_writes_the_seg_analyze_writes(tmp_path):
    truth = write_phantom_ct(tmp_path / "archive" / "ct", 3)
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "archive"), "--out", str(out), "--threads", "1", "--quiet"]
    assert main(args) == 0
    batch_seg = pydicom.dcmread(out / series_key(truth.series_uid) / "seg.dcm")
    analyze_seg = _analyze(tmp_path / "archive" / "ct", tmp_path / "analyzed")
    assert batch_seg.SOPInstanceUID == analyze_seg.SOPInstanceUID
    assert batch_seg.SeriesInstanceUID == analyze_seg.SeriesInstanceUID
    assert batch_seg.pixel_array.tobytes() == analyze_seg.pixel_array.tobytes()
