"""DIMSE against a real Orthanc (started by the test): echo, find, get, move, store, RadLens's
storage SCP checked with dcmtk, and each failure a user can meet."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pydicom
import pytest

from radlens_core.progress import Cancelled
from tests.orthanc import (  # noqa: F401 (fixtures: pytest registers them by their own names)
    ORTHANC_AET,
    dcmtk,
    free_port,
    loopback_network,
    orthanc_factory_fixture,
    orthanc_server,
    write_study,
)
from viewer.pacs import (
    AssociationRefused,
    DimseNode,
    NodeUnreachable,
    PacsCache,
    PacsStatusError,
    PacsTimeout,
    PartialRetrieve,
    StudyQuery,
    connect,
    retrieve,
)
from viewer.pacs.scp import StorageSCP


def _node(server, **kw) -> DimseNode:
    port = server.radlens_port or free_port()
    return DimseNode(
        "orthanc-test", ORTHANC_AET, "127.0.0.1", server.dimse_port, local_port=port, **kw
    )


@pytest.fixture
def two_studies(orthanc, tmp_path):
    a = write_study(tmp_path / "a", "DOE^JANE", "P-001", "20260105", "ACC-001", "CT", series=2)
    b = write_study(tmp_path / "b", "ROE^RICHARD", "P-002", "20260220", "ACC-002", "MR")
    orthanc.upload(a.paths + b.paths)
    return a, b


def test_echo_answers(orthanc):
    with connect(_node(orthanc)) as client:
        assert client.echo() > 0


@pytest.mark.parametrize(
    ("query", "which"),
    [
        (StudyQuery(patient_name="doe"), "a"),
        (StudyQuery(patient_id="P-002"), "b"),
        (StudyQuery(modality="MR"), "b"),
        (StudyQuery(date_from="20260201", date_to="20260228"), "b"),
        (StudyQuery(date_to="20260131"), "a"),
        (StudyQuery(accession="ACC-001"), "a"),
        (StudyQuery(), "ab"),
        (StudyQuery(patient_name="nobody"), ""),
    ],
)
def test_find_studies_by_each_key(orthanc, two_studies, query, which):
    uids = {"a": two_studies[0].study_uid, "b": two_studies[1].study_uid}
    with connect(_node(orthanc)) as client:
        found = client.find_studies(query)
    assert {s.study_uid for s in found} == {uids[k] for k in which}
    for s in found:
        if s.study_uid == uids["a"]:
            assert (s.patient_name, s.patient_id, s.study_date) == ("DOE^JANE", "P-001", "20260105")
            assert s.modalities == ("CT",) and s.series_count == 2 and s.instance_count == 8


def test_find_series_of_a_study(orthanc, two_studies):
    a = two_studies[0]
    with connect(_node(orthanc)) as client:
        series = client.find_series(a.study_uid)
    assert [s.series_uid for s in series] == a.series_uids  # by series number
    assert all(s.modality == "CT" and s.instance_count == 4 for s in series)


def _cached_sops(cache: PacsCache, study) -> set[str]:
    out = set()
    for series in study.series_uids:
        for f in cache.series_files(study.study_uid, series):
            out.add(str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID))
    return out


def _same_pixels(cache: PacsCache, study) -> None:
    sources = {str(pydicom.dcmread(p).SOPInstanceUID): pydicom.dcmread(p) for p in study.paths}
    for series in study.series_uids:
        for f in cache.series_files(study.study_uid, series):
            got = pydicom.dcmread(f)
            assert got.PixelData == sources[str(got.SOPInstanceUID)].PixelData


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_study_into_the_cache(orthanc, two_studies, method, tmp_path):
    a = two_studies[0]
    cache = PacsCache(tmp_path / "cache")
    seen = []
    with connect(_node(orthanc, retrieve=method)) as client:
        report = retrieve(client, cache, a.study_uid, progress=lambda f, s: seen.append((f, s)))
    assert report.expected == 8 and report.fetched == 8 and report.reused == 0
    assert _cached_sops(cache, a) == a.sop_uids
    _same_pixels(cache, a)
    assert seen[-1][0] == 1.0 and "8/8 images" in seen[-1][1]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    # Only what was asked: the other study is not in the cache.
    assert len(list(cache.root.glob("*/*/*.dcm"))) == 8


def test_retrieve_one_series(orthanc, two_studies, tmp_path):
    a = two_studies[0]
    cache = PacsCache(tmp_path / "cache")
    with connect(_node(orthanc)) as client:
        report = retrieve(client, cache, a.study_uid, [a.series_uids[1]])
    assert report.fetched == 4
    assert cache.series_files(a.study_uid, a.series_uids[0]) == []
    assert len(cache.series_files(a.study_uid, a.series_uids[1])) == 4


@pytest.mark.parametrize("method", ["get", "move"])
def test_interrupted_retrieve_resumes_without_redoing_or_duplicating(
    orthanc, two_studies, method, tmp_path
):
    a = two_studies[0]
    cache = PacsCache(tmp_path / "cache")
    arrived = []

    def progress(fraction, sentence):
        if "images" in sentence and fraction > 0:
            arrived.append(fraction)

    with connect(_node(orthanc, retrieve=method)) as client:
        with pytest.raises(Cancelled):
            retrieve(
                client, cache, a.study_uid, progress=progress, cancel=lambda: len(arrived) >= 3
            )
        first = _cached_sops(cache, a)
        assert 3 <= len(first) < 8
        assert not list(cache.root.rglob("*.part"))
        report = retrieve(client, cache, a.study_uid)
    assert report.reused == len(first) and report.fetched == 8 - len(first)
    assert _cached_sops(cache, a) == a.sop_uids
    assert len(list(cache.root.glob("*/*/*.dcm"))) == 8  # no duplicate
    _same_pixels(cache, a)


def test_store_then_dcmtk_findscu_sees_the_instances(orthanc, tmp_path):
    findscu = dcmtk("findscu")
    study = write_study(tmp_path / "seg", "SEND^ME", "P-009", "20260301", "ACC-9", "CT")
    with connect(_node(orthanc)) as client:
        report = client.store(study.paths, lambda f, s: None, lambda: False)
    assert report.sent == 4 and report.failed == ()
    out = subprocess.run(
        [
            findscu,
            "-S",
            "-aet",
            "CHECK",
            "-aec",
            ORTHANC_AET,
            "-k",
            "QueryRetrieveLevel=IMAGE",
            "-k",
            f"StudyInstanceUID={study.study_uid}",
            "-k",
            f"SeriesInstanceUID={study.series_uids[0]}",
            "-k",
            "SOPInstanceUID",
            "127.0.0.1",
            str(orthanc.dimse_port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert {u for u in study.sop_uids if u in out.stderr} == study.sop_uids


def test_radlens_storage_scp_receives_dcmtk_storescu(tmp_path):
    storescu = dcmtk("storescu")
    study = write_study(tmp_path / "push", series=1, slices=3)
    cache = PacsCache(tmp_path / "cache")
    port = free_port()
    with StorageSCP("RADLENS", port, cache, "127.0.0.1") as scp:
        for _ in range(2):  # the second push is the same instances: no duplicates
            run = subprocess.run(
                [
                    storescu,
                    "-aet",
                    "PUSHER",
                    "-aec",
                    "RADLENS",
                    "127.0.0.1",
                    str(port),
                    *map(str, study.paths),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 0, run.stderr
    assert scp.received == 6
    files = cache.series_files(study.study_uid, study.series_uids[0])
    assert len(files) == 3
    assert {str(pydicom.dcmread(f).SOPInstanceUID) for f in files} == study.sop_uids


# ---- failures ---------------------------------------------------------------------------------
def test_a_node_that_is_down_is_named(tmp_path):
    node = DimseNode("downstairs", "PACS", "127.0.0.1", free_port(), timeout_s=5)
    with pytest.raises(NodeUnreachable) as err:
        connect(node).echo()
    assert "'downstairs'" in str(err.value) and "cannot be reached" in str(err.value)


def test_an_unknown_ae_title_is_refused(orthanc):
    node = replace(_node(orthanc), aet="NOT-ORTHANC")
    with pytest.raises(AssociationRefused) as err:
        connect(node).find_studies(StudyQuery())
    assert "'orthanc-test'" in str(err.value) and "NOT-ORTHANC" in str(err.value)


def test_a_hung_server_times_out(orthanc):
    node = replace(_node(orthanc), timeout_s=1.5)
    orthanc.pause()
    try:
        with pytest.raises(PacsTimeout) as err:
            connect(node).echo()
    finally:
        orthanc.resume()
    assert "did not answer within 2 s" in str(err.value) and "'orthanc-test'" in str(err.value)
    assert connect(node).echo() > 0  # and works again once it answers


def test_an_error_status_is_named(orthanc, two_studies, tmp_path):
    # C-MOVE to an AE title Orthanc does not know: a failure status (Orthanc: 0xC000).
    node = replace(_node(orthanc, retrieve="move"), local_aet="STRANGER", local_port=free_port())
    with pytest.raises(PacsStatusError) as err:
        retrieve(connect(node), PacsCache(tmp_path / "c"), two_studies[0].study_uid)
    assert err.value.status is not None and err.value.status & 0xF000 in (0xA000, 0xC000)
    assert "'orthanc-test'" in str(err.value) and f"0x{err.value.status:04X}" in str(err.value)
    assert "RadLens's AE title 'STRANGER'" in str(err.value)


@pytest.mark.parametrize("method", ["get", "move"])
def test_a_partial_study_is_named_and_retry_fetches_the_rest(orthanc_factory, tmp_path, method):
    server = orthanc_factory(radlens_port=free_port(), extra={"OverwriteInstances": True})
    study = write_study(tmp_path / "p", series=1, slices=5)
    server.upload(study.paths)
    broken = sorted(study.sop_uids)[2]
    server.break_instance(broken)
    cache = PacsCache(tmp_path / "cache")
    client = connect(_node(server, retrieve=method))
    with pytest.raises(PartialRetrieve) as err:
        retrieve(client, cache, study.study_uid)
    assert (err.value.received, err.value.expected) == (4, 5)
    assert "'orthanc-test'" in str(err.value) and "4 of 5" in str(err.value)
    assert _cached_sops(cache, study) == study.sop_uids - {broken}
    # The PACS repaired (the instance stored again): Retry fetches only that one.
    source = next(p for p in study.paths if str(pydicom.dcmread(p).SOPInstanceUID) == broken)
    server.upload([source])
    report = retrieve(client, cache, study.study_uid)
    client.close()
    assert (report.fetched, report.reused) == (1, 4)
    assert _cached_sops(cache, study) == study.sop_uids


def test_a_resumed_study_whose_last_instance_fails_is_partial_not_lost(orthanc, tmp_path):
    study = write_study(tmp_path / "r", series=1, slices=4)
    orthanc.upload(study.paths)
    cache = PacsCache(tmp_path / "cache")
    client = connect(_node(orthanc))
    retrieve(client, cache, study.study_uid)
    gone = cache.series_files(study.study_uid, study.series_uids[0])[0]
    sop = str(pydicom.dcmread(gone, stop_before_pixels=True).SOPInstanceUID)
    gone.unlink()
    orthanc.break_instance(sop)  # the one instance still to fetch cannot be served
    with pytest.raises(PartialRetrieve) as err:
        retrieve(client, cache, study.study_uid)
    assert (err.value.received, err.value.expected) == (3, 4)
    assert "Retry asks only for the 1 missing" in str(err.value)
