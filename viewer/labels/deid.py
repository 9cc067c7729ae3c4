"""De-identification for exports: the whole DICOM PS3.15 Basic Application Level
Confidentiality Profile (Table E.1-1, in ``deid_profile``), recursively, consistently.

Policy (written into every export's ``export.json`` as the de-id report):
- Every row of the table is applied, at every depth of every sequence, as ``deid_rules``
  resolves it for RadLens's options (Retain Longitudinal Temporal Information with Modified
  Dates; Retain Safe Private); person names (PN) outside the table become empty; private
  attributes are removed unless on the safe list.
- PatientName and PatientID become one pseudonym per patient ("RL-" + salted hash).
- Dates (DA, DT) are shifted back by a per-patient offset of 1..3650 days, the same for
  every export of that patient, so intervals between studies survive; times of day are kept
  (the shift is whole days).
- UIDs are remapped to ``2.25.<salted SHA-256>`` except the DICOM-defined ones
  (``1.2.840.10008.*``: SOP classes, transfer syntaxes), so references stay consistent: the
  DICOM-SEG's referenced series/instances are the remapped UIDs of the source, and the same
  source exported twice gets the same remapped UIDs.
- Objects RadLens builds from de-identified sources (the DICOM-SEG) are scrubbed again with
  the same table (``Deidentifier.scrub``) so they carry only what the profile keeps.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from radlens_core.errors import UserError
from radlens_core.files import atomic_write_bytes
from viewer.labels.deid_profile import PROFILE_TABLE, SAFE_PRIVATE, STANDARD
from viewer.labels.deid_rules import (
    METHOD_CODES,
    TABLE,
    dummy,
    is_safe_private,
    repeating_group_action,
    resolve,
)

PROFILE = (
    "DICOM PS3.15 E.1.1 basic profile + retain longitudinal temporal information (modified dates)"
    " + retain safe private"
)
DICOM_ROOT = "1.2.840.10008."
METHOD = "RadLens PS3.15 basic profile, dates shifted"  # LO: at most 64 characters
#: The attributes that carry the pseudonym instead of the table's Z (top level only).
PSEUDONYM = (0x00100010, 0x00100020)  # PatientName, PatientID
#: The marks RadLens writes on a de-identified object (kept by ``scrub``).
MARKS = (0x00120062, 0x00120063, 0x00120064, 0x00280303)

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
    dummied: Counter = field(default_factory=Counter)
    uids_remapped: int = 0
    dates_shifted: int = 0
    private_tags_removed: int = 0
    private_tags_kept: int = 0
    datasets: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "profile": self.profile,
            "standard": STANDARD,
            "table_rows": len(PROFILE_TABLE),
            "options": [{"code": c, "scheme": "DCM", "meaning": m} for c, m in METHOD_CODES],
            "deidentification_method": METHOD,
            "patient_identity_removed": "YES",
            "patient_pseudonym": self.patient_pseudonym,
            "date_shift_days": self.date_shift_days,
            "datasets": self.datasets,
            "replaced": sorted(self.replaced),
            "emptied": sorted(self.emptied),
            "removed": sorted(self.removed),
            "dummied": sorted(self.dummied),
            "uids_remapped": self.uids_remapped,
            "dates_shifted": self.dates_shifted,
            "private_tags_removed": self.private_tags_removed,
            "private_tags_kept": self.private_tags_kept,
            "safe_private": [f"({g:04X},xx{e:02X}) {c} {n}" for c, g, e, n in SAFE_PRIVATE],
            "combined_actions": "X/Z, X/D, X/Z/D: removed; Z/D: emptied (Patient ID: pseudonym); "
            "X/Z/U*: kept with every UID inside remapped and its items de-identified",
            "person_names": "every PN attribute, at any depth, is emptied unless the table says "
            "otherwise; PatientName is the pseudonym",
            "times": "kept: dates move by whole days, so times of day are unchanged",
            "uid_policy": "2.25.<salted SHA-256 of the original UID>; DICOM-defined 1.2.840.10008.* kept",
            "pixel_data": "not inspected for burned-in text; images flagged BurnedInAnnotation "
            "(or secondary captures without the flag) are left out unless asked for",
        }


@dataclass
class _Pass:
    """One walk over a dataset: the patient's date shift, what the object needs present,
    and whether UIDs and dates are already de-identified (``scrub``)."""

    days: int
    required: Mapping[str, str]
    scrub: bool = False


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
    def dataset(
        self, ds: Dataset, source: str = "dataset", required: Mapping[str, str] | None = None
    ) -> Dataset:
        """A de-identified deep copy of ``ds`` (the original is not modified).

        ``required`` maps keywords to the action ("Z" or "D") an object needs for a
        combined row (X/Z, X/D, X/Z/D) that would otherwise remove the attribute."""
        out = copy.deepcopy(ds)
        pid = str(ds.get("PatientID", "") or ds.get("PatientName", "") or source)
        pseudo = self.pseudonym(pid)
        days = self.date_shift(pid)
        r = self.report
        r.patient_pseudonym, r.date_shift_days = pseudo, days
        r.datasets += 1
        self._walk(out, _Pass(days, required or {}), top=True)
        out.PatientName = f"{pseudo}^"  # the caret makes it a valid one-component PN
        out.PatientID = pseudo
        r.replaced.update(["PatientName", "PatientID"])
        mark(out)
        fm = getattr(out, "file_meta", None)
        if fm is not None:
            if "MediaStorageSOPInstanceUID" in fm:
                fm.MediaStorageSOPInstanceUID = self.uid(fm.MediaStorageSOPInstanceUID)
        return out

    def scrub(self, ds: Dataset, required: Mapping[str, str] | None = None) -> None:
        """Apply the table in place to an object RadLens built from de-identified sources
        (the DICOM-SEG): UIDs, dates and the pseudonym are already done and stay; every
        other row (and every PN, every private attribute) is applied again."""
        self._walk(ds, _Pass(0, required or {}, scrub=True), top=True)
        mark(ds)

    def _walk(self, ds: Dataset, p: _Pass, top: bool = False) -> None:
        self._privates(ds)
        for tag in list(ds.keys()):
            t = int(tag)
            if tag.is_private or (top and (t in PSEUDONYM or t in MARKS)):
                continue
            elem = ds[tag]
            name = keyword_for_tag(t) or f"({t >> 16:04X},{t & 0xFFFF:04X})"
            action = self._action(t, elem.VR, name, p)
            self._apply(ds, tag, elem, action, name, p)

    def _action(self, t: int, vr: str, name: str, p: _Pass) -> str:
        row = TABLE.get(t)
        if row is not None:
            return resolve(row[0], row[1], p.required.get(name), vr)
        if (group_action := repeating_group_action(t)) is not None:
            return group_action
        if t >> 16 == 0x0002 or t & 0xFFFF == 0:
            return "K"  # file meta and group lengths
        return {"SQ": "K", "UI": "U", "DA": "C", "DT": "C", "PN": "Z"}.get(vr, "K")

    def _apply(self, ds: Dataset, tag: Any, elem: Any, action: str, name: str, p: _Pass) -> None:
        r = self.report
        if action == "X":
            del ds[tag]
            r.removed[name] += 1
        elif elem.VR == "SQ":
            if action == "Z":
                elem.value = []
                r.emptied[name] += 1
            else:  # D, K, C, U*: the sequence stays, its items are de-identified the same way
                for item in elem.value:
                    self._walk(item, p)
        elif action == "Z":
            elem.value = None
            r.emptied[name] += 1
        elif action == "D" and elem.VR == "UI":  # a dummy UID: the consistent remapped one
            if not p.scrub:
                self._remap(elem)
        elif action == "D":
            elem.value = dummy(elem.VR)
            r.dummied[name] += 1
        elif action == "U" and not p.scrub:
            self._remap(elem)
        elif action == "C" and not p.scrub and elem.VR in ("DA", "DT") and elem.value:
            vals = elem.value if elem.VM > 1 else [elem.value]
            new = [self.shift_date(str(v), p.days) for v in vals]
            r.dates_shifted += len(new)
            elem.value = new if elem.VM > 1 else new[0]

    def _remap(self, elem: Any) -> None:
        if not elem.value:
            return
        value = elem.value
        if isinstance(value, bytes):  # a UID read as UN (implicit VR, unknown dictionary)
            value = value.decode("ascii", "replace").strip("\x00 ")
        vals = list(value) if elem.VM > 1 else [value]
        new = [self.uid(v) for v in vals]
        self.report.uids_remapped += sum(a != b for a, b in zip(vals, new, strict=True))
        elem.value = new if len(new) > 1 else new[0]

    def _privates(self, ds: Dataset) -> None:
        """Remove private attributes (and their creators) unless on the safe list."""
        r = self.report
        private = [tag for tag in ds.keys() if tag.is_private]
        if not private:
            return
        creators: dict[tuple[int, int], str] = {}
        for tag in private:
            if 0x10 <= tag.element <= 0xFF:
                creators[(tag.group, tag.element)] = str(ds[tag].value or "")
        kept_blocks: set[tuple[int, int]] = set()
        for tag in private:
            if tag.element <= 0xFF:
                continue  # creators and group lengths: decided below
            block = (tag.group, tag.element >> 8)
            creator = creators.get(block, "")
            if creator and is_safe_private(creator, int(tag)) and ds[tag].VR != "SQ":
                kept_blocks.add(block)
                r.private_tags_kept += 1
            else:
                del ds[tag]
                r.private_tags_removed += 1
        for tag in private:
            if tag.element <= 0xFF and (tag.group, tag.element) not in kept_blocks:
                del ds[tag]
                r.private_tags_removed += 1

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


def mark(ds: Dataset) -> None:
    """Say on the object itself that it is de-identified, how, and with which options."""
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = METHOD
    ds.DeidentificationMethodCodeSequence = [_code(c, m) for c, m in METHOD_CODES]


def _code(value: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, "DCM", meaning
    return c
