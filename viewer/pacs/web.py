"""DICOMweb: QIDO-RS search, WADO-RS retrieve and STOW-RS send against one node, with
dicomweb-client over a requests session (basic or bearer authentication; TLS verified unless
the node turns it off)."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radlens_core.progress import CancelCheck, Cancelled, Progress
from viewer.pacs.cache import PacsCache
from viewer.pacs.dimse import Stored
from viewer.pacs.errors import (
    AssociationRefused,
    NodeUnreachable,
    PacsError,
    PacsStatusError,
    PacsTimeout,
)
from viewer.pacs.identifiers import series_record, study_record
from viewer.pacs.nodes import WebNode
from viewer.pacs.records import InstanceRef, SendReport, SeriesRecord, StudyQuery, StudyRecord

#: Files per STOW-RS request (one multipart body held in memory).
STOW_BATCH = 20
STOW_BATCH_BYTES = 64 << 20

STUDY_FIELDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "StudyInstanceUID",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_FIELDS = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "NumberOfSeriesRelatedInstances",
)


class _Session(requests.Session):
    """Sends QIDO wildcards as '*' (legal in a query): requests writes '%2A', which some
    servers (Orthanc's DICOMweb plugin) then match literally."""

    def send(self, request: requests.PreparedRequest, **kwargs):  # type: ignore[override]
        if request.url and "%2A" in request.url:
            base, _, query = request.url.partition("?")
            request.url = f"{base}?{query.replace('%2A', '*')}"
        return super().send(request, **kwargs)

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[override]
        # requests lets REQUESTS_CA_BUNDLE turn verification back on; the node's "off" wins.
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.verify is False:
            settings["verify"] = False
        return settings


def _session(node: WebNode) -> requests.Session:
    session = _Session()
    session.verify = node.verify_tls
    if node.user:
        session.auth = (node.user, node.password)
    elif node.token:
        session.headers["Authorization"] = f"Bearer {node.token}"
    return session


def _dataset(entry: dict) -> Dataset:
    return Dataset.from_json(entry)


class WebClient:
    def __init__(self, node: WebNode) -> None:
        self.node = node
        self.session = _session(node)
        self.client = DICOMwebClient(
            node.url.rstrip("/"),
            session=self.session,
            timeout=(min(node.timeout_s, 15.0), node.timeout_s),
        )
        # dicomweb-client's retrying also repeats every exception 5 times with back-off (a
        # down node or a bad certificate would take ~30 s to say so): the user has Retry.
        self.client.set_http_retry_params(retry=False)

    def __enter__(self) -> WebClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def where(self) -> str:
        return f"PACS node '{self.node.name}' ({self.node.url})"

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """requests' and dicomweb-client's errors -> a PacsError sentence (never the
        credentials: only the status and the server's reason phrase are shown)."""
        try:
            yield
        except requests.exceptions.SSLError as exc:
            text = str(exc)
            marker = "certificate verify failed:"
            reason = (
                text.split(marker, 1)[1].split("(_ssl")[0].strip(" ()'\"")
                if marker in text
                else "TLS handshake failed"
            )
            raise AssociationRefused(
                self.node.name,
                f"{self.where}: its TLS certificate could not be verified during {what} "
                f"({reason[:120]}); install the hospital's CA, or turn TLS verification "
                "off for this node only if you trust it.",
            ) from None
        except requests.exceptions.Timeout:
            raise PacsTimeout(
                self.node.name,
                f"{self.where} did not answer {what} within {self.node.timeout_s:.0f} s "
                "(the server is busy or hung); try again later.",
            ) from None
        except requests.exceptions.ConnectionError:
            raise NodeUnreachable(
                self.node.name,
                f"{self.where} cannot be reached during {what}: nothing answers at that "
                "address (is the server running, and the URL right?).",
            ) from None
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 0
            phrase = exc.response.reason if exc.response is not None else ""
            if code in (401, 403):
                who = {"basic": "user name and password", "bearer": "token"}.get(
                    self.node.auth, "request (it asks for credentials)"
                )
                raise AssociationRefused(
                    self.node.name,
                    f"{self.where} refused RadLens's {who} during {what} (HTTP {code}).",
                ) from None
            raise PacsStatusError(
                self.node.name,
                f"{self.where} answered {what} with HTTP {code} {phrase}.".replace(" .", "."),
                code,
            ) from None
        except (ValueError, KeyError) as exc:  # malformed JSON or multipart from the server
            raise PacsStatusError(
                self.node.name,
                f"{self.where} sent an answer to {what} that is not DICOMweb ({exc}).",
            ) from None

    # ---- echo and search -------------------------------------------------------------------
    def echo(self) -> float:
        start = time.monotonic()
        with self._errors("the echo (QIDO-RS)"):
            self.client.search_for_studies(limit=1, fields=["StudyInstanceUID"])
        return time.monotonic() - start

    def find_studies(self, query: StudyQuery) -> list[StudyRecord]:
        filters: dict[str, str] = {}
        name = query.patient_name
        if name and not any(c in name for c in "*?"):
            name += "*"
        for key, value in (
            ("PatientName", name),
            ("PatientID", query.patient_id),
            ("StudyDate", query.date_range),
            ("ModalitiesInStudy", query.modality),
            ("AccessionNumber", query.accession),
            ("StudyInstanceUID", query.study_uid),
        ):
            if value:
                filters[key] = value
        with self._errors("the study search (QIDO-RS)"):
            found = self.client.search_for_studies(
                limit=query.limit, fields=list(STUDY_FIELDS), search_filters=filters
            )
            return [r for r in (study_record(_dataset(e)) for e in found) if r.study_uid]

    def find_series(self, study_uid: str) -> list[SeriesRecord]:
        with self._errors("the series search (QIDO-RS)"):
            found = self.client.search_for_series(study_uid, fields=list(SERIES_FIELDS))
            records = [series_record(_dataset(e), study_uid) for e in found]
        return sorted((r for r in records if r.series_uid), key=lambda r: r.number or 0)

    def list_instances(self, study_uid: str, series_uid: str) -> list[InstanceRef]:
        with self._errors("the instance listing (QIDO-RS)"):
            found = self.client.search_for_instances(
                study_uid,
                series_uid,
                fields=["SOPInstanceUID", "SOPClassUID"],
                get_remaining=True,
            )
            out = []
            for entry in found:
                ds = _dataset(entry)
                sop = str(ds.get("SOPInstanceUID", "") or "")
                if sop:
                    out.append(
                        InstanceRef(study_uid, series_uid, sop, str(ds.get("SOPClassUID", "")))
                    )
        return out

    # ---- retrieve --------------------------------------------------------------------------
    def fetch(
        self,
        refs: list[InstanceRef],
        whole_series: set[str],
        cache: PacsCache,
        stored: Stored,
        cancel: CancelCheck,
    ) -> list[str]:
        """WADO-RS: a series in ``whole_series`` as one streamed request, the rest (resumed
        series) instance by instance. Returns warnings (instances the server failed)."""
        by_series: dict[tuple[str, str], list[InstanceRef]] = {}
        for r in refs:
            by_series.setdefault((r.study_uid, r.series_uid), []).append(r)
        warnings: list[str] = []
        for (study, series), group in by_series.items():
            wanted = {r.sop_uid: r for r in group}
            if series in whole_series:
                try:
                    with self._errors("the retrieve (WADO-RS)"):
                        for ds in self.client.iter_series(study, series):
                            if cancel():
                                raise Cancelled()
                            self._put(ds, wanted, cache, stored)
                    continue
                except PacsStatusError as exc:
                    # One broken instance fails the whole multipart answer: fall back to
                    # instance by instance, keeping what arrived, and name what failed.
                    warnings.append(str(exc))
                    group = [r for r in group if not cache.has(study, series, r.sop_uid)]
            failed = 0
            for r in group:
                if cancel():
                    raise Cancelled()
                try:
                    with self._errors("the retrieve (WADO-RS)"):
                        ds = self.client.retrieve_instance(study, series, r.sop_uid)
                except PacsStatusError:
                    failed += 1
                    continue
                self._put(ds, wanted, cache, stored)
            if failed:
                warnings.append(f"{failed} instance(s) could not be sent by the node")
        return warnings

    def _put(self, ds: Dataset, wanted: dict, cache: PacsCache, stored: Stored) -> None:
        sop = str(ds.SOPInstanceUID)
        ref = wanted.get(sop) or InstanceRef(
            str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), sop, str(ds.SOPClassUID)
        )
        with io.BytesIO() as buf:
            pydicom.dcmwrite(buf, ds, enforce_file_format=True)
            data = buf.getvalue()
        cache.put(ref.study_uid, ref.series_uid, sop, data)
        stored(ref, len(data))

    # ---- send ------------------------------------------------------------------------------
    def store(self, files: list[Path], progress: Progress, cancel: CancelCheck) -> SendReport:
        failed: list[str] = []
        sent = 0
        batch: list[tuple[Path, Dataset]] = []
        size = 0
        done = 0

        def flush() -> None:
            nonlocal sent, done, size
            if not batch:
                return
            with self._errors("the send (STOW-RS)"):
                answer = self.client.store_instances([ds for _, ds in batch])
            refused = {
                str(item.get("ReferencedSOPInstanceUID", "")): int(
                    item.get("FailureReason", 0) or 0
                )
                for item in answer.get("FailedSOPSequence", [])
            }
            for path, ds in batch:
                code = refused.get(str(ds.SOPInstanceUID))
                if code is None:
                    sent += 1
                else:
                    failed.append(f"{path.name}: refused (failure reason 0x{code:04X})")
            done += len(batch)
            progress(done / len(files), f"Sending to {self.node.name}: {done}/{len(files)}")
            batch.clear()
            size = 0

        for path in files:
            if cancel():
                raise Cancelled()
            try:
                ds = pydicom.dcmread(path)
            except (InvalidDicomError, OSError) as exc:
                raise PacsError(
                    self.node.name, f"{path} is not a DICOM file to send ({exc})."
                ) from None
            batch.append((path, ds))
            size += path.stat().st_size
            if len(batch) >= STOW_BATCH or size >= STOW_BATCH_BYTES:
                flush()
        flush()
        return SendReport(self.node.name, sent, tuple(failed))
