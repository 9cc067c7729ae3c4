"""PACS access without Qt: nodes, C-ECHO/C-FIND/C-GET/C-MOVE/C-STORE (pynetdicom), QIDO/WADO/STOW
(dicomweb-client), the local retrieve cache and RadLens's storage SCP.

The viewer's PACS panel, ``radlens pacs`` and a batch over an archive all use the same calls:

    from viewer.pacs import NodeBook, connect, PacsCache, StudyQuery
    node = NodeBook.load().get("hospital")
    with connect(node) as client:
        studies = client.find_studies(StudyQuery(modality="CT"))
        series = client.find_series(studies[0].study_uid)
        report = retrieve(client, PacsCache.default(), studies[0].study_uid)

A batch names its source ``pacs:NODE?Modality=CT&StudyDate=20260101-20260131``:
``parse_pacs_source`` turns it into the node's name and a ``StudyQuery``.

Every failure a user can meet (node down, association refused, timeout, error status, partial
study) is a ``PacsError`` (a ``UserError``) whose message names the node and what happened.
"""

from typing import TYPE_CHECKING

# Light (no networking library): settings, records, errors, the cache.
from viewer.pacs.cache import PacsCache
from viewer.pacs.errors import (
    AssociationRefused,
    NodeConfigError,
    NodeUnreachable,
    PacsError,
    PacsStatusError,
    PacsTimeout,
    PartialRetrieve,
)
from viewer.pacs.nodes import DimseNode, Node, NodeBook, WebNode
from viewer.pacs.records import (
    InstanceRef,
    RetrieveReport,
    SendReport,
    SeriesRecord,
    StudyQuery,
    StudyRecord,
)
from viewer.pacs.source import is_pacs_source, parse_pacs_source

if TYPE_CHECKING:
    from viewer.pacs.client import PacsClient, connect
    from viewer.pacs.retrieval import retrieve
    from viewer.pacs.sending import collect_files, send

#: Imported on first use (pynetdicom, requests): the window starts without them.
_LAZY = {
    "PacsClient": "viewer.pacs.client",
    "connect": "viewer.pacs.client",
    "retrieve": "viewer.pacs.retrieval",
    "collect_files": "viewer.pacs.sending",
    "send": "viewer.pacs.sending",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'viewer.pacs' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AssociationRefused",
    "DimseNode",
    "InstanceRef",
    "Node",
    "NodeBook",
    "NodeConfigError",
    "NodeUnreachable",
    "PacsCache",
    "PacsClient",
    "PacsError",
    "PacsStatusError",
    "PacsTimeout",
    "PartialRetrieve",
    "RetrieveReport",
    "SendReport",
    "SeriesRecord",
    "StudyQuery",
    "StudyRecord",
    "WebNode",
    "collect_files",
    "is_pacs_source",
    "parse_pacs_source",
    "connect",
    "retrieve",
    "send",
]
