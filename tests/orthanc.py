"""A real Orthanc for the tests: started on free loopback ports with a generated configuration.

    # fixtures "_no_network" (loopback allowed), "orthanc" and "orthanc_factory":
    from tests.orthanc import loopback_network, orthanc_factory_fixture, orthanc_server  # noqa: F401

    def test_x(orthanc):
        orthanc.upload(paths); orthanc.dimse_port; orthanc.web_url ...

``start_orthanc(folder, ...)`` builds a JSON configuration in ``folder`` (storage and index
there, the DICOMweb plugin enabled, RadLens's AE registered in DicomModalities for C-MOVE,
optional HTTP users), starts ``/usr/sbin/Orthanc``, waits until both its HTTP and DICOM ports
answer and returns an ``OrthancServer`` whose ``stop()`` ends it. The fixture skips, with the
reason, only when Orthanc is not installed. Reusable by other tests (batch over a PACS).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_AET = "ORTHANC"
#: RadLens's own AE title in the tests, registered in Orthanc for C-MOVE.
RADLENS_AET = "RADLENS"
LOOPBACK = "127.0.0.1"


def missing_reason() -> str:
    """Why the Orthanc tests cannot run here ('' when they can)."""
    if not ORTHANC.is_file():
        return f"Orthanc is not installed ({ORTHANC} missing; apt-get install orthanc)"
    if not DICOMWEB_PLUGIN.is_file():
        return f"the Orthanc DICOMweb plugin is not installed ({DICOMWEB_PLUGIN} missing)"
    return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class OrthancServer:
    folder: Path
    dimse_port: int
    http_port: int
    process: subprocess.Popen
    users: dict[str, str] = field(default_factory=dict)
    aet: str = ORTHANC_AET
    #: the port Orthanc knows RadLens's storage SCP by (C-MOVE), when registered
    radlens_port: int | None = None
    #: "https" when started with a TLS certificate
    scheme: str = "http"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.http_port}"

    @property
    def web_url(self) -> str:
        """The DICOMweb root (QIDO/WADO/STOW)."""
        return f"{self.http_url}/dicom-web"

    @property
    def storage(self) -> Path:
        return self.folder / "storage"

    # ---- the REST API (the test's own view of what Orthanc holds) -------------------------
    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.http_url + path, data=body, method=method)
        if self.users:
            user, password = next(iter(self.users.items()))
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        if body is not None:
            req.add_header("Content-Type", "application/dicom")
        context = None
        if self.scheme == "https":  # the test's own admin view of its self-signed server
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with urllib.request.urlopen(req, timeout=30, context=context) as answer:
            return answer.read()

    def rest(self, path: str) -> object:
        return json.loads(self._request("GET", path))

    def upload(self, paths: list[Path]) -> list[str]:
        """POST each file to /instances; the Orthanc ids."""
        return [
            json.loads(self._request("POST", "/instances", Path(p).read_bytes()))["ID"]
            for p in paths
        ]

    def instance_count(self) -> int:
        return len(self.rest("/instances"))  # type: ignore[arg-type]

    def sop_uids(self) -> set[str]:
        ids = self.rest("/instances")
        return {
            self.rest(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]  # type: ignore[index]
            for i in ids  # type: ignore[union-attr]
        }

    def break_instance(self, sop_uid: str) -> None:
        """Delete the stored file behind one instance (the index still lists it): Orthanc then
        fails to serve it, as a PACS with a damaged or offline storage does."""
        found = json.loads(
            self._request(
                "POST",
                "/tools/lookup",
                sop_uid.encode(),
            )
        )
        oid = next(f["ID"] for f in found if f["Type"] == "Instance")
        info = self.rest(f"/instances/{oid}/attachments/dicom/info")
        uuid = info["Uuid"]  # type: ignore[index]
        target = self.storage / uuid[:2] / uuid[2:4] / uuid
        target.unlink()

    # ---- life -----------------------------------------------------------------------------
    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nobody answers (a hung server)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """End the server at once (SIGKILL). Its storage is the test's own and thrown away
        with it; Orthanc's graceful shutdown (SIGTERM) took 3.6 s a server, ~2 minutes over
        the suite's PACS tests, for nothing a test reads. A client then sees a dead server."""
        if self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(10)


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def start_orthanc(
    folder: Path,
    users: dict[str, str] | None = None,
    radlens_port: int | None = None,
    radlens_aet: str = RADLENS_AET,
    extra: dict | None = None,
    timeout_s: float = 60.0,
    tls_certificate: Path | None = None,
) -> OrthancServer:
    """Start Orthanc with storage in ``folder``; ``users`` turns HTTP basic authentication on;
    ``radlens_port`` registers RadLens's storage SCP (``radlens_aet`` on loopback) for C-MOVE;
    ``tls_certificate`` (certificate + key, PEM) serves HTTPS."""
    reason = missing_reason()
    if reason:
        raise FileNotFoundError(reason)
    folder.mkdir(parents=True, exist_ok=True)
    dimse_port, http_port = free_port(), free_port()
    while http_port == dimse_port:
        http_port = free_port()
    modalities = {}
    if radlens_port is not None:
        modalities["radlens"] = [radlens_aet, LOOPBACK, radlens_port]
    config = {
        "Name": "RadLensTestOrthanc",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "StorageCompression": False,
        # No in-memory copy of stored files: a test that breaks the storage sees it at once.
        "MaximumStorageCacheSize": 0,
        "HttpPort": http_port,
        "HttpServerEnabled": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": dict(users or {}),
        "DicomServerEnabled": True,
        "DicomAet": ORTHANC_AET,
        "DicomPort": dimse_port,
        # An association addressed to another AE title is refused (the "unknown AE" case).
        "DicomCheckCalledAet": True,
        "DicomModalities": modalities,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomScpTimeout": 30,
        "UnknownSopClassAccepted": True,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        "ConcurrentJobs": 2,
        "HttpThreadsCount": 8,
        "StableAge": 1,
        "SaveJobs": False,
        "LimitFindResults": 0,
        "LimitFindInstances": 0,
    }
    if tls_certificate is not None:  # one PEM file: certificate then private key
        config.update(SslEnabled=True, SslCertificate=str(tls_certificate))
    config.update(extra or {})
    cfg = folder / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=2))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [str(ORTHANC), "--logdir=" + str(folder), str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
        start_new_session=True,
    )
    log.close()
    server = OrthancServer(
        folder,
        dimse_port,
        http_port,
        process,
        dict(users or {}),
        radlens_port=radlens_port,
        scheme="https" if tls_certificate is not None else "http",
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                logs = folder.glob("*.log*")
                text = "".join(p.read_text(errors="replace")[-3000:] for p in logs)
                raise RuntimeError(f"Orthanc exited with {process.returncode}: {text}")
            if _answers(dimse_port) and _answers(http_port):
                with contextlib.suppress(urllib.error.URLError, OSError):
                    server.rest("/system")
                    return server
            time.sleep(0.2)
    except BaseException:
        # Never left running: a test whose network guard refuses the readiness check (or a
        # Ctrl-C) would otherwise leave an Orthanc behind in its own session.
        server.stop()
        raise
    server.stop()
    raise TimeoutError(f"Orthanc did not answer within {timeout_s:.0f} s")


@pytest.fixture(name="_no_network")
def loopback_network(monkeypatch):
    """Overrides conftest's ``_no_network`` in a module that imports it: inet
    connections to 127.0.0.1 are allowed (Orthanc, RadLens's SCP), everything else blocked."""
    from tests.conftest import NetworkBlocked, _real_socket

    class _LoopbackSocket(_real_socket):
        def _check(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                host = address[0] if isinstance(address, tuple) else address
                if host not in (LOOPBACK, "localhost", "::1"):
                    raise NetworkBlocked(f"test tried to reach {address!r} (loopback only)")

        def connect(self, address):  # type: ignore[override]
            self._check(address)
            return super().connect(address)

        def connect_ex(self, address):  # type: ignore[override]
            self._check(address)
            return super().connect_ex(address)

    monkeypatch.setattr(socket, "socket", _LoopbackSocket)
    yield


@pytest.fixture(name="orthanc_factory")
def orthanc_factory_fixture(tmp_path) -> Iterator:
    """``make(**start_orthanc kwargs)`` -> a running OrthancServer, all stopped after."""
    reason = missing_reason()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    servers: list[OrthancServer] = []

    def make(**kwargs) -> OrthancServer:
        server = start_orthanc(tmp_path / f"orthanc{len(servers)}", **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(name="orthanc")
def orthanc_server(orthanc_factory) -> OrthancServer:
    """One Orthanc without authentication, RadLens's AE registered for C-MOVE on a free port
    (``orthanc.radlens_port``)."""
    return orthanc_factory(radlens_port=free_port())


def dcmtk(tool: str) -> str:
    """The path of a dcmtk tool, or skip with the reason."""
    path = shutil.which(tool)
    if path is None:
        reason = f"dcmtk's {tool} is not installed (apt-get install dcmtk)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return path


def env_without_proxy() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(key, None)
    env["no_proxy"] = "127.0.0.1,localhost"
    return env


@dataclass
class StudyFiles:
    study_uid: str
    series_uids: list[str]
    paths: list[Path]
    sop_uids: set[str]


def write_study(
    folder: Path,
    patient_name: str = "DOE^JANE",
    patient_id: str = "P-001",
    date: str = "20260105",
    accession: str = "ACC-001",
    modality: str = "CT",
    series: int = 1,
    slices: int = 4,
    size: int = 16,
) -> StudyFiles:
    """A study of ``series`` CT-like series (written with pydicom by tests.dicom_factory),
    with the patient and study attributes a PACS search matches on."""
    import pydicom
    from pydicom.uid import generate_uid

    from tests.dicom_factory import write_ct_series

    study_uid = generate_uid()
    paths: list[Path] = []
    series_uids: list[str] = []
    sops: set[str] = set()
    for k in range(series):
        truth = write_ct_series(folder / f"s{k}", shape=(slices, size, size), study_uid=study_uid)
        series_uids.append(truth.series_uid)
        for p in truth.paths:
            ds = pydicom.dcmread(p)
            ds.PatientName, ds.PatientID = patient_name, patient_id
            ds.StudyDate, ds.AccessionNumber, ds.Modality = date, accession, modality
            ds.SeriesNumber = k + 1
            ds.save_as(p, enforce_file_format=True)
            sops.add(str(ds.SOPInstanceUID))
        paths.extend(truth.paths)
    return StudyFiles(study_uid, series_uids, paths, sops)
