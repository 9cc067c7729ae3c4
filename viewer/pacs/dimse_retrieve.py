"""C-GET and C-MOVE (to RadLens's own storage SCP) of a node's instances into the cache:
series asked for whole or by UID list, and after a failure the instances still missing one
by one, so one broken instance costs only itself. Instances are written as the node sent
them (no decoding, no re-encoding), by SOP Instance UID."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom import ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.status import QR_GET_SERVICE_CLASS_STATUS, QR_MOVE_SERVICE_CLASS_STATUS

from radlens_core.progress import CancelCheck, Cancelled
from viewer.pacs.cache import PacsCache
from viewer.pacs.dimse_connection import DimseConnection, close_association, status_text
from viewer.pacs.errors import PacsStatusError
from viewer.pacs.records import InstanceRef
from viewer.pacs.scp import StorageSCP, Stored, loopback, write_received

#: Instances asked for in one image-level C-GET/C-MOVE (a UID list), when resuming.
UID_CHUNK = 100
#: An association carries at most 128 presentation contexts (PS3.8); one is the Q/R model.
MAX_STORAGE_CONTEXTS = 127
#: Single-instance requests that may fail in a row, with nothing arrived, before giving up.
GIVE_UP_AFTER = 3
#: Statuses of a finished C-GET/C-MOVE whose sub-operations partly failed.
WARNING_SUBOPS = 0xB000


class DimseRetrieval(DimseConnection):
    """The retrieve services of a node's DIMSE client."""

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
                return f"the node stopped with status {status_text(code, table)}"
            raise PacsStatusError(
                self.node.name,
                f"{self.where} answered {what} with error status {status_text(code, table)}{hint}.",
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
            close_association(assoc)
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
                close_association(assoc)
        if cancel():
            raise Cancelled()
        return warnings + errors


def _image_request(study: str, series: str, sops: list[str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = sops if len(sops) > 1 else sops[0]
    return ds
