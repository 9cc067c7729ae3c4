"""A DIMSE association to one PACS node (pynetdicom): the AE with the node's timeouts, and
a refused, unanswered or aborted association turned into a ``PacsError`` naming the node.
The services (``dimse_retrieve``, ``dimse``) are built on it."""

from __future__ import annotations

import time

from pynetdicom import AE
from pynetdicom.association import Association

from viewer.pacs.errors import AssociationRefused, NodeUnreachable, PacsError, PacsTimeout
from viewer.pacs.nodes import DimseNode
from viewer.pacs.scp import StorageSCP


def status_text(code: int, table: dict) -> str:
    entry = table.get(code)
    return f"0x{code:04X} ({entry[1]})" if entry and entry[1] else f"0x{code:04X}"


def close_association(assoc: Association) -> None:
    if assoc.is_established:
        assoc.release()


class DimseConnection:
    """Associations with one node; each operation opens its own and releases it."""

    def __init__(self, node: DimseNode, scp: StorageSCP | None = None) -> None:
        self.node = node
        self._scp = scp
        self._own_scp = False

    def __enter__(self) -> DimseConnection:
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
