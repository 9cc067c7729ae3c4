"""DICOM-SEG round trips: export (LABELMAP and BINARY) then import gives the same voxels,
names and colours; highdicom and dcmqi (3D Slicer's converter) read the same voxels and
geometry as the NIfTI export, on an axial and a negated-orientation series."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.seg_series import blobs, load, write_series
from viewer.labels.deid import Deidentifier
from viewer.labels.document import Document
from viewer.labels.export import export_case
from viewer.labels.model import LabelSet, annotation_class
from viewer.labels.seg_read import SegImportError, import_seg_into, read_seg

SEGIMAGE2ITKIMAGE = Path("/work/main/.venv/bin/segimage2itkimage")
TABLE = LabelSet(
    (
        annotation_class(1, "liver", "#a0522d"),
        annotation_class(3, "lesion", "#12ab34"),
        annotation_class(7, "spleen", "#6a5acd"),
    )
)
GEOMETRIES = {
    "axial": {},
    # rows run right-to-left, columns anterior-to-posterior negated, slices toward the feet
    "negated": {"row_cos": (-1.0, 0.0, 0.0), "col_cos": (0.0, -1.0, 0.0), "slice_sign": -1.0},
}


def _document(volume) -> Document:
    doc = Document(volume.shape, volume.series_uid, TABLE)
    labels = blobs(volume.shape, 3)
    for k, index in zip((1, 2, 3), (1, 3, 7), strict=True):
        doc.labelmap.array[labels == k] = index
    return doc


@pytest.fixture(params=sorted(GEOMETRIES))
def case(request, tmp_path):
    write_series(tmp_path / "src", **GEOMETRIES[request.param])
    volume = load(tmp_path / "src")
    return volume, _document(volume)


@pytest.mark.parametrize("seg_type", ["labelmap", "binary"])
def test_export_then_import_is_identical(case, tmp_path, seg_type):
    volume, doc = case
    res = export_case(volume, doc, tmp_path / "out", ["dicom-seg"], deid=False, seg_type=seg_type)
    seg_info = res.info["dicom_seg"]
    assert seg_info["type"] == seg_type.upper()
    imp = read_seg(res.folder / "seg.dcm", volume)
    assert imp.seg_type == seg_type.upper() and imp.notes == []
    np.testing.assert_array_equal(imp.array, doc.labelmap.array)
    assert imp.label_set == TABLE  # indices, names and colours (RecommendedDisplayCIELabValue)

    fresh = Document(volume.shape, volume.series_uid)
    fresh.label_set = LabelSet(())  # a document with no classes yet
    import_seg_into(fresh, res.folder / "seg.dcm", volume)
    np.testing.assert_array_equal(fresh.labelmap.array, doc.labelmap.array)
    assert fresh.label_set == TABLE
    fresh.undo()  # one undo step takes the whole import back
    assert not fresh.labelmap.array.any() and len(fresh.label_set) == 0


def _nifti_mask(folder: Path):
    import nibabel as nib

    img = nib.load(str(folder / "mask.nii.gz"))
    return np.asarray(img.dataobj), img.affine


def _on_grid(array_zyx: np.ndarray, affine_lps: np.ndarray, volume) -> np.ndarray:
    """An image given by its (x, y, z) index->LPS affine placed on the volume's grid
    (axis-aligned, whole voxels: anything else fails the test)."""
    m = np.linalg.inv(volume.affine_lps) @ affine_lps
    assert np.allclose(np.abs(m[:3, :3]), np.round(np.abs(m[:3, :3])), atol=1e-3)
    out = np.zeros(volume.shape, np.uint8)
    zyx = np.argwhere(array_zyx)
    xyz1 = np.c_[zyx[:, ::-1], np.ones(len(zyx))]
    target = np.round(xyz1 @ m.T)[:, :3].astype(int)
    out[target[:, 2], target[:, 1], target[:, 0]] = array_zyx[tuple(zyx.T)]
    return out


@pytest.mark.parametrize("seg_type", ["labelmap", "binary"])
def test_highdicom_and_dcmqi_read_the_nifti_voxels_and_geometry(case, tmp_path, seg_type):
    import highdicom as hd
    import SimpleITK as sitk

    volume, doc = case
    res = export_case(
        volume, doc, tmp_path / "out", ["nifti", "dicom-seg"], deid=False, seg_type=seg_type
    )
    mask_xyz, affine_ras = _nifti_mask(res.folder)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    nifti = _on_grid(np.transpose(mask_xyz, (2, 1, 0)), ras_to_lps @ affine_ras, volume)
    np.testing.assert_array_equal(nifti, doc.labelmap.array)

    # highdicom: its volume (slice, row, column indices -> LPS affine) onto the same grid
    seg = hd.seg.segread(str(res.folder / "seg.dcm"))
    hvol = seg.get_volume(combine_segments=True, relabel=False)
    seg_to_index = {int(k): v for k, v in res.info["dicom_seg"]["segments"].items()}
    lut = np.zeros(256, np.uint8)
    for number, index in seg_to_index.items():
        lut[number] = index
    perm = np.zeros((4, 4))  # (x, y, z) index -> (slice, row, column) index
    perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1
    hd_on_grid = _on_grid(lut[np.asarray(hvol.array)], np.asarray(hvol.affine) @ perm, volume)
    np.testing.assert_array_equal(hd_on_grid, nifti)

    # dcmqi (segimage2itkimage, what 3D Slicer's QuantitativeReporting uses)
    if not SEGIMAGE2ITKIMAGE.exists():
        pytest.skip("dcmqi is not installed")
    out = tmp_path / "dcmqi"
    out.mkdir()
    run = subprocess.run(
        [str(SEGIMAGE2ITKIMAGE), "--inputDICOM", str(res.folder / "seg.dcm"),
         "--outputDirectory", str(out), "-t", "nrrd"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    meta = json.loads((out / "meta.json").read_text())
    dq = np.zeros(volume.shape, np.uint8)
    names = {}
    for f in sorted(out.glob("*.nrrd"), key=lambda p: int(p.stem)):
        img = sitk.ReadImage(str(f))
        aff = np.eye(4)
        aff[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
        aff[:3, 3] = img.GetOrigin()
        arr = sitk.GetArrayFromImage(img).astype(np.int64)
        placed = _on_grid(lut[arr].astype(np.uint8), aff, volume)
        dq[placed != 0] = placed[placed != 0]
    for group in meta["segmentAttributes"]:
        for s in group:
            names[lut[int(s["labelID"])]] = s["SegmentLabel"]
    np.testing.assert_array_equal(dq, nifti)
    assert names == {c.index: c.name for c in TABLE}


def test_a_deidentified_seg_is_not_shown_over_the_originals(tmp_path):
    write_series(tmp_path / "src")
    volume = load(tmp_path / "src")
    doc = _document(volume)
    res = export_case(volume, doc, tmp_path / "out", ["dicom-seg"], deidentifier=Deidentifier(b"s"))
    assert any("cannot be shown over the original images" in w for w in res.info["warnings"])
    assert res.info["dicom_seg"]["shown_over_originals"] is False
    with pytest.raises(SegImportError, match="de-identif"):
        read_seg(res.folder / "seg.dcm", volume)


def test_a_deidentified_seg_comes_with_the_images_it_references(tmp_path):
    write_series(tmp_path / "src")
    volume = load(tmp_path / "src")
    doc = _document(volume)
    res = export_case(
        volume, doc, tmp_path / "out", ["dicom-seg"], deidentifier=Deidentifier(b"s"),
        with_image=True,
    )  # fmt: skip
    assert "images" in res.info["dicom_seg"]
    assert not any("cannot be shown" in w for w in res.info["warnings"])
    # The written images load as a series the SEG lands on, voxel for voxel.
    shutil.copy(res.folder / "seg.dcm", tmp_path / "seg-elsewhere.dcm")
    deid_volume = load(res.folder / "images")
    assert deid_volume.series_uid != volume.series_uid
    assert str(deid_volume.meta.get("patient_name", "")) != "Doe^Jane"
    imp = read_seg(tmp_path / "seg-elsewhere.dcm", deid_volume)
    np.testing.assert_array_equal(imp.array, doc.labelmap.array)
    np.testing.assert_array_equal(deid_volume.array, volume.array)
