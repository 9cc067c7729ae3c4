"""``pacs:NODE?Modality=CT&StudyDate=20260101-20260131``: a PACS query written as one string,
for `radlens batch SOURCE` (and any script) -> the node's name and a ``StudyQuery``."""

from __future__ import annotations

from urllib.parse import parse_qsl

from viewer.pacs.errors import NodeConfigError
from viewer.pacs.nodes import check_name
from viewer.pacs.records import StudyQuery, parse_date_range

PREFIX = "pacs:"
#: query key (DICOM keyword, as in QIDO-RS) -> StudyQuery field
KEYS = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "Modality": "modality",
    "ModalitiesInStudy": "modality",
    "AccessionNumber": "accession",
    "StudyInstanceUID": "study_uid",
    "limit": "limit",
}


def is_pacs_source(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_pacs_source(text: str) -> tuple[str, StudyQuery]:
    """(node name, query); NodeConfigError naming the unknown key or bad value."""
    if not is_pacs_source(text):
        raise NodeConfigError("", f"'{text}' is not a PACS source (pacs:NODE?Key=Value&...)")
    node, _, query = text[len(PREFIX) :].partition("?")
    node = check_name(node)
    fields: dict[str, object] = {}
    for key, value in parse_qsl(query, keep_blank_values=False, strict_parsing=bool(query)):
        if key == "StudyDate":
            fields["date_from"], fields["date_to"] = parse_date_range(value)
        elif key in KEYS:
            if KEYS[key] == "limit":
                if not value.isdigit():
                    raise NodeConfigError(node, f"limit={value} is not a number")
                fields["limit"] = int(value)
            else:
                fields[KEYS[key]] = value
        else:
            known = ", ".join(["StudyDate", *KEYS])
            raise NodeConfigError(node, f"'{key}' is not a PACS query key (known: {known})")
    return node, StudyQuery(**fields)  # type: ignore[arg-type]
