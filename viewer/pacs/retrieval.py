"""Retrieve a study or some of its series into the cache: resumable, without duplicates.

The node first lists the instances; those already cached are not asked for again (a
resumed or repeated retrieve), a series with nothing cached is asked for whole, the others by
UID list. What did not arrive is named in a ``PartialRetrieve``; what did stays cached.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from radlens_core.progress import CancelCheck, Progress, ignore_progress, never_cancelled
from viewer.pacs.cache import PacsCache
from viewer.pacs.errors import PacsStatusError, PartialRetrieve
from viewer.pacs.records import InstanceRef, RetrieveReport

if TYPE_CHECKING:
    from viewer.pacs.client import PacsClient

#: Bound on what one retrieve lists (instances of a study).
MAX_INSTANCES = 200_000


def retrieve(
    client: PacsClient,
    cache: PacsCache,
    study_uid: str,
    series_uids: list[str] | None = None,
    progress: Progress = ignore_progress,
    cancel: CancelCheck = never_cancelled,
) -> RetrieveReport:
    """Bring ``study_uid`` (or only ``series_uids`` of it) into ``cache``; the report says
    what was transferred and what was already there. Cancelled, PacsError, PartialRetrieve."""
    node_name = client.name
    progress(0.0, f"Listing the study on {node_name}")
    if not series_uids:
        series_uids = [s.series_uid for s in client.find_series(study_uid)]
        if not series_uids:
            raise PacsStatusError(
                node_name, f"{client.where} has no series for the study {study_uid}."
            )
    refs: list[InstanceRef] = []
    for uid in series_uids:
        refs.extend(client.list_instances(study_uid, uid))
        if len(refs) > MAX_INSTANCES:
            raise PacsStatusError(
                node_name, f"{client.where}: the study has more than {MAX_INSTANCES} instances."
            )
    if not refs:
        raise PacsStatusError(
            node_name, f"{client.where} lists no instances for the series asked for."
        )
    # Pinned while they arrive: another process's eviction never takes them half-way.
    with cache.pinned(study_uid, {r.series_uid for r in refs}):
        folders, reused, still, counts, warnings = _fetch(client, cache, refs, progress, cancel)
    expected = len(refs)
    report = RetrieveReport(
        node=node_name,
        study_uid=study_uid,
        expected=expected,
        fetched=counts["fetched"],
        reused=reused,
        bytes_fetched=counts["bytes"],
        series_folders=folders,
    )
    if still:
        why = "; ".join(dict.fromkeys(warnings)) or "the node did not send them"
        received = expected - len(still)
        raise PartialRetrieve(
            node_name,
            f"{client.where} sent only part of the study: {received} of {expected} "
            f"instances arrived ({why}). The {received} received are in the cache; "
            f"Retry asks only for the {len(still)} missing.",
            received,
            expected,
            report,
        )
    return report


def _fetch(
    client: PacsClient,
    cache: PacsCache,
    refs: list[InstanceRef],
    progress: Progress,
    cancel: CancelCheck,
) -> tuple[tuple[Path, ...], int, list[InstanceRef], dict[str, int], list[str]]:
    """Ask the node for what the cache lacks: (series folders, reused, still missing,
    counts, warnings)."""
    node_name = client.name
    expected = len(refs)
    missing = [r for r in refs if not cache.has(r.study_uid, r.series_uid, r.sop_uid)]
    reused = expected - len(missing)
    whole = {r.series_uid for r in missing} - {
        r.series_uid for r in refs if cache.has(r.study_uid, r.series_uid, r.sop_uid)
    }
    lock = threading.Lock()
    counts = {"fetched": 0, "bytes": 0}

    def stored(_ref: InstanceRef, nbytes: int) -> None:
        with lock:
            counts["fetched"] += 1
            counts["bytes"] += nbytes
            done = reused + counts["fetched"]
        progress(
            min(1.0, done / expected),
            f"Retrieving from {node_name}: {done}/{expected} images",
        )

    warnings: list[str] = []
    if missing:
        progress(reused / expected, f"Retrieving from {node_name}: {reused}/{expected} images")
        try:
            warnings = client.fetch(missing, whole, cache, stored, cancel)
        except PacsStatusError as exc:
            if not reused:
                raise  # nothing of the study is here: the node's error, as it said it
            warnings = [str(exc)]  # a resumed study whose rest fails: a partial study
    still = [r for r in refs if not cache.has(r.study_uid, r.series_uid, r.sop_uid)]
    folders = tuple(sorted({cache.series_dir(r.study_uid, r.series_uid) for r in refs}))
    for folder in folders:
        cache.touch(folder)
    cache.enforce_limit(keep=set(folders))
    return folders, reused, still, counts, warnings
