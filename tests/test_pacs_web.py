"""DICOMweb against a real Orthanc with its DICOMweb plugin: QIDO-RS, WADO-RS, STOW-RS,
basic and bearer authentication, and each failure; the command line end to end."""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import replace

import pydicom
import pytest

from radlens_core.progress import Cancelled
from tests.orthanc import (  # noqa: F401 (fixtures)
    ORTHANC_AET,
    dcmtk,
    free_port,
    loopback_network,
    orthanc_factory_fixture,
    orthanc_server,
    write_study,
)
from viewer import cli
from viewer.pacs import (
    AssociationRefused,
    NodeUnreachable,
    PacsCache,
    PacsStatusError,
    PacsTimeout,
    PartialRetrieve,
    StudyQuery,
    WebNode,
    connect,
    retrieve,
)

PASSWORD = "Orth4nc-pw-do-not-print"


@pytest.fixture
def study(orthanc, tmp_path):
    a = write_study(tmp_path / "a", "DOE^JANE", "P-001", "20260105", "ACC-001", "CT", series=2)
    b = write_study(tmp_path / "b", "ROE^RICHARD", "P-002", "20260220", "ACC-002", "MR")
    orthanc.upload(a.paths + b.paths)
    return a


def _node(server, **kw) -> WebNode:
    return WebNode("web-test", server.web_url, **kw)


def _cached_sops(cache, study) -> set[str]:
    return {
        str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
        for s in study.series_uids
        for f in cache.series_files(study.study_uid, s)
    }


def test_qido_echo_and_search(orthanc, study):
    with connect(_node(orthanc)) as client:
        assert client.echo() > 0
        assert [s.study_uid for s in client.find_studies(StudyQuery(patient_name="doe"))] == [
            study.study_uid
        ]
        assert len(client.find_studies(StudyQuery(modality="MR"))) == 1
        by_date = client.find_studies(StudyQuery(date_from="20260101", date_to="20260131"))
        assert [s.study_uid for s in by_date] == [study.study_uid]
        assert by_date[0].accession == "ACC-001" and by_date[0].instance_count == 8
        series = client.find_series(study.study_uid)
    assert [s.series_uid for s in series] == study.series_uids


def test_wado_retrieve_then_resume_without_duplicates(orthanc, study, tmp_path):
    cache = PacsCache(tmp_path / "cache")
    arrived = []
    with connect(_node(orthanc)) as client:
        with pytest.raises(Cancelled):
            retrieve(
                client,
                cache,
                study.study_uid,
                progress=lambda f, s: arrived.append(f) if f > 0 else None,
                cancel=lambda: len(arrived) >= 3,
            )
        first = _cached_sops(cache, study)
        assert 1 <= len(first) < 8
        report = retrieve(client, cache, study.study_uid)
    assert (report.reused, report.fetched) == (len(first), 8 - len(first))
    assert _cached_sops(cache, study) == study.sop_uids
    assert len(list(cache.root.glob("*/*/*.dcm"))) == 8
    sources = {str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in study.paths}
    for f in cache.root.glob("*/*/*.dcm"):
        got = pydicom.dcmread(f)
        assert got.PixelData == sources[str(got.SOPInstanceUID)].PixelData


def test_stow_then_dcmtk_findscu_sees_the_instances(orthanc, tmp_path):
    findscu = dcmtk("findscu")
    sent = write_study(tmp_path / "stow", "STOW^ME", "P-77", "20260310", "ACC-77", "CT")
    with connect(_node(orthanc)) as client:
        report = client.store(sent.paths, lambda f, s: None, lambda: False)
    assert report.sent == 4 and report.failed == ()
    out = subprocess.run(
        [
            findscu, "-S", "-aet", "CHECK", "-aec", ORTHANC_AET,
            "-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={sent.study_uid}",
            "-k", f"SeriesInstanceUID={sent.series_uids[0]}", "-k", "SOPInstanceUID",
            "127.0.0.1", str(orthanc.dimse_port),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert {u for u in sent.sop_uids if u in out.stderr} == sent.sop_uids


def test_basic_authentication(orthanc_factory, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server = orthanc_factory(users={"alice": PASSWORD})
    good = _node(server, user="alice", password=PASSWORD)
    assert connect(good).echo() > 0
    for bad in (replace(good, password="wrong"), _node(server)):
        with pytest.raises(AssociationRefused) as err:
            connect(bad).find_studies(StudyQuery())
        assert "'web-test'" in str(err.value) and "HTTP 401" in str(err.value)
    assert PASSWORD not in caplog.text


def test_a_bearer_token_the_server_does_not_accept_is_named(orthanc_factory):
    server = orthanc_factory(users={"alice": PASSWORD})
    with pytest.raises(AssociationRefused) as err:
        connect(_node(server, token="tok-not-for-orthanc")).echo()
    assert "refused RadLens's token" in str(err.value)
    assert "tok-not-for-orthanc" not in str(err.value)


def test_a_dicomweb_node_that_is_down_is_named():
    node = WebNode("gone", f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=5)
    with pytest.raises(NodeUnreachable) as err:
        connect(node).echo()
    assert "'gone'" in str(err.value) and "cannot be reached" in str(err.value)


def test_a_hung_dicomweb_server_times_out(orthanc):
    node = _node(orthanc, timeout_s=1.5)
    orthanc.pause()
    try:
        with pytest.raises(PacsTimeout) as err:
            connect(node).echo()
    finally:
        orthanc.resume()
    assert "'web-test'" in str(err.value) and "within 2 s" in str(err.value)


def _half_cached(server, tmp_path, slices=6):
    """A study on ``server`` and a cache holding its first two instances (a cancelled
    retrieve), the rest in the order a resumed retrieve asks for them."""
    study = write_study(tmp_path / "p", series=1, slices=slices)
    server.upload(study.paths)
    cache = PacsCache(tmp_path / "cache")
    arrived = []
    client = connect(_node(server))
    with pytest.raises(Cancelled):
        retrieve(
            client,
            cache,
            study.study_uid,
            progress=lambda f, s: arrived.append(f) if f > 0 else None,
            cancel=lambda: len(arrived) >= 2,
        )
    missing = [
        r.sop_uid
        for r in client.list_instances(study.study_uid, study.series_uids[0])
        if not cache.has(r.study_uid, r.series_uid, r.sop_uid)
    ]
    return study, cache, client, missing


def test_a_partial_study_over_wado_is_named_and_retry_fetches_the_rest(orthanc_factory, tmp_path):
    server = orthanc_factory(extra={"OverwriteInstances": True})
    study, cache, client, missing = _half_cached(server, tmp_path)
    before = len(study.sop_uids) - len(missing)
    # The PACS's storage fails during the transfer: after the first new instance arrives,
    # the last one asked for can no longer be read.
    broken = missing[-1]
    state = {"broken": False}

    def progress(fraction, sentence):
        if "images" in sentence and fraction > before / 6 and not state["broken"]:
            state["broken"] = True
            server.break_instance(broken)

    with pytest.raises(PartialRetrieve) as err:
        retrieve(client, cache, study.study_uid, progress=progress)
    assert (err.value.received, err.value.expected) == (5, 6)
    assert "'web-test'" in str(err.value) and "5 of 6" in str(err.value)
    assert _cached_sops(cache, study) == study.sop_uids - {broken}
    source = next(p for p in study.paths if str(pydicom.dcmread(p).SOPInstanceUID) == broken)
    server.upload([source])
    report = retrieve(client, cache, study.study_uid)
    client.close()
    assert (report.fetched, report.reused) == (1, 5)
    assert len(list(cache.root.glob("*/*/*.dcm"))) == 6


def test_a_dicomweb_error_status_is_named(orthanc, tmp_path):
    # Orthanc's QIDO cannot list a series whose stored file is gone: HTTP 500.
    study, cache, client, missing = _half_cached(orthanc, tmp_path)
    orthanc.break_instance(missing[0])
    with pytest.raises(PacsStatusError) as err:
        retrieve(client, cache, study.study_uid)
    client.close()
    assert err.value.status == 500
    assert "'web-test'" in str(err.value) and "HTTP 500" in str(err.value)


def test_the_command_line_end_to_end(orthanc, study, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RADLENS_PACS_CACHE_GB", "1")
    dimse = f"{ORTHANC_AET}@127.0.0.1:{orthanc.dimse_port}"
    assert (
        cli.main(["pacs", "add", "main", "--dimse", dimse, "--local-port", str(free_port())]) == 0
    )
    assert cli.main(["pacs", "add", "web", "--dicomweb", orthanc.web_url]) == 0
    assert cli.main(["pacs", "echo", "main"]) == 0
    assert cli.main(["pacs", "echo", "web"]) == 0
    capsys.readouterr()
    assert cli.main(["pacs", "find", "web", "--patient", "doe", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [s["study_uid"] for s in found] == [study.study_uid]
    assert cli.main(["pacs", "find", "main", "--date", "20260201-", "--json"]) == 0
    assert [s["patient_id"] for s in json.loads(capsys.readouterr().out)] == ["P-002"]
    assert cli.main(["pacs", "find", "main", "--study", study.study_uid, "--json"]) == 0
    assert [s["series_uid"] for s in json.loads(capsys.readouterr().out)] == study.series_uids
    out = tmp_path / "out"
    assert cli.main(["pacs", "get", "main", "--study", study.study_uid, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "8 transferred" in text and "0 already in the cache" in text
    assert len(list(out.glob("*/*.dcm"))) == 8
    assert cli.main(["pacs", "get", "web", "--study", study.study_uid]) == 0
    assert "0 transferred" in capsys.readouterr().out  # the same cache: nothing twice
    sent = write_study(tmp_path / "s", "SENT^BACK", "P-5", "20260401", "ACC-5", "CT", slices=2)
    assert cli.main(["pacs", "send", "web", str(sent.paths[0].parent)]) == 0
    assert "Sent 2 of 2" in capsys.readouterr().out
    assert orthanc.sop_uids() >= sent.sop_uids
    # Errors are one sentence naming the node, exit code 2, no traceback.
    assert cli.main(["pacs", "find", "nowhere"]) == 2
    assert "no PACS node called 'nowhere'" in capsys.readouterr().err
    orthanc.stop()
    assert cli.main(["pacs", "echo", "main"]) == 2
    err = capsys.readouterr().err
    assert "PACS node 'main'" in err and "cannot be reached" in err and "Traceback" not in err


@pytest.fixture
def tls_server(tmp_path):
    """A real TLS server on loopback (openssl s_server -WWW: serves files from its folder) with
    a self-signed certificate: what a hospital's HTTPS endpoint with an unknown CA looks like.
    (Orthanc 1.10.1's own HTTPS resets connections in this build, so openssl stands in.)"""
    import shutil
    import socket
    import time

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-WWW", "-quiet"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"https://127.0.0.1:{port}/dicom-web"
    proc.terminate()
    proc.wait(10)


def test_tls_certificates_are_verified_unless_turned_off_for_the_node(tls_server):
    with pytest.raises(AssociationRefused) as err:
        connect(WebNode("tls-node", tls_server)).echo()
    assert "'tls-node'" in str(err.value) and "TLS certificate could not be verified" in str(
        err.value
    )
    # Verification off for this node: the handshake passes and the server's own answer comes
    # back (openssl's file server speaks no DICOMweb, which is named as such).
    with pytest.raises(PacsStatusError) as err:
        connect(WebNode("tls-node", tls_server, verify_tls=False, timeout_s=5)).echo()
    assert "TLS" not in str(err.value) and "'tls-node'" in str(err.value)
