"""De-identification for exports: the DICOM PS3.15 basic confidentiality profile, consistently.

Policy (written into every export's ``export.json`` as the de-id report):
- PatientName and PatientID become one pseudonym per patient ("RL-" + salted hash);
  birth date, sex, age, addresses, institution, physicians, operators, station, accession
  and study IDs, descriptions and comments are emptied or removed; private tags are removed.
- Dates (DA, DT) are shifted back by a per-patient offset of 1..3650 days, the same for
  every export of that patient, so intervals between studies survive; times are kept.
- UIDs are remapped to ``2.25.<salted SHA-256>`` except the DICOM-defined ones
  (``1.2.840.10008.*``: SOP classes, transfer syntaxes), so references stay consistent: the
  DICOM-SEG's referenced series/instances are the remapped UIDs of the source, and the same
  source exported twice gets the same remapped UIDs.
The salt is a random secret kept in the user data folder (``deid_salt``); without it the
pseudonyms cannot be reversed or recomputed elsewhere.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from radlens_core.errors import UserError
from radlens_core.files import atomic_write_bytes

PROFILE = (
    "DICOM PS3.15 E.1.1 basic profile + retain longitudinal temporal information (modified dates)"
)
DICOM_ROOT = "1.2.840.10008."
METHOD = "RadLens PS3.15 basic profile, dates shifted"  # LO: at most 64 characters

#: Replaced by an empty value (type 2 attributes that must stay present).
EMPTY = (
    "PatientBirthDate",
    "PatientSex",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyID",
    "ContentCreatorName",
)
#: Removed outright.
REMOVE = (
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "PatientBirthName",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientComments",
    "AdditionalPatientHistory",
    "EthnicGroup",
    "Occupation",
    "MilitaryRank",
    "BranchOfService",
    "MedicalRecordLocator",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "StationName",
    "OperatorsName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "ReferencedPatientSequence",
    "DeviceSerialNumber",
    "StudyDescription",
    "SeriesDescription",
    "ImageComments",
    "RequestAttributesSequence",
    "PerformedProcedureStepDescription",
    "PerformedProcedureStepID",
    "ScheduledProcedureStepDescription",
    "RequestedProcedureDescription",
    "AdmittingDiagnosesDescription",
    "IssuerOfPatientID",
    "ProtocolName",
)
#: Keys of Volume.meta / JSON records that carry identity (dropped from exported JSON).
IDENTITY_META_KEYS = frozenset(
    k.lower()
    for k in (
        "patient_name",
        "patient_birth_date",
        "institution",
        "institution_name",
        "referring_physician",
        "accession_number",
        "operators_name",
        "station_name",
        "patient_address",
        "study_description",
        "series_description",
        "source_files",
    )
)


class DeidError(ValueError, UserError):
    """A dataset that cannot be de-identified; the message names the file or attribute."""


def _salt_file() -> Path:
    from radlens_core.paths import user_data_dir

    return user_data_dir() / "deid_salt"


def installation_salt() -> bytes:
    """This installation's secret salt, created once (atomically) on first use."""
    path = _salt_file()
    if not path.exists():
        try:
            atomic_write_bytes(path, secrets.token_hex(32).encode())
            os.chmod(path, 0o600)
        except OSError as exc:
            raise DeidError(f"{path}: cannot create the de-identification salt ({exc})") from exc
    return path.read_bytes().strip()


@dataclass
class DeidReport:
    profile: str = PROFILE
    patient_pseudonym: str = ""
    date_shift_days: int = 0
    replaced: Counter = field(default_factory=Counter)
    emptied: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    uids_remapped: int = 0
    dates_shifted: int = 0
    private_tags_removed: int = 0
    datasets: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "profile": self.profile,
            "patient_pseudonym": self.patient_pseudonym,
            "date_shift_days": self.date_shift_days,
            "datasets": self.datasets,
            "replaced": sorted(self.replaced),
            "emptied": sorted(self.emptied),
            "removed": sorted(self.removed),
            "uids_remapped": self.uids_remapped,
            "dates_shifted": self.dates_shifted,
            "private_tags_removed": self.private_tags_removed,
            "uid_policy": "2.25.<salted SHA-256 of the original UID>; DICOM-defined 1.2.840.10008.* kept",
            "pixel_data": "not inspected for burned-in text (the SEG carries masks only)",
        }


class Deidentifier:
    """Deterministic, salted de-identification: same salt + same input = same output."""

    def __init__(self, salt: bytes | str | None = None):
        if salt is None:
            salt = installation_salt()
        self.salt = salt.encode() if isinstance(salt, str) else bytes(salt)
        self.report = DeidReport()

    def _hash(self, kind: str, value: str) -> bytes:
        return hashlib.sha256(
            self.salt + b"\x00" + kind.encode() + b"\x00" + value.encode()
        ).digest()

    def uid(self, uid: str) -> str:
        uid = str(uid).strip()
        if not uid or uid.startswith(DICOM_ROOT):
            return uid
        return "2.25." + str(int.from_bytes(self._hash("uid", uid)[:16], "big"))

    def pseudonym(self, patient_id: str) -> str:
        return "RL-" + self._hash("patient", str(patient_id)).hex()[:12].upper()

    def case_id(self, series_uid: str) -> str:
        return "case-" + self._hash("case", str(series_uid)).hex()[:16]

    def date_shift(self, patient_id: str) -> int:
        """Days to add to every date of this patient (negative: into the past)."""
        return -(1 + int.from_bytes(self._hash("dates", str(patient_id))[:4], "big") % 3650)

    def shift_date(self, value: str, days: int) -> str:
        """Shift a DA ("YYYYMMDD") or DT ("YYYYMMDD[HHMMSS...]") value; unparsable dates are emptied."""
        v = str(value).strip()
        if len(v) < 8:
            return ""
        try:
            d = dt.date(int(v[:4]), int(v[4:6]), int(v[6:8])) + dt.timedelta(days=days)
        except ValueError:
            return ""
        return d.strftime("%Y%m%d") + v[8:]

    # ---- datasets ---------------------------------------------------------------------------
    def dataset(self, ds: Dataset, source: str = "dataset") -> Dataset:
        """A de-identified deep copy of ``ds`` (the original is not modified)."""
        out = copy.deepcopy(ds)
        pid = str(ds.get("PatientID", "") or ds.get("PatientName", "") or source)
        pseudo = self.pseudonym(pid)
        days = self.date_shift(pid)
        r = self.report
        r.patient_pseudonym, r.date_shift_days = pseudo, days
        r.datasets += 1
        n_private = len([e for e in out.iterall() if e.tag.is_private])
        out.remove_private_tags()
        r.private_tags_removed += n_private
        self._walk(out, days)
        out.PatientName = f"{pseudo}^"  # the caret makes it a valid one-component PN
        out.PatientID = pseudo
        r.replaced.update(["PatientName", "PatientID"])
        out.PatientIdentityRemoved = "YES"
        out.LongitudinalTemporalInformationModified = "MODIFIED"
        out.DeidentificationMethod = METHOD
        out.DeidentificationMethodCodeSequence = [
            _code("113100", "Basic Application Confidentiality Profile"),
            _code("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        ]
        fm = getattr(out, "file_meta", None)
        if fm is not None:
            if "MediaStorageSOPInstanceUID" in fm:
                fm.MediaStorageSOPInstanceUID = self.uid(fm.MediaStorageSOPInstanceUID)
        return out

    def _walk(self, ds: Dataset, days: int) -> None:
        r = self.report
        for kw in REMOVE:
            if kw in ds:
                del ds[kw]
                r.removed[kw] += 1
        for kw in EMPTY:
            if kw in ds:
                ds[kw].value = None
                r.emptied[kw] += 1
        for elem in list(ds):
            if elem.VR == "SQ":
                for item in elem.value:
                    self._walk(item, days)
            elif elem.VR == "UI" and elem.value:
                vals = elem.value if elem.VM > 1 else [elem.value]
                new = [self.uid(v) for v in vals]
                r.uids_remapped += sum(a != b for a, b in zip(vals, new, strict=True))
                elem.value = new if elem.VM > 1 else new[0]
            elif elem.VR in ("DA", "DT") and elem.value:
                vals = elem.value if elem.VM > 1 else [elem.value]
                new = [self.shift_date(str(v), days) for v in vals]
                r.dates_shifted += len(new)
                elem.value = new if elem.VM > 1 else new[0]

    # ---- plain records (Volume.meta, JSON) ----------------------------------------------------
    def meta(self, meta: dict[str, Any], patient_id: str) -> dict[str, Any]:
        """A copy of a metadata dict safe for JSON exports: identity keys dropped, UIDs
        remapped, dates shifted, patient id pseudonymised."""
        days = self.date_shift(patient_id)
        out: dict[str, Any] = {}
        for k, v in meta.items():
            lk = k.lower()
            if (
                lk in IDENTITY_META_KEYS
                or lk.startswith("patient")
                and lk not in ("patient_id", "patientid")
            ):
                continue
            if lk in ("patient_id", "patientid"):
                out[k] = self.pseudonym(str(v))
            elif (lk.endswith("uid") or lk.endswith("uids")) and isinstance(v, (str, list, tuple)):
                out[k] = [self.uid(x) for x in v] if isinstance(v, (list, tuple)) else self.uid(v)
            elif lk.endswith("date") and isinstance(v, str):
                out[k] = self.shift_date(v, days)
            elif isinstance(v, (str, int, float, bool)) or v is None:
                out[k] = v
        return out


def _code(value: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, "DCM", meaning
    return c
