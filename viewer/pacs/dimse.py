"""DIMSE: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE against one node, with pynetdicom. The
association handling is ``dimse_connection``'s, the retrieve (C-GET/C-MOVE) ``dimse_retrieve``'s;
this module adds echo, find and store and is the client ``viewer.pacs.connect`` returns.

Each operation opens its own association and releases it; a refused, unanswered or aborted
association becomes a ``PacsError`` naming the node.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,  # noqa: F401 (documented alternative)
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from pynetdicom.status import QR_FIND_SERVICE_CLASS_STATUS, STORAGE_SERVICE_CLASS_STATUS

from radlens_core.progress import CancelCheck, Cancelled, Progress
from viewer.pacs.dimse_connection import close_association, status_text
from viewer.pacs.dimse_retrieve import (
    GIVE_UP_AFTER,
    MAX_STORAGE_CONTEXTS,
    UID_CHUNK,
    WARNING_SUBOPS,
    DimseRetrieval,
)
from viewer.pacs.errors import PacsError, PacsStatusError
from viewer.pacs.identifiers import series_record, study_identifier, study_record, text_value
from viewer.pacs.records import InstanceRef, SendReport, SeriesRecord, StudyQuery, StudyRecord
from viewer.pacs.scp import Stored

__all__ = [
    "GIVE_UP_AFTER",
    "MAX_STORAGE_CONTEXTS",
    "UID_CHUNK",
    "WARNING_SUBOPS",
    "DimseClient",
    "Stored",
]


class DimseClient(DimseRetrieval):
    """One node's DIMSE services: echo, find (studies, series, instances), retrieve (from
    ``DimseRetrieval``) and store."""

    def __enter__(self) -> DimseClient:
        return self

    # ---- echo and find ---------------------------------------------------------------------
    def echo(self) -> float:
        """C-ECHO; the round trip in seconds."""
        ae = self._ae()
        ae.add_requested_context(Verification)
        start = time.monotonic()
        assoc = self._associate(ae)
        try:
            status = assoc.send_c_echo()
        finally:
            close_association(assoc)
        if not status:
            raise self._dropped("the echo")
        if status.Status != 0x0000:
            raise PacsStatusError(
                self.node.name,
                f"{self.where} answered the echo with status 0x{status.Status:04X}.",
                status.Status,
            )
        return time.monotonic() - start

    def _find(self, identifier: Dataset, limit: int, what: str) -> list[Dataset]:
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = self._associate(ae)
        out: list[Dataset] = []
        try:
            for status, found in assoc.send_c_find(
                identifier, StudyRootQueryRetrieveInformationModelFind
            ):
                if not status:
                    raise self._dropped(what)
                code = int(status.Status)
                if code in (0xFF00, 0xFF01):
                    if found is not None:
                        out.append(found)
                    if len(out) >= limit:
                        assoc.abort()  # enough: stop the node's work too
                        return out
                elif code == 0x0000:
                    break
                else:
                    raise PacsStatusError(
                        self.node.name,
                        f"{self.where} answered {what} with error status "
                        f"{status_text(code, QR_FIND_SERVICE_CLASS_STATUS)}.",
                        code,
                    )
        finally:
            close_association(assoc)
        return out

    def find_studies(self, query: StudyQuery) -> list[StudyRecord]:
        found = self._find(study_identifier(query), query.limit, "the study search")
        return [r for r in map(study_record, found) if r.study_uid]

    def find_series(self, study_uid: str) -> list[SeriesRecord]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES"
        ds.StudyInstanceUID = study_uid
        for keyword in (
            "SeriesInstanceUID",
            "Modality",
            "SeriesNumber",
            "SeriesDescription",
            "BodyPartExamined",
            "NumberOfSeriesRelatedInstances",
        ):
            setattr(ds, keyword, "")
        found = self._find(ds, 10_000, "the series search")
        records = [series_record(f, study_uid) for f in found]
        return sorted((r for r in records if r.series_uid), key=lambda r: r.number or 0)

    def list_instances(self, study_uid: str, series_uid: str) -> list[InstanceRef]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        # Only the UID: a PACS answers it from its index, without reading every file.
        ds.SOPInstanceUID = ""
        found = self._find(ds, 100_000, "the instance listing")
        return [
            InstanceRef(
                study_uid, series_uid, text_value(f, "SOPInstanceUID"), text_value(f, "SOPClassUID")
            )
            for f in found
            if text_value(f, "SOPInstanceUID")
        ]

    # ---- send ------------------------------------------------------------------------------
    def store(self, files: list[Path], progress: Progress, cancel: CancelCheck) -> SendReport:
        headers = []
        for path in files:
            try:
                ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
                headers.append((path, str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)))
            except (InvalidDicomError, AttributeError, OSError) as exc:
                raise PacsError(
                    self.node.name, f"{path} is not a DICOM file to send ({exc})."
                ) from None
        contexts: dict[str, set[str]] = defaultdict(set)
        for _, sop_class, syntax in headers:
            contexts[sop_class].add(syntax)
        if len(contexts) > MAX_STORAGE_CONTEXTS:
            raise PacsError(self.node.name, "the files hold more kinds of object than one send.")
        ae = self._ae()
        for sop_class, syntaxes in contexts.items():
            ae.add_requested_context(sop_class, sorted(syntaxes))
        assoc = self._associate(ae)
        failed: list[str] = []
        sent = 0
        try:
            for k, (path, _cls, _ts) in enumerate(headers):
                if cancel():
                    raise Cancelled()
                try:
                    status = assoc.send_c_store(path)
                except ValueError as exc:  # no accepted context for this file
                    failed.append(f"{path.name}: {exc}")
                    continue
                if not status:
                    raise self._dropped("the send (C-STORE)")
                code = int(status.Status)
                if code == 0 or (code & 0xF000) == 0xB000:
                    sent += 1
                else:
                    failed.append(
                        f"{path.name}: status {status_text(code, STORAGE_SERVICE_CLASS_STATUS)}"
                    )
                progress(
                    (k + 1) / len(headers), f"Sending to {self.node.name}: {k + 1}/{len(headers)}"
                )
        finally:
            close_association(assoc)
        return SendReport(self.node.name, sent, tuple(failed))
