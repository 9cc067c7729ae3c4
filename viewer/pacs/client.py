"""One interface over DIMSE and DICOMweb nodes: ``connect(node)`` -> a ``PacsClient``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from radlens_core.progress import CancelCheck, Progress
from viewer.pacs.cache import PacsCache
from viewer.pacs.dimse import DimseClient, Stored
from viewer.pacs.nodes import DimseNode, Node
from viewer.pacs.records import InstanceRef, SendReport, SeriesRecord, StudyQuery, StudyRecord
from viewer.pacs.scp import StorageSCP


class PacsClient(Protocol):
    """What RadLens does with a node, whatever protocol it speaks."""

    @property
    def name(self) -> str:
        """The node's name."""

    @property
    def where(self) -> str:
        """ "PACS node 'NAME' (ADDRESS)", the start of every sentence about it."""

    def echo(self) -> float:
        """C-ECHO or a QIDO request; the round trip in seconds."""

    def find_studies(self, query: StudyQuery) -> list[StudyRecord]: ...

    def find_series(self, study_uid: str) -> list[SeriesRecord]: ...

    def list_instances(self, study_uid: str, series_uid: str) -> list[InstanceRef]: ...

    def fetch(
        self,
        refs: list[InstanceRef],
        whole_series: set[str],
        cache: PacsCache,
        stored: Stored,
        cancel: CancelCheck,
    ) -> list[str]: ...

    def store(self, files: list[Path], progress: Progress, cancel: CancelCheck) -> SendReport: ...

    def close(self) -> None: ...

    def __enter__(self) -> PacsClient: ...

    def __exit__(self, *exc: object) -> None: ...


def connect(node: Node, scp: StorageSCP | None = None) -> PacsClient:
    """A client for ``node`` (nothing is opened until the first call). ``scp``: a running
    storage SCP to receive C-MOVEs (else one is started on the node's local port per move)."""
    if isinstance(node, DimseNode):
        return DimseClient(node, scp)
    from viewer.pacs.web import WebClient  # requests and dicomweb-client only when needed

    return WebClient(node)
