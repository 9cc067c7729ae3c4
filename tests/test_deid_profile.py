"""Every row of PS3.15 Table E.1-1, on a dataset that carries all of them (also nested in
sequences), gets the action the profile and RadLens's options give it."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.labels.deid import Deidentifier
from viewer.labels.deid_profile import PROFILE_TABLE, SAFE_PRIVATE

SALT = b"profile-test"
PID = "MRN-0001"

#: The policy, stated independently of the code: the combined actions resolved to the most
#: private choice (U* keeps the sequence with its UIDs remapped); the modified-dates option's
#: "C" applies to dates and times (DA/DT shifted, TM kept), other "C" rows keep their action.
EXPECTED = {"X": "X", "Z": "Z", "D": "D", "U": "U", "X/Z": "X", "X/D": "X", "X/Z/D": "X",
            "Z/D": "Z", "X/Z/U*": "U*"}  # fmt: skip
SECRET = "Secret Smith"
NESTED_NAME = "Nested^Secret"


def _fixed_rows() -> list[tuple[int, str, str, str]]:
    return [(int(t, 16), a, o, n) for t, a, o, n in PROFILE_TABLE if t.isalnum() and "X" not in t
            and not t.startswith("G")]  # fmt: skip


def _value(vr: str, n: int) -> Any:
    return {
        "AE": "SECRETAE", "AS": "042Y", "CS": "SECRET", "DA": "20200315", "DS": "12.5",
        "DT": "20200315101500", "IS": "7", "TM": "101500", "UI": f"1.2.3.4.{n}",
        "UR": "http://secret.example", "PN": "Secret^Person", "US": 7, "SS": 7, "UL": 7,
        "SL": 7, "FL": 1.5, "FD": 1.5, "OB": b"\x01\x02", "OW": b"\x01\x02", "UN": b"\x01\x02",
    }.get(vr, SECRET)  # fmt: skip


def _item(n: int) -> Dataset:
    """What a sequence item may hide: a name, an allergy, a UID, a date and a private tag."""
    item = Dataset()
    item.PersonName = NESTED_NAME  # (0040,A123): D in the table
    item.VerifyingObserverName = NESTED_NAME  # (0040,A075): D
    item.Allergies = "peanuts"  # X
    item.ReferencedSOPInstanceUID = f"1.2.3.9.{n}"  # U
    item.ObservationDateTime = "20200315101500"  # X/D, C with the option
    item.add_new((0x0041, 0x0010), "LO", "ACME")
    item.add_new((0x0041, 0x1001), "LO", SECRET)
    item.add_new((0x0040, 0xA30A), "DS", "5")  # NumericValue: not in the table, kept
    return item


def _dataset() -> tuple[Dataset, dict[int, Any]]:
    ds = Dataset()
    originals: dict[int, Any] = {}
    for n, (tag, _, _, _) in enumerate(_fixed_rows()):
        vr = dictionary_VR(tag).split(" or ")[0]
        value = Sequence([_item(n)]) if vr == "SQ" else _value(vr, n)
        ds.add_new(tag, vr, value)
        originals[tag] = value
    ds.PatientID = PID
    ds.PatientName = "Smith^Secret"
    # Repeating groups: curve data and overlay data/comments go, overlay geometry stays.
    ds.add_new((0x5000, 0x3000), "OB", b"\x01\x02")
    ds.add_new((0x6000, 0x3000), "OW", b"\x01\x02")
    ds.add_new((0x6000, 0x4000), "LT", SECRET)
    ds.add_new((0x6000, 0x0010), "US", 4)
    # Private: an unsafe block and a safe one.
    ds.add_new((0x0009, 0x0010), "LO", "ACME")
    ds.add_new((0x0009, 0x1001), "LO", SECRET)
    creator, group, low, _ = SAFE_PRIVATE[0]
    ds.add_new((group, 0x0010), "LO", creator)
    ds.add_new((group, 0x1000 | low), "DS", "1000")
    ds.add_new((group, 0x1000 | 0xEE), "LO", SECRET)  # same creator, not on the list
    # Outside the table: PN emptied, UID remapped, date shifted, the rest kept.
    ds.add_new((0x0040, 0xA123), "PN", "Table^Name")  # in the table (D), at the top level
    ds.Modality, ds.SliceThickness = "CT", "2.5"
    return ds, originals


@pytest.fixture(scope="module")
def deidentified():
    d = Deidentifier(SALT)
    ds, originals = _dataset()
    return d, ds, d.dataset(ds), originals


def _empty(value: Any) -> bool:
    return value in (None, "", b"") or (isinstance(value, Sequence) and len(value) == 0)


def _check_item(d: Deidentifier, item: Dataset, n: int) -> None:
    assert item.PersonName == "ANONYMOUS" and item.VerifyingObserverName == "ANONYMOUS"
    assert "Allergies" not in item
    assert item.ReferencedSOPInstanceUID == d.uid(f"1.2.3.9.{n}")
    days = d.date_shift(PID)
    assert item.ObservationDateTime == d.shift_date("20200315", days) + "101500"
    assert not any(e.tag.is_private for e in item)
    assert item[0x0040, 0xA30A].value == 5


def test_the_table_has_every_row_of_the_standard():
    assert len(PROFILE_TABLE) == 621
    assert {a for _, a, _, _ in PROFILE_TABLE} == set(EXPECTED)
    assert len({t for t, _, _, _ in PROFILE_TABLE}) == len(PROFILE_TABLE)


def test_every_row_of_the_profile_table_gets_its_action(deidentified):
    d, src, out, originals = deidentified
    days = d.date_shift(PID)
    checked: dict[str, int] = {}
    for n, (tag, basic, option, name) in enumerate(_fixed_rows()):
        vr = dictionary_VR(tag).split(" or ")[0]
        orig = originals[tag]
        action = "C" if option == "C" and vr in ("DA", "DT", "TM") else EXPECTED[basic]
        if tag in (0x00100010, 0x00100020):
            action = "pseudonym"
        checked[action] = checked.get(action, 0) + 1
        where = f"{name} ({tag:08X}) {basic}/{option or '-'} -> {action}"
        if action == "X":
            assert tag not in out, where
            continue
        assert tag in out, where
        value = out[tag].value
        if action == "pseudonym":
            assert str(value).rstrip("^") == d.pseudonym(PID), where
        elif action == "Z":
            assert _empty(value), where
        elif action == "U":
            assert value == d.uid(orig) != orig, where
        elif action == "C":
            expected = {"DA": d.shift_date(orig, days), "DT": d.shift_date(orig, days),
                        "TM": orig}[vr]  # fmt: skip
            assert value == expected and (vr == "TM" or value != orig), where
        elif vr == "SQ":  # D or U*: the sequence stays, its item is de-identified
            assert len(value) == 1, where
            _check_item(d, value[0], n)
        else:  # D: a dummy of the VR, never the original
            assert not _empty(value) and value != orig, where
    rows = len(_fixed_rows())
    assert sum(checked.values()) == rows == len(PROFILE_TABLE) - 4  # + 50xx, 60xx x2, private
    assert set(checked) == {"X", "Z", "D", "U", "C", "U*", "pseudonym"}


def test_repeating_groups_private_tags_and_names_outside_the_table(deidentified):
    d, src, out, _ = deidentified
    assert (0x5000, 0x3000) not in out and (0x6000, 0x3000) not in out
    assert (0x6000, 0x4000) not in out and out[0x6000, 0x0010].value == 4
    assert (0x0009, 0x0010) not in out and (0x0009, 0x1001) not in out
    creator, group, low, _ = SAFE_PRIVATE[0]
    assert out[group, 0x0010].value == creator and out[group, 0x1000 | low].value == 1000
    assert (group, 0x10EE) not in out
    assert out.Modality == "CT" and out.SliceThickness == 2.5
    rep = d.report.to_dict()
    assert rep["private_tags_kept"] == 1 and rep["private_tags_removed"] >= 3
    assert src.PatientName == "Smith^Secret" and (0x0009, 0x1001) in src  # source untouched


def test_no_secret_survives_anywhere_in_the_tree(deidentified):
    d, _, out, _ = deidentified
    leaks = []

    def walk(ds: Dataset, path: str) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for i, item in enumerate(elem.value):
                    walk(item, f"{path}{elem.keyword}[{i}].")
                continue
            text = str(elem.value) if elem.value not in (None, "") else ""
            if elem.VR == "PN" and text and not text.startswith(("RL-", "ANONYMOUS")):
                leaks.append(f"{path}{elem.keyword}={text}")
            if any(s in text for s in (SECRET, "Secret^", "Smith", "peanuts", "SECRETAE")):
                leaks.append(f"{path}{elem.keyword}={text}")
            if elem.VR == "UI" and str(elem.value).startswith("1.2.3."):
                leaks.append(f"{path}{elem.keyword}={text}")

    walk(out, "")
    assert leaks == []


def test_marks_the_object_with_profile_and_option_codes(deidentified):
    d, _, out, _ = deidentified
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [c.CodeValue for c in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113111"]
    assert out.DeidentificationMethod
    rep = d.report.to_dict()
    assert [o["code"] for o in rep["options"]] == codes and rep["table_rows"] == 621


def test_required_attributes_get_a_dummy_instead_of_removal():
    d = Deidentifier(SALT)
    ds = Dataset()
    ds.PatientID, ds.DeviceSerialNumber, ds.StationName = PID, "SN-123", "CT-ROOM-3"
    out = d.dataset(ds, required={"DeviceSerialNumber": "D", "StationName": "Z"})
    assert out.DeviceSerialNumber not in ("", None, "SN-123")
    assert out.StationName in ("", None) and "StationName" in out


def test_scrub_keeps_uids_dates_and_pseudonym_and_applies_the_rest():
    d = Deidentifier(SALT)
    seg = Dataset()
    seg.PatientName, seg.PatientID = "RL-ABC^", "RL-ABC"
    seg.StudyInstanceUID, seg.StudyDate, seg.StudyTime = "2.25.1", "20100101", "101500"
    seg.MedicalAlerts, seg.Allergies, seg.ResponsiblePerson = "alert", "peanuts", "Mom^Secret"
    seg.ConsultingPhysicianName = "Doc^Secret"
    seg.CountryOfResidence, seg.RegionOfResidence = "Freedonia", "North"
    seg.ReferringPhysicianAddress, seg.ReferringPhysicianTelephoneNumbers = "1 Road", "555"
    seg.DeviceSerialNumber = "0"
    d.scrub(seg, required={"DeviceSerialNumber": "D"})
    assert seg.PatientName == "RL-ABC^" and seg.PatientID == "RL-ABC"
    assert (seg.StudyInstanceUID, seg.StudyDate, seg.StudyTime) == ("2.25.1", "20100101", "101500")
    for kw in ("MedicalAlerts", "Allergies", "ResponsiblePerson", "CountryOfResidence",
               "RegionOfResidence", "ReferringPhysicianAddress",
               "ReferringPhysicianTelephoneNumbers"):  # fmt: skip
        assert kw not in seg, kw
    assert seg.ConsultingPhysicianName in ("", None) and seg.DeviceSerialNumber
    assert seg.PatientIdentityRemoved == "YES"
