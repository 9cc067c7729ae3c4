"""What a PACS query asks and answers: typed, frozen records (no pydicom datasets leak out)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from viewer.pacs.errors import NodeConfigError

_DATE = re.compile(r"\d{8}")
#: Characters a query value may hold: DICOM wildcards (* ?) and the usual name characters.
_VALUE = re.compile(r"[^\\\x00-\x1f]{0,64}")


def parse_date_range(text: str) -> tuple[str, str]:
    """``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` or ``-YYYYMMDD`` -> (from, to)."""
    text = text.strip().replace("/", "")
    if "-" in text:
        lo, _, hi = text.partition("-")
    else:
        lo = hi = text
    for part in (lo, hi):
        if part and not _DATE.fullmatch(part):
            raise NodeConfigError(
                "", f"the date range '{text}' is not YYYYMMDD-YYYYMMDD (either side may be empty)"
            )
    if lo and hi and lo > hi:
        raise NodeConfigError("", f"the date range '{text}' ends before it starts")
    return lo, hi


@dataclass(frozen=True)
class StudyQuery:
    """Study search keys; empty means "any". Names and IDs may use DICOM wildcards (* and ?)."""

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""  # YYYYMMDD
    date_to: str = ""
    modality: str = ""
    accession: str = ""
    study_uid: str = ""
    limit: int = 500

    def __post_init__(self) -> None:
        for name in ("patient_name", "patient_id", "modality", "accession", "study_uid"):
            if not _VALUE.fullmatch(getattr(self, name)):
                raise NodeConfigError(
                    "", f"the search field {name} holds characters a PACS refuses"
                )
        for name in ("date_from", "date_to"):
            if getattr(self, name) and not _DATE.fullmatch(getattr(self, name)):
                raise NodeConfigError("", f"the search date {getattr(self, name)} is not YYYYMMDD")
        if not 1 <= self.limit <= 10_000:
            raise NodeConfigError("", "a search returns between 1 and 10000 studies")

    @property
    def date_range(self) -> str:
        """The DICOM range matching value ('' when no date was given)."""
        if not (self.date_from or self.date_to):
            return ""
        if self.date_from == self.date_to:
            return self.date_from
        return f"{self.date_from}-{self.date_to}"


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    study_time: str = ""
    description: str = ""
    accession: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int | None = None
    instance_count: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "study_uid": self.study_uid,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "birth_date": self.birth_date,
            "study_date": self.study_date,
            "study_time": self.study_time,
            "description": self.description,
            "accession": self.accession,
            "modalities": list(self.modalities),
            "series_count": self.series_count,
            "instance_count": self.instance_count,
        }


@dataclass(frozen=True)
class SeriesRecord:
    study_uid: str
    series_uid: str
    modality: str = ""
    number: int | None = None
    description: str = ""
    body_part: str = ""
    instance_count: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "modality": self.modality,
            "number": self.number,
            "description": self.description,
            "body_part": self.body_part,
            "instance_count": self.instance_count,
        }


@dataclass(frozen=True)
class InstanceRef:
    """One instance as the node lists it (what a retrieve asks for and resumes by)."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str = ""


@dataclass(frozen=True)
class RetrieveReport:
    """What a retrieve left in the cache: every instance's file, by series."""

    node: str
    study_uid: str
    expected: int
    fetched: int  # instances transferred by this call
    reused: int  # instances already in the cache (a resumed or repeated retrieve)
    bytes_fetched: int
    series_folders: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def received(self) -> int:
        return self.fetched + self.reused


@dataclass(frozen=True)
class SendReport:
    node: str
    sent: int
    failed: tuple[str, ...] = ()  # "file: reason" for each refused instance
