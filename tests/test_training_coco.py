"""The training loader reads 2D boxes from coco.json when annotations.json has none."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.training.dataset import DatasetError, load_dataset, write_case


def _radiograph_export(tmp_path, formats):
    from viewer.labels.deid import Deidentifier
    from viewer.labels.document import Document
    from viewer.labels.export import export_case
    from viewer.labels.model import Box
    from viewer.study.volume import Volume

    img = np.random.default_rng(0).normal(size=(1, 40, 48)).astype(np.float32)
    vol = Volume(img, spacing=(0.2, 0.3, 1.0), modality="DX", series_uid="1.2.3.9")
    doc = Document(vol.shape, vol.series_uid)
    doc.add(Box(1, corners=(5, 7, 12, 20), z=0))
    doc.add(Box(2, corners=(30, 31, 30, 31), z=0))  # a single pixel
    doc.add(Box(1, corners=(1, 1, 3, 3), z=0, status="rejected"))
    export_case(vol, doc, tmp_path, formats, with_image=True, deidentifier=Deidentifier(b"s"))
    return load_dataset(tmp_path)


def test_coco_only_export_gives_the_same_boxes_as_annotations_json(tmp_path):
    via_coco = _radiograph_export(tmp_path / "coco", ["nifti", "coco"])
    via_json = _radiograph_export(tmp_path / "json", ["nifti", "json"])
    (a,), (b,) = via_coco.cases, via_json.cases
    assert not (a.image_path.parent / "annotations.json").exists()
    got = sorted(zip(a.boxes, a.box_labels, strict=True))
    assert got == [
        ((0, 5, 7, 0, 12, 20), 1),
        ((0, 30, 31, 0, 30, 31), 2),
    ]
    assert got == sorted(zip(b.boxes, b.box_labels, strict=True))


def test_hand_written_coco_bbox_converts_pixel_edges_to_voxel_centres(tmp_path):
    folder = write_case(tmp_path, "c1", np.zeros((20, 30), np.float32), None, (1, 1, 1), {})
    (folder / "annotations.json").unlink()
    (folder / "label_table.json").unlink()
    coco = {
        "images": [{"id": 7, "file_name": "x.png", "width": 30, "height": 20}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 4, 10, 5]}],
        "categories": [{"id": 3, "name": "nodule"}],
    }
    (folder / "coco.json").write_text(json.dumps(coco), encoding="utf-8")
    ds = load_dataset(tmp_path)
    (case,) = ds.cases
    # x from 2 to 12 pixel edges -> centres 2.5..11.5; y 4..9 -> 4.5..8.5
    assert case.boxes == ((0.0, 4.5, 2.5, 0.0, 8.5, 11.5),)
    assert case.box_labels == (3,) and ds.labels == {3: "nodule"}


def test_annotations_json_boxes_win_over_coco(tmp_path):
    folder = write_case(
        tmp_path, "c1", np.zeros((20, 30), np.float32), None, (1, 1, 1), {1: "a"},
        boxes=[(0, 1, 1, 0, 2, 2)], box_labels=[1],
    )  # fmt: skip
    coco = {"annotations": [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 3, 3]}]}
    (folder / "coco.json").write_text(json.dumps(coco), encoding="utf-8")
    assert load_dataset(tmp_path).cases[0].boxes == ((0, 1, 1, 0, 2, 2),)


def test_malformed_coco_box_names_the_case_and_file(tmp_path):
    folder = write_case(tmp_path, "c9", np.zeros((20, 30), np.float32), None, (1, 1, 1), {})
    (folder / "annotations.json").unlink()
    (folder / "coco.json").write_text(
        json.dumps({"annotations": [{"category_id": 1, "bbox": [1, 2, 0, 4]}]}), encoding="utf-8"
    )
    with pytest.raises(DatasetError, match=r"case c9: coco\.json"):
        load_dataset(tmp_path)
