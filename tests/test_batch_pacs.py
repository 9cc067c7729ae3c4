"""`radlens batch pacs:NODE?...` against a real Orthanc started by the test: the query picks
the studies, each worker retrieves its series (C-GET) and analyses it; a rerun retrieves and
analyses nothing again."""

from __future__ import annotations

import json
import sqlite3

import pytest

pytest.importorskip("torch")
pytest.importorskip("pynetdicom")
orthanc_helpers = pytest.importorskip(
    "tests.orthanc", reason="needs the Orthanc fixture of the PACS work (tests/orthanc.py)"
)

from radlens_core.series import series_key  # noqa: E402
from tests.batch_factory import write_phantom_ct  # noqa: E402
from tests.dicom_factory import set_attribute  # noqa: E402
from tests.orthanc import (  # noqa: E402, F401
    ORTHANC_AET,
    loopback_network,
    orthanc_factory_fixture,
    orthanc_server,
)
from viewer.cli import main  # noqa: E402


def _tag(paths, **attributes) -> None:
    for path in paths:
        for keyword, value in attributes.items():
            set_attribute(path, keyword, value)


def test_batch_over_a_pacs_query_analyses_the_matching_series(orthanc, tmp_path, capsys):
    from pydicom.uid import generate_uid

    from viewer.pacs import DimseNode, NodeBook, PacsCache

    study = generate_uid()
    wanted = [write_phantom_ct(tmp_path / f"ct{k}", k, study_uid=study) for k in range(2)]
    for truth in wanted:
        _tag(truth.paths, StudyDate="20260105", PatientID="P-1", PatientName="DOE^JANE")
    other = write_phantom_ct(tmp_path / "later", 5)  # another month: not asked for
    _tag(other.paths, StudyDate="20260301", PatientID="P-2", PatientName="ROE^RICHARD")
    orthanc.upload([p for t in (*wanted, other) for p in t.paths])
    book = NodeBook.load()
    book.put(DimseNode("hospital", ORTHANC_AET, "127.0.0.1", orthanc.dimse_port, timeout_s=20))
    book.save()

    out = tmp_path / "out"
    source = "pacs:hospital?Modality=CT&StudyDate=20260101-20260131"
    args = ["batch", source, "--out", str(out), "--workers", "1", "--threads", "1"]
    assert main(args) == 0, capsys.readouterr().err
    db = sqlite3.connect(out / "manifest.sqlite")
    got = dict(db.execute("SELECT key, status FROM series").fetchall())
    db.close()
    keys = {series_key(t.series_uid) for t in wanted}
    assert got == dict.fromkeys(keys, "done")
    for truth in wanted:
        data = json.loads((out / series_key(truth.series_uid) / "findings.json").read_text())
        assert data["series_uid"] == truth.series_uid
        assert data["source"].startswith(f"pacs:hospital/{study}/")
        # Retrieved into the user's PACS cache (shared by the workers), not a scratch copy.
        cached = PacsCache.default().series_files(study, truth.series_uid)
        assert len(cached) == len(truth.paths)
    # Resumed: the manifest says done, so nothing is asked of the node again.
    before = orthanc.rest("/statistics")
    assert main(args) == 0
    assert "0 this run" in capsys.readouterr().out
    assert orthanc.rest("/statistics") == before


def test_send_puts_each_series_seg_on_the_node_once(orthanc, tmp_path, capsys):
    pytest.importorskip(
        "viewer.labels.ai_labels", reason="needs the DICOM-SEG writer of the SEG work"
    )
    import pydicom

    from viewer.pacs import DimseNode, NodeBook

    archive = tmp_path / "archive"
    truths = [write_phantom_ct(archive / f"ct{k}", k) for k in range(2)]
    book = NodeBook.load()
    book.put(DimseNode("results", ORTHANC_AET, "127.0.0.1", orthanc.dimse_port, timeout_s=20))
    book.save()
    out = tmp_path / "out"
    args = ["batch", str(archive), "--out", str(out), "--workers", "1", "--threads", "1"]
    assert main(args) == 0
    assert orthanc.instance_count() == 0  # nothing is sent without --send
    assert main([*args, "--send", "results"]) == 0, capsys.readouterr().err
    assert "sent 2 series' DICOM-SEG to results; 0 not sent" in capsys.readouterr().out
    assert orthanc.instance_count() == 2
    for truth in truths:
        seg = out / series_key(truth.series_uid) / "seg.dcm"
        ds = pydicom.dcmread(seg)
        assert ds.Modality == "SEG" and ds.SOPInstanceUID in orthanc.sop_uids()
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == truth.series_uid
    assert main([*args, "--send", "results"]) == 0  # resumed: nothing sent twice
    assert orthanc.instance_count() == 2
    db = sqlite3.connect(out / "manifest.sqlite")
    sent = [r[0] for r in db.execute("SELECT sent FROM series")]
    db.close()
    assert len(sent) == 2 and all(t.startswith("sent to results at ") for t in sent)


def test_unknown_node_and_bad_query_are_sentences(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["batch", "pacs:nowhere?Modality=CT", "--out", out]) == 2
    assert "there is no PACS node called 'nowhere'" in capsys.readouterr().err
    assert main(["batch", "pacs:x?Colour=blue", "--out", out]) == 2
    assert "unknown query key 'Colour'" in capsys.readouterr().err


def test_c_move_node_with_several_workers_is_refused(tmp_path, capsys):
    from viewer.pacs import DimseNode, NodeBook

    book = NodeBook.load()
    book.put(DimseNode("moving", "PACS", "127.0.0.1", 104, local_port=11112, retrieve="move"))
    book.save()
    out = str(tmp_path / "out")
    assert main(["batch", "pacs:moving?Modality=CT", "--out", out, "--workers", "2"]) == 2
    assert "only one worker at a time can receive on; use --workers 1" in capsys.readouterr().err


def test_a_second_batch_of_the_same_series_replaces_its_seg_on_the_node(
    orthanc_factory, tmp_path, capsys
):
    """Two batches (two --out folders) of the same series send the same SEG instance: a PACS
    that replaces re-sent instances (Orthanc's OverwriteInstances) holds one SEG, not two."""
    import pydicom

    from viewer.pacs import DimseNode, NodeBook

    orthanc = orthanc_factory(extra={"OverwriteInstances": True})
    archive = tmp_path / "archive"
    truth = write_phantom_ct(archive / "ct", 4)
    book = NodeBook.load()
    book.put(DimseNode("results", ORTHANC_AET, "127.0.0.1", orthanc.dimse_port, timeout_s=20))
    book.save()
    segs = []
    for run in ("first", "again"):
        out = tmp_path / run
        args = ["batch", str(archive), "--out", str(out), "--threads", "1", "--quiet"]
        assert main([*args, "--send", "results"]) == 0, capsys.readouterr().err
        segs.append(pydicom.dcmread(out / series_key(truth.series_uid) / "seg.dcm"))
        assert orthanc.instance_count() == 1
    assert segs[0].SOPInstanceUID == segs[1].SOPInstanceUID
    assert orthanc.sop_uids() == {segs[0].SOPInstanceUID}
    assert "sent 1 series' DICOM-SEG to results; 0 not sent" in capsys.readouterr().out
