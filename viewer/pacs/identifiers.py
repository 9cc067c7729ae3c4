"""DICOM query identifiers and their answers: a ``StudyQuery`` as a C-FIND identifier, and
C-FIND / QIDO-RS answers (pydicom datasets) as ``StudyRecord`` / ``SeriesRecord``."""

from __future__ import annotations

from pydicom.dataset import Dataset

from viewer.pacs.records import SeriesRecord, StudyQuery, StudyRecord


def text_value(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def int_value(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(str(ds.get(keyword, "")).strip())
    except (TypeError, ValueError):
        return None


def study_identifier(query: StudyQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    name = query.patient_name
    if name and not any(c in name for c in "*?"):
        name += "*"  # "doe" finds DOE^JOHN, as every viewer's search box does
    ds.PatientName = name
    ds.PatientID = query.patient_id
    ds.PatientBirthDate = ""
    ds.StudyDate = query.date_range
    ds.StudyTime = ""
    ds.AccessionNumber = query.accession
    ds.ModalitiesInStudy = query.modality
    ds.StudyDescription = ""
    ds.StudyInstanceUID = query.study_uid
    ds.NumberOfStudyRelatedSeries = ""
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def study_record(ds: Dataset) -> StudyRecord:
    modalities = ds.get("ModalitiesInStudy", "")
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split("\\") if m]
    return StudyRecord(
        study_uid=text_value(ds, "StudyInstanceUID"),
        patient_name=text_value(ds, "PatientName"),
        patient_id=text_value(ds, "PatientID"),
        birth_date=text_value(ds, "PatientBirthDate"),
        study_date=text_value(ds, "StudyDate"),
        study_time=text_value(ds, "StudyTime"),
        description=text_value(ds, "StudyDescription"),
        accession=text_value(ds, "AccessionNumber"),
        modalities=tuple(str(m) for m in (modalities or ())),
        series_count=int_value(ds, "NumberOfStudyRelatedSeries"),
        instance_count=int_value(ds, "NumberOfStudyRelatedInstances"),
    )


def series_record(ds: Dataset, study_uid: str) -> SeriesRecord:
    return SeriesRecord(
        study_uid=text_value(ds, "StudyInstanceUID") or study_uid,
        series_uid=text_value(ds, "SeriesInstanceUID"),
        modality=text_value(ds, "Modality"),
        number=int_value(ds, "SeriesNumber"),
        description=text_value(ds, "SeriesDescription"),
        body_part=text_value(ds, "BodyPartExamined"),
        instance_count=int_value(ds, "NumberOfSeriesRelatedInstances"),
    )
