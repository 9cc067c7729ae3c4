"""Multi-volume series split into volumes, exact duplicates collapsed: what the scan lists,
what each volume loads as, and the keys its labels are kept under."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless, generate_uid

from tests import dicom_factory as f
from viewer.study.scan import scan_folder
from viewer.study.series import load_series


def _images(folder):
    return [s for s in scan_folder(folder).series if s.kind == "dicom"]


def _multi_echo(folder, echoes=((1, 10.0), (2, 30.0), (3, 50.0)), shape=(4, 6, 5)):
    """One series, each echo a full stack at the same positions (files shuffled)."""
    series_uid, study_uid = generate_uid(), generate_uid()
    truths = []
    for k, (number, te) in enumerate(echoes):
        values = f.ct_values(shape, seed=k) + 100 * k
        truth = f.write_ct_series(
            folder / f"echo{number}",
            shape=shape,
            values=values,
            series_uid=series_uid,
            study_uid=study_uid,
            shuffle_seed=k + 1,
        )
        for path in truth.paths:
            f.set_attribute(path, "EchoNumbers", number)
            f.set_attribute(path, "EchoTime", te)
        truths.append(truth)
    return series_uid, truths


def test_multi_echo_series_is_listed_as_one_entry_per_echo_each_loading_its_own_stack(tmp_path):
    uid, truths = _multi_echo(tmp_path)
    series = _images(tmp_path)
    assert [s.volume_text for s in series] == [
        "Volume 1/3 — echo 1, TE 10 ms",
        "Volume 2/3 — echo 2, TE 30 ms",
        "Volume 3/3 — echo 3, TE 50 ms",
    ]
    assert all(s.loadable and s.shape == (4, 6, 5) for s in series)
    assert not any("phases or echoes" in p for s in series for p in s.problems)
    keys = [s.series_uid for s in series]
    assert len(set(keys)) == 3 and all(k.startswith(uid + "#vol") for k in keys)
    assert all(s.volume_group == uid and not s.time_series for s in series)
    for info, truth in zip(series, truths, strict=True):
        vol = load_series(info)
        assert np.array_equal(vol.array, truth.values)
        assert vol.meta["volume_label"] == info.volume_label
        assert (vol.meta["volume_index"], vol.meta["volume_count"]) == (info.volume_index, 3)
        assert vol.key == info.series_uid  # labels of each echo are kept apart
        assert vol.meta["series_instance_uid"] == uid


def test_dynamic_series_by_temporal_position_is_a_playable_time_series(tmp_path):
    series_uid, study_uid = generate_uid(), generate_uid()
    for t in range(1, 4):
        truth = f.write_ct_series(
            tmp_path / f"t{t}", shape=(3, 4, 4), series_uid=series_uid, study_uid=study_uid
        )
        for path in truth.paths:
            f.set_attribute(path, "TemporalPositionIdentifier", t)
            f.set_attribute(path, "TriggerTime", 100.0 * t)
    series = _images(tmp_path)
    assert [s.volume_label for s in series] == [
        "time point 1, trigger delay 100 ms",
        "time point 2, trigger delay 200 ms",
        "time point 3, trigger delay 300 ms",
    ]
    assert all(s.time_series for s in series)


def test_diffusion_b_values_split_and_single_volume_series_keep_their_key(tmp_path):
    series_uid, study_uid = generate_uid(), generate_uid()
    for b in (0, 1000):
        truth = f.write_ct_series(
            tmp_path / f"b{b}", shape=(3, 4, 4), series_uid=series_uid, study_uid=study_uid
        )
        for path in truth.paths:
            f.set_attribute(path, "DiffusionBValue", float(b))
    plain = f.write_ct_series(tmp_path / "plain", shape=(3, 4, 4))
    series = {s.series_uid: s for s in _images(tmp_path)}
    assert series[plain.series_uid].volume_count == 1  # unchanged key: its labels still open
    assert series[plain.series_uid].volume_text == ""
    labels = sorted(s.volume_label for s in series.values() if s.volume_count == 2)
    assert labels == ["b = 0 s/mm²", "b = 1000 s/mm²"]


def test_repeats_without_attribute_split_in_instance_order_with_a_note(tmp_path):
    series_uid, study_uid = generate_uid(), generate_uid()
    for k in range(2):
        truth = f.write_ct_series(
            tmp_path / f"r{k}",
            shape=(3, 4, 4),
            values=f.ct_values((3, 4, 4), seed=10 + k),
            series_uid=series_uid,
            study_uid=study_uid,
            shuffle_seed=None,
        )
        for z, path in enumerate(truth.paths):
            f.set_attribute(path, "InstanceNumber", k * 10 + z + 1)
    series = _images(tmp_path)
    assert len(series) == 2 and all(s.loadable for s in series)
    assert any("split in instance order" in p for p in series[0].problems)


def test_same_positions_with_different_pixels_on_some_slices_only_are_refused(tmp_path):
    f.write_ct_series(tmp_path, z_positions=[0, 2, 2, 4])
    (info,) = _images(tmp_path)
    assert not info.loadable
    assert "share the same position" in info.problems[-1]
    assert "phases or echoes" not in info.problems[-1]


def _mr_small_copies(folder, names, new_uids):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        ds = pydicom.dcmread(get_testdata_file(name))
        if new_uids:
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / name)


@pytest.mark.parametrize("new_uids", [False, True], ids=["same-sop-uid", "new-sop-uids"])
def test_one_image_in_several_transfer_syntaxes_collapses_with_a_note(tmp_path, new_uids):
    names = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm"]
    _mr_small_copies(tmp_path, names, new_uids)
    (info,) = _images(tmp_path)
    assert info.loadable and info.shape == (1, 64, 64)
    assert info.duplicates == 3 and info.volume_count == 1
    notes = [p for p in info.problems if "duplicate copies ignored" in p]
    assert len(notes) == 1 and notes[0].startswith("3 duplicate copies ignored")
    assert ("identical pixels" in notes[0]) == new_uids
    vol = load_series(info)
    ref = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    assert np.array_equal(vol.array[0], ref)


def test_copies_in_another_syntax_among_a_stack_leave_one_volume(tmp_path):
    truth = f.write_ct_series(tmp_path / "a", shape=(4, 6, 5))
    for path in truth.paths[:2]:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        f.save(ds, tmp_path / "rle" / path.name, RLELossless)
    (info,) = _images(tmp_path)
    assert info.loadable and info.shape == (4, 6, 5) and info.duplicates == 2
    assert np.array_equal(load_series(info).array, truth.values)


def test_a_copy_folder_of_the_same_files_is_collapsed(tmp_path):
    truth = f.write_ct_series(tmp_path / "a", shape=(3, 5, 5))
    shutil.copytree(tmp_path / "a", tmp_path / "backup")
    (info,) = _images(tmp_path)
    assert info.loadable and info.duplicates == 3
    assert np.array_equal(load_series(info).array, truth.values)


def _enhanced_multi_echo(path, values_by_echo, tes=(12.0, 40.0), spacing=3.0):
    """An enhanced MR with two echoes of the same stack, frames interleaved."""
    n_echo, nz = len(values_by_echo), values_by_echo[0].shape[0]
    frames = [(e, z) for z in range(nz) for e in range(n_echo)]
    stacked = np.stack([values_by_echo[e][z] for e, z in frames])
    f.write_enhanced(path, stacked, modality="MR", slope=1.0, intercept=0.0)
    ds = pydicom.dcmread(path)
    for item, (e, z) in zip(ds.PerFrameFunctionalGroupsSequence, frames, strict=True):
        item.PlanePositionSequence[0].ImagePositionPatient = [-10.0, -10.0, z * spacing]
        content = Dataset()
        content.DimensionIndexValues = [z + 1, e + 1]
        content.StackID = "1"
        item.FrameContentSequence = Sequence([content])
        echo = Dataset()
        echo.EffectiveEchoTime = tes[e]
        item.MREchoSequence = Sequence([echo])
    ds.save_as(path)


def test_enhanced_multi_frame_echoes_split_by_functional_groups(tmp_path):
    echo1 = f.ct_values((3, 5, 4), seed=1).clip(0, 2000).astype(np.uint16)
    echo2 = (echo1 + 7).astype(np.uint16)
    _enhanced_multi_echo(tmp_path / "mf.dcm", [echo1, echo2])
    series = _images(tmp_path)
    assert [s.volume_text for s in series] == [
        "Volume 1/2 — TE 12 ms",
        "Volume 2/2 — TE 40 ms",
    ]
    for info, truth in zip(series, [echo1, echo2], strict=True):
        assert info.n_images == 3 and info.shape == (3, 5, 4)
        vol = load_series(info)
        assert np.array_equal(vol.array, truth)
        assert vol.spacing[2] == pytest.approx(3.0)


def test_enhanced_split_by_dimension_index_when_nothing_else_differs(tmp_path):
    echo1 = f.ct_values((2, 4, 4), seed=2).clip(0, 2000).astype(np.uint16)
    echo2 = (echo1 + 3).astype(np.uint16)
    _enhanced_multi_echo(tmp_path / "mf.dcm", [echo1, echo2], tes=(20.0, 20.0))
    series = _images(tmp_path)
    assert [s.volume_label for s in series] == ["dimension 2 index 1", "dimension 2 index 2"]
    assert np.array_equal(load_series(series[1]).array, echo2)


def test_scan_json_and_table_say_volumes_and_duplicates(tmp_path, capsys):
    import argparse

    from viewer.commands import scan as scan_command

    _multi_echo(tmp_path / "echo", echoes=((1, 10.0), (2, 30.0)))
    _mr_small_copies(tmp_path / "mr", ["MR_small.dcm", "MR_small_RLE.dcm"], new_uids=True)
    assert scan_command.run(argparse.Namespace(path=str(tmp_path), json=False, files=False)) == 0
    table = capsys.readouterr().out
    assert "Volume 2/2 — echo 2, TE 30 ms" in table
    assert "1 duplicate copy ignored" in table
    assert scan_command.run(argparse.Namespace(path=str(tmp_path), json=True, files=False)) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    volumes = [s["volume"] for s in data["series"] if s["volume"]]
    assert [v["label"] for v in volumes] == ["echo 1, TE 10 ms", "echo 2, TE 30 ms"]
    assert [s["duplicates_ignored"] for s in data["series"]].count(1) == 1


def test_a_reused_sop_uid_at_another_position_is_not_a_copy(tmp_path):
    truth = f.write_ct_series(tmp_path, shape=(3, 4, 4))
    uid = pydicom.dcmread(truth.paths[0]).SOPInstanceUID
    f.set_attribute(truth.paths[1], "SOPInstanceUID", uid)
    (info,) = _images(tmp_path)
    assert info.loadable and info.shape == (3, 4, 4) and info.duplicates == 0
    assert np.array_equal(load_series(info).array, truth.values)


def test_picking_a_multi_volume_series_by_its_uid_lists_its_volumes(tmp_path):
    from viewer.study.errors import SeriesNotFound
    from viewer.study.scan import pick_series

    uid, _ = _multi_echo(tmp_path, echoes=((1, 10.0), (2, 30.0)))
    with pytest.raises(SeriesNotFound, match="holds 2 volumes") as err:
        pick_series(tmp_path, uid)
    assert f"{uid}#vol2  Volume 2/2 — echo 2, TE 30 ms" in str(err.value)
    assert pick_series(tmp_path, f"{uid}#vol2").volume_label == "echo 2, TE 30 ms"


def _series_in_two_more_syntaxes(folder, n=40):
    from pydicom.uid import ImplicitVRLittleEndian

    truth = f.write_ct_series(folder / "orig", shape=(n, 8, 8))
    for syntax, name in ((RLELossless, "rle"), (ImplicitVRLittleEndian, "implicit")):
        for path in truth.paths:
            ds = pydicom.dcmread(path)
            ds.SOPInstanceUID = generate_uid()  # re-encoded by a tool that renames them
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            f.save(ds, folder / name / path.name, syntax)
    return truth


def test_a_whole_series_in_three_syntaxes_is_one_volume(tmp_path):
    truth = _series_in_two_more_syntaxes(tmp_path)
    (info,) = _images(tmp_path)
    assert info.loadable and info.duplicates == 80 and info.volume_count == 1
    assert any(p.startswith("80 duplicate copies ignored") for p in info.problems)
    assert np.array_equal(load_series(info).array, truth.values)


def test_copies_beyond_the_decoding_bound_are_refused_not_split(tmp_path, monkeypatch):
    from viewer.study import frame_pixels  # the copy test of the multi-volume split

    _series_in_two_more_syntaxes(tmp_path, n=6)
    monkeypatch.setattr(frame_pixels, "MAX_COMPARE_BYTES", 8 * 8 * 2 * 4)  # four frames
    (info,) = _images(tmp_path)
    assert not info.loadable and info.volume_count == 1
    assert "not every copy could be compared" in info.problems[-1]


def test_volumes_of_one_series_keep_their_labels_apart(tmp_path):
    from viewer.labels.store import store_key

    _multi_echo(tmp_path, echoes=((1, 10.0), (2, 30.0)))
    keys = {store_key(load_series(s).key) for s in _images(tmp_path)}
    assert len(keys) == 2
