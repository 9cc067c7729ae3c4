"""Export: NIfTI/NRRD masks keep geometry, JSON/CSV/COCO carry voxel and mm coordinates,
re-import is exact, and nothing is overwritten without asking."""

from __future__ import annotations

import csv
import io
import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from phantoms.chest import NODULE, chest_ct
from viewer.labels.deid import Deidentifier
from viewer.labels.document import Document
from viewer.labels.export import ExportError, export_case
from viewer.labels.findings import propose
from viewer.labels.imports import LabelImportError, import_annotations, import_mask
from viewer.labels.model import Box, Point, RoiEllipse, RoiRect, Ruler
from viewer.labels.stats import roi_stats
from viewer.study.volume import Volume

SALT = b"test-salt"


def _oblique_direction() -> np.ndarray:
    """Columns x, y, z: rotated 20 degrees about z then 10 about x (a tilted, oblique grid)."""
    a, b = np.radians(20), np.radians(10)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ rz


@pytest.fixture(scope="module")
def phantom():
    ct = chest_ct(
        shape=(24, 48, 48), seed=3, n_nodules=1, nodule_radius_mm=(12.0, 14.0), vessels=False
    )
    vol = Volume(
        ct.hu,
        spacing=ct.spacing,
        origin=(-120.5, 80.25, -301.0),
        direction=_oblique_direction(),
        modality="CT",
        series_uid="1.2.826.0.1.3680043.8.498.777",
        meta={"patient_id": "PAT-0042", "patient_name": "Doe^Jane", "study_date": "20240131"},
    )
    return ct, vol


def _doc(ct, vol) -> Document:
    doc = Document(vol.shape, vol.series_uid)
    doc.labelmap.array[:] = ct.labels
    n = ct.nodules[0]
    lo, hi = n.box_zyx(ct.spacing)
    doc.add(Box(2, id="nodbox", corners=(*lo, *hi)))
    doc.add(Box(2, id="box2d", corners=(10, 11, 20, 22), z=5))
    doc.add(Point(2, id="pt", zyx=n.center_zyx))
    doc.add(Ruler(1, id="ruler", start=(3, 4, 5), end=(3, 10, 13)))
    doc.add(RoiEllipse(1, id="roi", z=12, bounds=(10, 10, 20, 20)))
    return doc


def test_nifti_round_trip_keeps_voxels_and_nodule_position_on_oblique_grid(phantom, tmp_path):
    ct, vol = phantom
    doc = _doc(ct, vol)
    res = export_case(
        vol, doc, tmp_path, ["nifti"], with_image=True, deidentifier=Deidentifier(SALT)
    )
    mask_path = res.folder / "mask.nii.gz"

    sitk_img = sitk.ReadImage(str(mask_path))
    assert np.array_equal(sitk.GetArrayFromImage(sitk_img), ct.labels)
    nib_img = nib.load(str(mask_path))
    assert np.array_equal(np.transpose(np.asanyarray(nib_img.dataobj), (2, 1, 0)), ct.labels)
    image = nib.load(str(res.folder / "image.nii.gz"))
    assert np.array_equal(np.transpose(np.asanyarray(image.dataobj), (2, 1, 0)), ct.hu)

    # Where is the nodule? Its centroid in the exported file, in each reader's physical space,
    # must be the phantom's known centre (Volume.index_to_patient), within half a voxel.
    known_lps = vol.index_to_patient(ct.nodules[0].center_zyx)
    zyx = np.argwhere(ct.labels == NODULE).mean(axis=0)
    ras = nib_img.affine @ np.array([zyx[2], zyx[1], zyx[0], 1.0])
    nib_lps = ras[:3] * [-1, -1, 1]
    sitk_lps = np.array(
        sitk_img.TransformContinuousIndexToPhysicalPoint(tuple(map(float, zyx[::-1])))
    )
    half_voxel = 0.5 * np.linalg.norm(vol.spacing)
    assert np.linalg.norm(nib_lps - known_lps) <= half_voxel
    assert np.linalg.norm(sitk_lps - known_lps) <= half_voxel
    assert np.allclose(nib_lps, sitk_lps, atol=1e-3)
    assert np.allclose(sitk_img.GetDirection(), vol.direction.reshape(-1), atol=1e-5)
    assert nib_img.header["sform_code"] == 1 and nib_img.header["qform_code"] == 1


def test_nrrd_export_keeps_geometry(phantom, tmp_path):
    ct, vol = phantom
    res = export_case(vol, _doc(ct, vol), tmp_path, ["nrrd"], deidentifier=Deidentifier(SALT))
    img = sitk.ReadImage(str(res.folder / "mask.nrrd"))
    assert np.array_equal(sitk.GetArrayFromImage(img), ct.labels)
    assert np.allclose(img.GetOrigin(), vol.origin) and np.allclose(img.GetSpacing(), vol.spacing)


def test_nifti_mask_reimports_onto_the_series_and_mismatch_is_refused(phantom, tmp_path):
    ct, vol = phantom
    res = export_case(vol, _doc(ct, vol), tmp_path, ["nifti"], deidentifier=Deidentifier(SALT))
    assert np.array_equal(import_mask(res.folder / "mask.nii.gz", vol).array, ct.labels)
    shifted = Volume(vol.array, vol.spacing, (0.0, 0.0, 0.0), vol.direction, series_uid="x")
    with pytest.raises(LabelImportError, match="origin"):
        import_mask(res.folder / "mask.nii.gz", shifted)
    other = Volume(vol.array[:-1], vol.spacing, vol.origin, vol.direction, series_uid="y")
    with pytest.raises(LabelImportError, match="mask.nii.gz: label map is 48x48x24|the series is"):
        import_mask(res.folder / "mask.nii.gz", other)


def test_json_export_reimports_identical_annotations(phantom, tmp_path):
    ct, vol = phantom
    doc = _doc(ct, vol)
    propose(doc, "det", "1.0", boxes=[((1, 2, 3), (4, 5, 6), 2, 0.7)])
    res = export_case(vol, doc, tmp_path, ["json"], deidentifier=Deidentifier(SALT))
    anns, table = import_annotations(res.folder / "annotations.json")
    assert {a.id: a for a in anns} == doc.annotations
    assert table == doc.label_set
    rec = {
        r["id"]: r for r in json.loads((res.folder / "annotations.json").read_text())["annotations"]
    }
    assert np.allclose(
        rec["pt"]["points_patient_lps_mm"][0], vol.index_to_patient(ct.nodules[0].center_zyx)
    )
    assert rec["ruler"]["length_mm"] == pytest.approx(
        np.hypot(6 * vol.spacing[1], 8 * vol.spacing[0])
    )
    assert rec["roi"]["stats"]["voxels"] > 0


def test_csv_has_voxel_and_mm_columns_and_roi_stats(phantom, tmp_path):
    ct, vol = phantom
    res = export_case(vol, _doc(ct, vol), tmp_path, ["csv"], deidentifier=Deidentifier(SALT))
    rows = {
        r["id"]: r for r in csv.DictReader(open(res.folder / "annotations.csv", encoding="utf-8"))
    }
    p = rows["pt"]
    mm = vol.index_to_patient((float(p["z0"]), float(p["y0"]), float(p["x0"])))
    assert np.allclose([float(p["x0_mm"]), float(p["y0_mm"]), float(p["z0_mm"])], mm)
    stats = roi_stats(vol, RoiEllipse(1, z=12, bounds=(10, 10, 20, 20)))
    assert float(rows["roi"]["mean"]) == pytest.approx(stats.mean)
    assert float(rows["roi"]["area_mm2"]) == pytest.approx(stats.area_mm2)
    assert rows["roi"]["area_mm2"] != "" and rows["ruler"]["length_mm"] != ""


def test_coronal_roi_on_the_nodule_measures_nodule_hu_and_exports_its_voxels(phantom, tmp_path):
    ct, vol = phantom
    cz, cy, cx = (int(round(v)) for v in ct.nodules[0].center_zyx)
    # A rectangle inside the nodule (2 x 3 voxels), on the coronal slice through its centre.
    roi = RoiRect(2, id="cor", z=cy, bounds=(cz, cx - 1, cz + 1, cx + 1), axis=1)
    stats = roi_stats(vol, roi)
    inside = ct.hu[cz : cz + 2, cy, cx - 1 : cx + 2]
    assert (ct.labels[cz : cz + 2, cy, cx - 1 : cx + 2] == NODULE).all()
    assert stats.voxels == 6 and stats.mean == pytest.approx(float(inside.mean()))
    assert stats.mean > ct.hu[ct.labels == 1].mean() + 300  # nodule tissue, not the lung
    sx, _, sz = vol.spacing
    assert stats.area_mm2 == pytest.approx(6 * sx * sz)  # in the coronal plane, not axial
    doc = Document(vol.shape, vol.series_uid)
    doc.add(roi)
    res = export_case(vol, doc, tmp_path, ["json", "csv"], deidentifier=Deidentifier(SALT))
    (rec,) = json.loads((res.folder / "annotations.json").read_text())["annotations"]
    assert rec["points_voxel_zyx"] == [[cz, cy, cx - 1], [cz + 1, cy, cx + 1]]
    lo_mm = vol.index_to_patient((cz, cy, cx - 1))
    assert np.allclose(rec["points_patient_lps_mm"][0], lo_mm)
    assert rec["stats"]["mean"] == pytest.approx(stats.mean)
    (row,) = csv.DictReader(open(res.folder / "annotations.csv", encoding="utf-8"))
    assert row["axis"] == "1" and float(row["y0"]) == cy and float(row["x1"]) == cx + 1
    anns, _ = import_annotations(res.folder / "annotations.json")
    assert anns == [roi]


def test_coco_has_one_image_per_slice_with_2d_boxes(tmp_path):
    from phantoms.chest import chest_radiograph

    xr = chest_radiograph(size=64, seed=1, nodule=True)
    vol = Volume(xr.image, spacing=(*xr.spacing, 1.0), modality="DX", series_uid="1.2.3.4.5")
    doc = Document(vol.shape, vol.series_uid)
    y0, x0, y1, x1 = xr.box_yx
    doc.add(Box(2, id="b", corners=(y0, x0, y1, x1), z=0))
    res = export_case(vol, doc, tmp_path, ["coco"], deidentifier=Deidentifier(SALT))
    data = json.loads((res.folder / "coco.json").read_text())
    assert len(data["images"]) == 1 and data["images"][0]["width"] == 64
    (ann,) = data["annotations"]
    assert ann["bbox"] == pytest.approx([x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1])
    assert {c["name"] for c in data["categories"]} >= {"nodule"}


def test_existing_export_is_not_overwritten_unless_asked(phantom, tmp_path):
    ct, vol = phantom
    doc = _doc(ct, vol)
    first = export_case(vol, doc, tmp_path, ["json"], deidentifier=Deidentifier(SALT))
    before = (first.folder / "annotations.json").read_bytes()
    doc.remove("pt")
    with pytest.raises(ExportError, match="already exists"):
        export_case(vol, doc, tmp_path, ["json"], deidentifier=Deidentifier(SALT))
    assert (first.folder / "annotations.json").read_bytes() == before
    again = export_case(
        vol, doc, tmp_path, ["json"], overwrite=True, deidentifier=Deidentifier(SALT)
    )
    assert again.folder == first.folder
    assert '"id": "pt"' not in (again.folder / "annotations.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == [first.case_id]  # no temp folders left


def test_export_json_describes_case_for_the_training_station(phantom, tmp_path):
    ct, vol = phantom
    res = export_case(
        vol, _doc(ct, vol), tmp_path, ["nifti", "json"], deidentifier=Deidentifier(SALT)
    )
    info = json.loads((res.folder / "export.json").read_text())
    assert info["case_id"] == res.folder.name
    assert info["patient_id"].startswith("RL-") and info["patient_id"] != "PAT-0042"
    assert info["shape_zyx"] == list(vol.shape) and np.allclose(info["direction"], vol.direction)
    assert info["labels"]["2"]["voxels"] == int((ct.labels == 2).sum())
    assert info["deid"]["enabled"] is True
    assert set(json.loads((res.folder / "label_table.json").read_text())) == {"1", "2", "3"}


def test_imports_into_a_document_are_single_undo_steps(phantom, tmp_path):
    from viewer.labels.imports import import_annotations_into, import_mask_into

    ct, vol = phantom
    res = export_case(
        vol, _doc(ct, vol), tmp_path, ["nifti", "json"], deidentifier=Deidentifier(SALT)
    )
    doc = Document(vol.shape, vol.series_uid)
    import_mask_into(doc, res.folder / "mask.nii.gz", vol)
    import_annotations_into(doc, res.folder / "annotations.json")
    assert np.array_equal(doc.labelmap.array, ct.labels) and len(doc.annotations) == 5
    doc.undo()
    assert not doc.annotations and np.array_equal(doc.labelmap.array, ct.labels)
    doc.undo()
    assert not doc.labelmap.array.any()
    with pytest.raises(LabelImportError, match="already in this series"):
        import_annotations_into(_doc(ct, vol), res.folder / "annotations.json")


def test_without_pixel_spacing_json_and_csv_give_pixels_never_millimetres():
    from viewer.labels.export_records import annotation_record, annotations_csv

    image = np.arange(64 * 64, dtype=np.int16).reshape(1, 64, 64)
    bare = Volume(image, (0.5, 0.5, 1.0), modality="US", meta={"spacing_source": "none"})
    doc = Document(bare.shape, "us")
    doc.add(Ruler(1, id="ruler", start=(0, 4, 5), end=(0, 10, 13)))
    doc.add(RoiRect(1, id="roi", z=0, bounds=(10, 10, 20, 20)))
    doc.add(Box(1, id="box", corners=(10, 11, 20, 22), z=0))
    rec = {a.id: annotation_record(a, bare, doc) for a in doc.annotations.values()}
    assert rec["ruler"]["length_px"] == pytest.approx(10.0) and "length_mm" not in rec["ruler"]
    assert rec["roi"]["stats"]["area_px"] > 0
    assert "area_mm2" not in rec["roi"]["stats"] and "volume_ml" not in rec["roi"]["stats"]
    assert rec["box"]["size_px_zyx"][1:] == [11.0, 12.0] and "size_mm_zyx" not in rec["box"]
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(annotations_csv(rec.values())))}
    assert float(rows["ruler"]["length_px"]) == pytest.approx(10.0)
    assert rows["ruler"]["length_mm"] == "" and rows["roi"]["area_mm2"] == ""
    assert int(rows["roi"]["area_px"]) == rec["roi"]["stats"]["area_px"]
