"""RadLens's own storage SCP: the C-MOVE destination, and a receiver for what a PACS pushes.

Every instance received is written to the cache by SOP Instance UID (a repeat is not a
duplicate). A retrieve by C-MOVE registers the instances it expects, to count them as they
arrive; anything else received is cached under its own study and series.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from collections.abc import Callable, Iterator

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from viewer.pacs.cache import PacsCache
from viewer.pacs.errors import NodeConfigError
from viewer.pacs.records import InstanceRef

#: called per instance written to the cache: (its reference, its size in bytes)
Stored = Callable[[InstanceRef, int], None]


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class StorageSCP:
    def __init__(self, aet: str, port: int, cache: PacsCache, bind: str = "0.0.0.0") -> None:
        self.aet, self.port, self.cache, self.bind = aet, port, cache, bind
        self._server = None
        self._lock = threading.Lock()
        self._wanted: dict[str, InstanceRef] = {}
        self._stored: Callable[[InstanceRef, int], None] | None = None
        self._errors: list[str] = []
        self.received = 0

    def start(self) -> StorageSCP:
        ae = AE(ae_title=self.aet)
        ae.network_timeout = ae.dimse_timeout = ae.acse_timeout = 60
        ae.maximum_pdu_size = 0
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        try:
            self._server = ae.start_server(
                (self.bind, self.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
            )
        except OSError as exc:
            raise NodeConfigError(
                "",
                f"RadLens's storage port {self.port} cannot be opened ({exc.strerror}); "
                "choose another local port for this node.",
            ) from None
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> StorageSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def expecting(
        self,
        wanted: dict[str, InstanceRef],
        stored: Callable[[InstanceRef, int], None],
        errors: list[str],
    ) -> Iterator[None]:
        with self._lock:
            self._wanted, self._stored, self._errors = dict(wanted), stored, errors
        try:
            yield
        finally:
            with self._lock:
                self._wanted, self._stored, self._errors = {}, None, []

    def _on_store(self, event: evt.Event) -> int:
        with self._lock:
            wanted, stored, errors = self._wanted, self._stored, self._errors
        sop = str(event.request.AffectedSOPInstanceUID)
        status = write_received(
            event, wanted, self.cache, stored if sop in wanted else None, errors
        )
        if status == 0:
            self.received += 1
        return status


def write_received(
    event: evt.Event,
    wanted: dict[str, InstanceRef],
    cache: PacsCache,
    stored: Stored | None,
    errors: list[str],
) -> int:
    """Write one received instance into the cache (C-STORE handler of C-GET and the SCP)."""
    try:
        sop = str(event.request.AffectedSOPInstanceUID)
        ref = wanted.get(sop)
        if ref is None:
            ds = event.dataset
            ref = InstanceRef(
                str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), sop, str(ds.SOPClassUID)
            )
        data = event.encoded_dataset(include_meta=True)
        cache.put(ref.study_uid, ref.series_uid, sop, data)
    except (OSError, AttributeError, ValueError) as exc:
        errors.append(f"an instance could not be written to the cache ({exc})")
        return 0xA700
    if stored is not None:
        stored(ref, len(data))
    return 0x0000
