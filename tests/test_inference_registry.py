"""Registry scans: each returns its own problems; hidden work-in-progress folders are ignored."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("torch")

from inference import registry  # noqa: E402
from tests.inference_factory import save_seg_package  # noqa: E402


def _broken(folder):
    folder.mkdir(parents=True)
    (folder / "model.json").write_text("{not json")
    return folder


def test_publish_temporaries_and_replaced_packages_are_never_listed(tmp_path):
    root = tmp_path / "models"
    save_seg_package(root / "tiny-seg")
    # What publishes leave while they run: a new package being written, the package a
    # re-publish swaps out, and a copy not yet complete enough to read.
    save_seg_package(root / ".new-seg.a1b2.tmp", id="new-seg")
    save_seg_package(root / ".old-seg.replaced", id="old-seg")
    _broken(root / ".other.c3d4.tmp")
    scan = registry.scan_models([root])
    assert [c.id for c in scan.cards if c.path.parent == root] == ["tiny-seg"]
    assert scan.problems == []


def test_a_scan_keeps_its_problems_when_another_scan_follows(tmp_path):
    bad = _broken(tmp_path / "a" / "bad")
    save_seg_package(tmp_path / "b" / "good")
    first = registry.scan_models([tmp_path / "a"])
    second = registry.scan_models([tmp_path / "b"])
    assert [p for p, _ in first.problems] == [bad]
    assert second.problems == [] and "tiny-seg" in [c.id for c in second.cards]


def test_scans_on_two_threads_each_report_their_own_problems(tmp_path):
    bad = _broken(tmp_path / "a" / "bad")
    save_seg_package(tmp_path / "b" / "good")
    seen: dict[str, list] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def scan(name: str) -> None:
        start.wait()
        for _ in range(20):
            seen[name].append([p for p, _ in registry.scan_models([tmp_path / name]).problems])

    threads = [threading.Thread(target=scan, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] == [[bad]] * 20 and seen["b"] == [[]] * 20


def test_list_models_and_the_legacy_problems_name_still_work(tmp_path):
    bad = _broken(tmp_path / "models" / "bad")
    save_seg_package(tmp_path / "models" / "good")
    cards = registry.list_models([tmp_path / "models"])
    assert "tiny-seg" in [c.id for c in cards]
    assert [p for p, _ in registry.problems] == [bad]
