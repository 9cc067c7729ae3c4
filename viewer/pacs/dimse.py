"""DIMSE: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE against one node, with pynetdicom (one
client: its five services share the association, status and timeout handling, hence ~470 lines).

Each operation opens its own association and releases it; a refused, unanswered or aborted
association becomes a ``PacsError`` naming the node. Retrieved instances are written to the
cache as the node sent them (no decoding, no re-encoding), by SOP Instance UID.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,  # noqa: F401 (documented alternative)
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.status import (
    QR_FIND_SERVICE_CLASS_STATUS,
    QR_GET_SERVICE_CLASS_STATUS,
    QR_MOVE_SERVICE_CLASS_STATUS,
    STORAGE_SERVICE_CLASS_STATUS,
)

from radlens_core.progress import CancelCheck, Cancelled, Progress
from viewer.pacs.cache import PacsCache
from viewer.pacs.errors import (
    AssociationRefused,
    NodeUnreachable,
    PacsError,
    PacsStatusError,
    PacsTimeout,
)
from viewer.pacs.identifiers import series_record, study_identifier, study_record, text_value
from viewer.pacs.nodes import DimseNode
from viewer.pacs.records import InstanceRef, SendReport, SeriesRecord, StudyQuery, StudyRecord
from viewer.pacs.scp import StorageSCP, Stored, loopback, write_received

#: Instances asked for in one image-level C-GET/C-MOVE (a UID list), when resuming.
UID_CHUNK = 100
#: An association carries at most 128 presentation contexts (PS3.8); one is the Q/R model.
MAX_STORAGE_CONTEXTS = 127
#: Single-instance requests that may fail in a row, with nothing arrived, before giving up.
GIVE_UP_AFTER = 3
#: Statuses of a finished C-GET/C-MOVE whose sub-operations partly failed.
WARNING_SUBOPS = 0xB000


def _status_text(code: int, table: dict) -> str:
    entry = table.get(code)
    return f"0x{code:04X} ({entry[1]})" if entry and entry[1] else f"0x{code:04X}"


class DimseClient:
    def __init__(self, node: DimseNode, scp: StorageSCP | None = None) -> None:
        self.node = node
        self._scp = scp
        self._own_scp = False

    def __enter__(self) -> DimseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_scp and self._scp is not None:
            self._scp.stop()
            self._scp, self._own_scp = None, False

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def where(self) -> str:
        return f"PACS node '{self.node.name}' ({self.node.address})"

    # ---- associations ----------------------------------------------------------------------
    def _ae(self) -> AE:
        ae = AE(ae_title=self.node.local_aet)
        t = self.node.timeout_s
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = t
        ae.connection_timeout = min(t, 15.0)
        ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
        return ae

    def _associate(self, ae: AE, roles: list | None = None, handlers: list | None = None):
        start = time.monotonic()
        assoc = ae.associate(
            self.node.host,
            self.node.port,
            ae_title=self.node.aet,
            ext_neg=roles or None,
            evt_handlers=handlers or None,
        )
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise AssociationRefused(
                self.node.name,
                f"{self.where} refused the association: it does not accept the called AE "
                f"title '{self.node.aet}' or does not know RadLens's AE title "
                f"'{self.node.local_aet}' (register it on the PACS, or correct the node).",
            )
        if time.monotonic() - start >= min(ae.acse_timeout or 0, ae.connection_timeout or 0) * 0.9:
            raise PacsTimeout(
                self.node.name,
                f"{self.where} did not answer within {self.node.timeout_s:.0f} s "
                "(the server is busy or hung); try again later.",
            )
        raise NodeUnreachable(
            self.node.name,
            f"{self.where} cannot be reached: nothing accepts DICOM connections on "
            f"{self.node.host}:{self.node.port} (is the PACS running, and the host and port "
            "right?).",
        )

    def _dropped(self, what: str) -> PacsError:
        return PacsTimeout(
            self.node.name,
            f"{self.where} stopped answering during {what} (no reply within "
            f"{self.node.timeout_s:.0f} s, or the connection was aborted); try again.",
        )

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
            _close(assoc)
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
                        f"{_status_text(code, QR_FIND_SERVICE_CLASS_STATUS)}.",
                        code,
                    )
        finally:
            _close(assoc)
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

    # ---- retrieve --------------------------------------------------------------------------
    def fetch(
        self,
        refs: list[InstanceRef],
        whole_series: set[str],
        cache: PacsCache,
        stored: Stored,
        cancel: CancelCheck,
    ) -> list[str]:
        """Retrieve ``refs`` into ``cache`` (C-GET, or C-MOVE to RadLens's storage SCP): a
        series in ``whole_series`` is asked for at series level, the rest by UID list.
        ``stored(ref, nbytes)`` runs per instance written; returns the node's warnings."""
        if self.node.retrieve == "move":
            return self._move(refs, whole_series, cache, stored, cancel)
        return self._get(refs, whole_series, cache, stored, cancel)

    def _requests(self, refs: list[InstanceRef], whole_series: set[str]) -> Iterator[Dataset]:
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in refs:
            groups[(r.study_uid, r.series_uid)].append(r.sop_uid)
        for (study, series), sops in groups.items():
            if series in whole_series:
                ds = Dataset()
                ds.QueryRetrieveLevel = "SERIES"
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
                yield ds
                continue
            for i in range(0, len(sops), UID_CHUNK):
                yield _image_request(study, series, sops[i : i + UID_CHUNK])

    def _run_retrieve(
        self, assoc: Association, responses, what: str, table: dict, cancel, hint: str, arrived
    ) -> str:
        """Walk one C-GET/C-MOVE's responses; '' or a warning sentence. A failure status
        after some instances arrived is a warning (the caller then names what is missing);
        a failure before anything arrived is the node's error."""
        before = arrived()
        for status, _ in responses:
            if cancel():
                assoc.abort()
                raise Cancelled()
            if not status:
                raise self._dropped(what)
            code = int(status.Status)
            if code == 0xFF00:
                continue
            if code == 0x0000:
                return ""
            failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
            if (code & 0xF000) == 0xB000:
                return f"{failed} instance(s) could not be sent by the node"
            if arrived() > before:
                return f"the node stopped with status {_status_text(code, table)}"
            raise PacsStatusError(
                self.node.name,
                f"{self.where} answered {what} with error status {_status_text(code, table)}"
                f"{hint}.",
                code,
            )
        return ""

    def _retrieve_all(
        self, assoc, send, refs, whole_series, cache, what, table, cancel, hint, arrived
    ) -> list[str]:
        """Every request; after a failure, the instances still missing one by one, so that
        one broken instance costs only itself. The node's error status is raised when
        nothing arrives at all (e.g. an unknown C-MOVE destination), after at most
        ``GIVE_UP_AFTER`` single-instance failures in a row."""
        warnings: list[str] = []
        first_error: PacsStatusError | None = None
        for request in self._requests(refs, whole_series):
            try:
                warning = self._run_retrieve(
                    assoc, send(request), what, table, cancel, hint, arrived
                )
            except PacsStatusError as exc:
                first_error = first_error or exc
                warning = f"the node answered with status 0x{exc.status or 0:04X}"
            if warning:
                warnings.append(warning)
        if warnings:
            failures_in_a_row = 0
            for r in refs:
                if cache.has(r.study_uid, r.series_uid, r.sop_uid):
                    continue
                if failures_in_a_row >= GIVE_UP_AFTER and arrived() == 0:
                    break
                request = _image_request(r.study_uid, r.series_uid, [r.sop_uid])
                before = arrived()
                try:
                    self._run_retrieve(assoc, send(request), what, table, cancel, hint, arrived)
                except PacsStatusError as exc:
                    first_error = first_error or exc
                failures_in_a_row = 0 if arrived() > before else failures_in_a_row + 1
        if first_error is not None and arrived() == 0:
            raise first_error
        return warnings

    def _get(self, refs, whole_series, cache, stored, cancel) -> list[str]:
        wanted = {r.sop_uid: r for r in refs}
        # The listing does not say each instance's class: propose the common storage classes
        # (those listed first), as the SCP role of C-GET asks.
        sop_classes = list(
            dict.fromkeys(
                [r.sop_class_uid for r in refs if r.sop_class_uid]
                + [cx.abstract_syntax for cx in StoragePresentationContexts]
            )
        )
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        roles = []
        for uid in sop_classes[:MAX_STORAGE_CONTEXTS]:
            ae.add_requested_context(uid, ALL_TRANSFER_SYNTAXES)
            roles.append(build_role(uid, scp_role=True))
        errors: list[str] = []
        count = [0]

        def counted(ref: InstanceRef, nbytes: int) -> None:
            count[0] += 1
            stored(ref, nbytes)

        def on_store(event: evt.Event) -> int:
            if cancel():
                return 0xA700  # refuse further data; the response loop aborts
            return write_received(event, wanted, cache, counted, errors)

        assoc = self._associate(ae, roles, [(evt.EVT_C_STORE, on_store)])
        try:
            warnings = self._retrieve_all(
                assoc,
                lambda rq: assoc.send_c_get(rq, StudyRootQueryRetrieveInformationModelGet),
                refs,
                whole_series,
                cache,
                "the retrieve (C-GET)",
                QR_GET_SERVICE_CLASS_STATUS,
                cancel,
                "",
                lambda: count[0],
            )
        finally:
            _close(assoc)
        if cancel():
            raise Cancelled()
        return warnings + errors

    def _move(self, refs, whole_series, cache, stored, cancel) -> list[str]:
        scp = self._scp
        if scp is None:
            bind = "127.0.0.1" if loopback(self.node.host) else "0.0.0.0"
            scp = self._scp = StorageSCP(self.node.local_aet, self.node.local_port, cache, bind)
            self._own_scp = True
            scp.start()
        wanted = {r.sop_uid: r for r in refs}
        errors: list[str] = []
        count = [0]

        def counted(ref: InstanceRef, nbytes: int) -> None:
            count[0] += 1
            stored(ref, nbytes)

        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = self._associate(ae)
        hint = (
            f" (the PACS must know RadLens's AE title '{self.node.local_aet}' with this "
            f"computer's address and port {self.node.local_port} to send to it)"
        )
        with scp.expecting(wanted, counted, errors):
            try:
                warnings = self._retrieve_all(
                    assoc,
                    lambda rq: assoc.send_c_move(
                        rq, self.node.local_aet, StudyRootQueryRetrieveInformationModelMove
                    ),
                    refs,
                    whole_series,
                    cache,
                    f"the retrieve (C-MOVE to {self.node.local_aet})",
                    QR_MOVE_SERVICE_CLASS_STATUS,
                    cancel,
                    hint,
                    lambda: count[0],
                )
            finally:
                _close(assoc)
        if cancel():
            raise Cancelled()
        return warnings + errors

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
                        f"{path.name}: status {_status_text(code, STORAGE_SERVICE_CLASS_STATUS)}"
                    )
                progress(
                    (k + 1) / len(headers), f"Sending to {self.node.name}: {k + 1}/{len(headers)}"
                )
        finally:
            _close(assoc)
        return SendReport(self.node.name, sent, tuple(failed))


def _image_request(study: str, series: str, sops: list[str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = sops if len(sops) > 1 else sops[0]
    return ds


def _close(assoc: Association) -> None:
    if assoc.is_established:
        assoc.release()
