"""A PACS query as a batch source: ``pacs:NODE?Modality=CT&StudyDate=20260101-20260131``.

The driver asks the node which series match (C-FIND / QIDO-RS through ``viewer.pacs``); each
worker retrieves its own series (C-GET / C-MOVE / WADO-RS) into the user's PACS cache (shared
by the processes of the machine: what is there already is not asked for again), pinned there
while it is analysed. Workers look the node up by name in their own PACS settings, so
credentials never travel with the work (a cluster node needs `radlens pacs add` too)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from radlens_core.errors import UserError
from radlens_core.series import series_key
from viewer.batch.items import WorkItem

PACS_PREFIX = "pacs:"

#: Query keys of SOURCE (DICOM keywords) -> StudyQuery fields.
QUERY_KEYS = {
    "Modality": "modality",
    "ModalitiesInStudy": "modality",
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "AccessionNumber": "accession",
    "StudyInstanceUID": "study_uid",
}
#: At most this many studies are listed for one batch (one query).
MAX_STUDIES = 10_000


class PacsSourceError(UserError):
    """The PACS source is written wrongly or names an unknown node."""


@dataclass(frozen=True)
class PacsSeries:
    """A series on a PACS node, retrieved by the worker that analyses it."""

    node: str
    study_uid: str
    series_uid: str

    @contextlib.contextmanager
    def opened(self, cache: Any = None) -> Iterator[Any]:
        """The series retrieved into the PACS cache (the user's by default) and scanned: the
        ``SeriesInfo`` to load, its files pinned in the cache until the block ends."""
        from viewer.pacs import PacsCache

        cache = cache or PacsCache.default()
        with cache.pinned(self.study_uid, [self.series_uid]):
            yield self.retrieve(cache)

    def retrieve(self, cache: Any) -> Any:
        """Retrieve the series into ``cache`` (what is there is not asked for again) and
        scan it: the ``SeriesInfo`` to load."""
        from viewer.pacs import NodeBook, connect, retrieve
        from viewer.study.scan import scan_folder

        with connect(NodeBook.load().get(self.node)) as client:
            retrieve(client, cache, self.study_uid, [self.series_uid])
        folder = cache.series_dir(self.study_uid, self.series_uid)
        found = [s for s in scan_folder(folder).series if s.kind != "non-image"]
        if not found:
            raise UserError(f"PACS node '{self.node}': the series retrieved holds no images")
        if len(found) > 1:
            raise UserError(
                f"PACS node '{self.node}': the series holds {len(found)} volumes; retrieve it"
                " (`radlens pacs get`) and run the batch on the folder to analyse each"
            )
        info = found[0]
        if not info.loadable:
            raise UserError(f"cannot be opened: {'; '.join(info.problems)}")
        return info


def parse(text: str) -> tuple[str, Any]:
    """(node name, StudyQuery) from ``pacs:NODE?Key=Value&...``; dates as FROM-TO."""
    from viewer.pacs import StudyQuery

    body = text[len(PACS_PREFIX) :]
    node, _, query = body.partition("?")
    if not node:
        raise PacsSourceError(f"{text}: name the PACS node, as in pacs:NODE?Modality=CT")
    fields: dict[str, Any] = {"limit": MAX_STUDIES}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key == "StudyDate":
            lo, sep, hi = value.partition("-")
            fields["date_from"], fields["date_to"] = lo, (hi if sep else lo)
        elif key in QUERY_KEYS:
            fields[QUERY_KEYS[key]] = value
        else:
            known = ", ".join(["StudyDate", *QUERY_KEYS])
            raise PacsSourceError(f"{text}: unknown query key {key!r} (known: {known})")
    try:
        return node, StudyQuery(**fields)
    except UserError as exc:
        raise PacsSourceError(f"{text}: {exc}") from None


@dataclass(frozen=True)
class PacsSource:
    text: str

    @property
    def identity(self) -> str:
        return self.text

    def check_workers(self, workers: int, on_ray: bool) -> None:
        """A node retrieved by C-MOVE sends to one storage port: one worker at a time."""
        from viewer.pacs import DimseNode, NodeBook

        name, _ = parse(self.text)
        node = NodeBook.load().get(name)
        if isinstance(node, DimseNode) and node.retrieve == "move" and (workers > 1 or on_ray):
            raise PacsSourceError(
                f"PACS node '{name}' is retrieved by C-MOVE to one storage port"
                f" ({node.local_port}), which only one worker at a time can receive on; use"
                " --workers 1 without --ray, or set the node to C-GET or DICOMweb"
            )

    def items(self) -> tuple[list[WorkItem], list[str]]:
        """Every series of every study the query finds (series of another modality than a
        Modality= key asks for are left out)."""
        from viewer.pacs import NodeBook, connect

        name, query = parse(self.text)
        node = NodeBook.load().get(name)
        items: list[WorkItem] = []
        with connect(node) as client:
            for study in client.find_studies(query):
                for s in client.find_series(study.study_uid):
                    if query.modality and s.modality and s.modality != query.modality:
                        continue
                    number = f"#{s.number}" if s.number is not None else ""
                    text = " ".join(b for b in (s.modality, number, s.description) if b)
                    where = f"{PACS_PREFIX}{name}/{study.study_uid}/{s.series_uid}"
                    ref = PacsSeries(name, study.study_uid, s.series_uid)
                    items.append(WorkItem(series_key(s.series_uid), where, text, ref))
        return items, []
