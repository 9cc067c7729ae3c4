"""De-identification: basic profile actions, consistent pseudonyms, UIDs and date shifts."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset

from viewer.labels.deid import Deidentifier, installation_salt


def _ds() -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^John", "12345", "19600101"
    ds.PatientSex, ds.PatientAge = "M", "064Y"
    ds.InstitutionName, ds.OperatorsName = "General", "Tech^A"
    ds.StudyDate, ds.AcquisitionDateTime, ds.StudyTime = "20240110", "20240110101500.000", "101500"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5", "1.2.3.4.6"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref = Dataset()
    ref.ReferencedSOPInstanceUID, ref.ReferencedSOPClassUID = (
        "1.2.3.4.7",
        "1.2.840.10008.5.1.4.1.1.2",
    )
    ds.ReferencedImageSequence = [ref]
    ds.add_new((0x0009, 0x0010), "LO", "PRIVATE")
    ds.add_new((0x0009, 0x1001), "LO", "secret")
    return ds


def test_basic_profile_replaces_removes_and_reports():
    d = Deidentifier(b"s")
    src = _ds()
    out = d.dataset(src)
    assert (
        out.PatientID == d.pseudonym("12345") and str(out.PatientName) == d.pseudonym("12345") + "^"
    )
    assert out.PatientBirthDate in (None, "") and out.PatientSex in (None, "")
    assert "PatientAge" not in out and "InstitutionName" not in out and "OperatorsName" not in out
    assert not any(e.tag.is_private for e in out.iterall())
    assert out.PatientIdentityRemoved == "YES"
    assert src.PatientName == "Doe^John" and "InstitutionName" in src  # original untouched
    rep = d.report.to_dict()
    assert "InstitutionName" in rep["removed"] and "PatientBirthDate" in rep["emptied"]
    assert rep["private_tags_removed"] == 2 and rep["uids_remapped"] == 3


def test_uids_remapped_consistently_inside_sequences_and_dicom_uids_kept():
    d = Deidentifier(b"s")
    out = d.dataset(_ds())
    assert out.StudyInstanceUID == d.uid("1.2.3.4.5") != "1.2.3.4.5"
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == d.uid("1.2.3.4.7")
    assert out.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert len(out.StudyInstanceUID) <= 64 and out.StudyInstanceUID.startswith("2.25.")
    assert pydicom.uid.UID(out.StudyInstanceUID).is_valid
    assert Deidentifier(b"other").uid("1.2.3.4.5") != out.StudyInstanceUID


def test_dates_shift_by_one_offset_per_patient_and_times_are_kept():
    d = Deidentifier(b"s")
    out = d.dataset(_ds())
    days = d.date_shift("12345")
    assert -3650 <= days <= -1
    assert out.StudyDate == d.shift_date("20240110", days)
    assert (
        out.AcquisitionDateTime[:8] == out.StudyDate and out.AcquisitionDateTime[8:] == "101500.000"
    )
    assert out.StudyTime == "101500"
    assert d.date_shift("12345") == Deidentifier(b"s").date_shift("12345")
    assert d.shift_date("2024", days) == ""  # unparsable -> emptied, never leaked


def test_meta_records_drop_identity_and_remap():
    d = Deidentifier(b"s")
    meta = {"patient_name": "Doe^John", "patient_id": "12345", "patient_birth_date": "19600101",
            "study_uid": "1.2.3", "study_date": "20240110", "body_part": "CHEST",
            "sop_instance_uids": ["1.2.3.1", "1.2.3.2"], "source_files": ["/x/a.dcm"]}  # fmt: skip
    out = d.meta(meta, "12345")
    assert (
        "patient_name" not in out and "patient_birth_date" not in out and "source_files" not in out
    )
    assert out["patient_id"] == d.pseudonym("12345")
    assert out["study_uid"] == d.uid("1.2.3") and out["sop_instance_uids"][1] == d.uid("1.2.3.2")
    assert out["study_date"] != "20240110" and out["body_part"] == "CHEST"


def test_installation_salt_is_created_once_and_kept(_isolated_user_data):
    a = installation_salt()
    assert len(a) == 64 and installation_salt() == a
    assert (_isolated_user_data / "deid_salt").read_bytes().strip() == a


@pytest.mark.parametrize("pid", ["", "x"])
def test_pseudonyms_are_stable_and_distinct(pid):
    d = Deidentifier(b"s")
    assert d.pseudonym(pid) == d.pseudonym(pid) != d.pseudonym(pid + "1")
