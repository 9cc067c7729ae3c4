"""PACS node settings, the cache and the command line's handling of credentials (no server)."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from viewer import cli
from viewer.pacs import DimseNode, NodeBook, NodeConfigError, PacsCache, WebNode
from viewer.pacs.nodes import parse_dimse_address, settings_dir
from viewer.pacs.records import StudyQuery, parse_date_range

SECRET = "pa55-Secret-value"
TOKEN = "tok-4f9e-very-secret"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_nodes_file_is_private_and_round_trips(tmp_path):
    book = NodeBook(path=tmp_path / "cfg" / "pacs_nodes.json")
    book.put(DimseNode("main", "ORTHANC", "pacs.local", 4242, local_port=11113, retrieve="move"))
    book.put(WebNode("web", "https://pacs.local/dicom-web", user="alice", password=SECRET))
    book.put(WebNode("cloud", "https://x.example/dicomweb", token=TOKEN, verify_tls=False))
    book.save()
    assert _mode(book.path) == 0o600
    assert _mode(book.path.parent) == 0o700
    again = NodeBook.load(book.path)
    assert again.nodes == book.nodes
    assert again.get("web").password == SECRET  # stored for use, 0600
    assert again.get("cloud").verify_tls is False and again.get("web").verify_tls is True


def test_a_widened_nodes_file_is_made_private_again(tmp_path):
    book = NodeBook(path=tmp_path / "pacs_nodes.json")
    book.put(WebNode("web", "http://h/dicom-web", user="u", password=SECRET))
    book.save()
    os.chmod(book.path, 0o644)
    NodeBook.load(book.path)
    assert _mode(book.path) == 0o600


def test_credentials_never_in_repr_or_description():
    node = WebNode("web", "https://pacs/dicom-web", user="alice", password=SECRET)
    bearer = WebNode("b", "https://pacs/dicom-web", token=TOKEN)
    for text in (repr(node), str(node.describe()), repr(bearer), str(bearer.describe())):
        assert SECRET not in text and TOKEN not in text
    assert node.describe()["password"] == "********"
    assert bearer.describe()["token"] == "********"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: parse_dimse_address("ORTHANC-pacs:4242", "n1"), "AET@HOST:PORT"),
        (lambda: parse_dimse_address("A@h:99999", "n2"), "between 1 and 65535"),
        (lambda: DimseNode("n3", "X" * 17, "h", 104), "valid AE title"),
        (lambda: WebNode("n4", "ftp://pacs/dicom-web"), "not an http(s) DICOMweb URL"),
        (lambda: WebNode("n5", "https://bob:pw@pacs/dicom-web"), "not in the URL"),
        (lambda: WebNode("n6", "https://p/dw", user="u", token="t"), "not both"),
        (lambda: NodeBook({}).get("nobody"), "no PACS node called 'nobody'"),
    ],
)
def test_bad_node_settings_are_refused_with_a_sentence(make, words):
    with pytest.raises(NodeConfigError) as err:
        make()
    assert words in str(err.value)


def test_dimse_address_parses():
    assert parse_dimse_address("ORTHANC@10.0.0.5:4242", "n") == ("ORTHANC", "10.0.0.5", 4242)


def test_date_ranges():
    assert parse_date_range("20260101-20260131") == ("20260101", "20260131")
    assert parse_date_range("20260101-") == ("20260101", "")
    assert parse_date_range("-20260131") == ("", "20260131")
    assert parse_date_range("20260105") == ("20260105", "20260105")
    assert StudyQuery(date_from="20260101", date_to="20260131").date_range == "20260101-20260131"
    with pytest.raises(NodeConfigError, match="ends before it starts"):
        parse_date_range("20260201-20260101")
    with pytest.raises(NodeConfigError, match="not YYYYMMDD"):
        parse_date_range("2026-01-01")


def test_cache_keeps_one_file_per_sop_uid_and_no_half_files(tmp_path):
    cache = PacsCache(tmp_path / "cache")
    path, new = cache.put("1.2", "1.2.3", "1.2.3.4", b"x" * 10)
    again, new_again = cache.put("1.2", "1.2.3", "1.2.3.4", b"x" * 10)
    assert (new, new_again) == (True, False) and path == again
    assert cache.series_files("1.2", "1.2.3") == [path]
    # A transfer killed mid-write leaves a .part file: never counted, removed on next start.
    (path.parent / "1.2.3.5.dcm.123.part").write_bytes(b"half")
    cache = PacsCache(tmp_path / "cache")
    assert not list(path.parent.glob("*.part"))
    assert not cache.has("1.2", "1.2.3", "1.2.3.5")
    assert _mode(path) == 0o600


def test_cache_evicts_least_recently_used_series_to_its_limit(tmp_path):
    cache = PacsCache(tmp_path / "cache", limit_bytes=2500)
    for k, series in enumerate(("1.1", "1.2", "1.3")):
        cache.put("9", series, f"{series}.1", b"a" * 1000)
        folder = cache.series_dir("9", series)
        cache.touch(folder)
        os.utime(folder / ".used", (1000 + k, 1000 + k))  # 1.1 oldest, 1.3 newest
    cache.touch(cache.series_dir("9", "1.1"))  # opened again just now: now the newest
    evicted = cache.enforce_limit(keep={cache.series_dir("9", "1.3")})
    assert evicted == [cache.series_dir("9", "1.2")]
    assert cache.size_bytes() == 2000
    assert cache.has("9", "1.1", "1.1.1") and cache.has("9", "1.3", "1.3.1")


def test_cli_add_and_list_never_print_credentials(monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("RADLENS_PACS_PASSWORD", SECRET)
    monkeypatch.setenv("RADLENS_PACS_TOKEN", TOKEN)
    assert (
        cli.main(["pacs", "add", "web", "--dicomweb", "https://p/dicom-web", "--user", "al"]) == 0
    )
    assert cli.main(["pacs", "add", "cloud", "--dicomweb", "https://q/dw", "--token"]) == 0
    assert cli.main(["pacs", "add", "dimse", "--dimse", "ORTHANC@pacs:4242", "--move"]) == 0
    assert cli.main(["pacs", "list"]) == 0
    assert cli.main(["pacs", "list", "--json"]) == 0
    out = capsys.readouterr()
    listed = json.loads(out.out[out.out.index("[") :])
    assert {n["name"] for n in listed} == {"web", "cloud", "dimse"}
    assert "********" in out.out
    everything = out.out + out.err + caplog.text
    assert SECRET not in everything and TOKEN not in everything
    path = settings_dir() / "pacs_nodes.json"
    assert _mode(path) == 0o600
    stored = path.read_text()
    assert SECRET in stored and TOKEN in stored
    # A second add of the same name is refused unless --replace.
    assert cli.main(["pacs", "add", "web", "--dicomweb", "https://p/dicom-web"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["pacs", "remove", "cloud"]) == 0
    assert set(NodeBook.load().nodes) == {"web", "dimse"}


def test_a_pacs_source_string_is_a_node_and_a_query():
    from viewer.pacs.source import parse_pacs_source

    node, query = parse_pacs_source("pacs:hospital?Modality=CT&StudyDate=20260101-20260131")
    assert node == "hospital"
    assert query == StudyQuery(modality="CT", date_from="20260101", date_to="20260131")
    assert parse_pacs_source("pacs:web")[1] == StudyQuery()
    assert parse_pacs_source("pacs:w?PatientName=DOE%5EJ*&limit=20")[1] == StudyQuery(
        patient_name="DOE^J*", limit=20
    )
    for bad, words in (
        ("folder/x", "not a PACS source"),
        ("pacs:w?Colour=red", "'Colour' is not a PACS query key"),
        ("pacs:w?StudyDate=2026", "not YYYYMMDD"),
        ("pacs:w?limit=lots", "not a number"),
    ):
        with pytest.raises(NodeConfigError, match=words):
            parse_pacs_source(bad)
