"""RTSTRUCT import (contours to masks on the referenced series) and export, and the SR TID
1500 measurement report, read back by pydicom and highdicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from tests.seg_series import blobs, load, write_series
from viewer.labels.dicomseg import read_sources
from viewer.labels.document import Document
from viewer.labels.export import export_case
from viewer.labels.imports import import_labels_into
from viewer.labels.model import LabelSet, Polygon, RoiRect, Ruler, annotation_class
from viewer.labels.rtstruct import RtStructError, build_rtstruct, read_rtstruct
from viewer.labels.stats import label_stats, roi_stats

TABLE = LabelSet((annotation_class(2, "heart", "#c83232"), annotation_class(5, "spine", "#e6e6aa")))
GEOMETRIES = {
    "axial": {},
    "negated": {"row_cos": (-1.0, 0.0, 0.0), "col_cos": (0.0, -1.0, 0.0), "slice_sign": -1.0},
}


def _doc(volume) -> Document:
    doc = Document(volume.shape, volume.series_uid, TABLE)
    labels = blobs(volume.shape, 2, seed=7)
    doc.labelmap.array[labels == 1] = 2
    doc.labelmap.array[labels == 2] = 5
    doc.labelmap.array[2, 4:12, 4:14] = 2
    doc.labelmap.array[2, 6:9, 7:10] = 0  # a hole
    doc.labelmap.array[3, 15, 20] = 5  # a single voxel
    return doc


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_rtstruct_export_then_import_is_identical(tmp_path, geometry):
    write_series(tmp_path / "src", **GEOMETRIES[geometry])
    volume = load(tmp_path / "src")
    doc = _doc(volume)
    res = export_case(volume, doc, tmp_path / "out", ["rtstruct"], deid=False)
    ds = pydicom.dcmread(res.folder / "rtstruct.dcm")
    assert (
        ds.Modality == "RTSTRUCT"
        and ds.FrameOfReferenceUID == volume.meta["frame_of_reference_uid"]
    )
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["heart", "spine"]
    rt = read_rtstruct(res.folder / "rtstruct.dcm", volume)
    assert {(c.name, c.color) for c in rt.label_set} == {(c.name, c.color) for c in TABLE}
    by_name = {c.index: c.name for c in rt.label_set}
    back = np.zeros_like(doc.labelmap.array)
    for index, name in by_name.items():
        back[rt.array == index] = TABLE.by_name(name).index
    np.testing.assert_array_equal(back, doc.labelmap.array)

    fresh = Document(volume.shape, volume.series_uid)
    fresh.label_set = LabelSet(())
    message = import_labels_into(fresh, res.folder / "rtstruct.dcm", volume)
    assert "Imported RTSTRUCT rtstruct.dcm" in message
    for c in TABLE:
        got = fresh.label_set.by_name(c.name)
        np.testing.assert_array_equal(
            fresh.labelmap.array == got.index, doc.labelmap.array == c.index
        )


def test_a_known_polygon_fills_the_voxel_centres_inside_it(tmp_path):
    """A triangle in patient mm on slice 3: exactly the voxel centres inside it."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    write_series(tmp_path / "src", shape=(5, 30, 30), spacing_xyz=(1.0, 1.0, 2.0))
    volume = load(tmp_path / "src")
    doc = Document(volume.shape, volume.series_uid, TABLE)
    doc.labelmap.array[3, 1:3, 1:3] = 2
    ds = build_rtstruct(volume, doc.labelmap.array, TABLE, read_sources(volume))
    tri_yx = np.array([(4.3, 5.2), (20.6, 9.7), (11.1, 25.4)])
    zyx = np.c_[np.full(3, 3.0), tri_yx]
    lps = np.array([volume.index_to_patient(p) for p in zyx])
    contour = Dataset()
    contour.ContourGeometricType, contour.NumberOfContourPoints = "CLOSED_PLANAR", 3
    contour.ContourData = [f"{v:.4f}" for v in lps.reshape(-1)]
    ds.ROIContourSequence[0].ContourSequence = Seq([contour])
    ds.save_as(str(tmp_path / "tri.dcm"), enforce_file_format=True)
    rt = read_rtstruct(tmp_path / "tri.dcm", volume)
    yy, xx = np.mgrid[0:30, 0:30]

    def side(a, b):
        return (b[1] - a[1]) * (yy - a[0]) - (b[0] - a[0]) * (xx - a[1])

    a, b, c = tri_yx
    s1, s2, s3 = side(a, b), side(b, c), side(c, a)
    inside = ((s1 > 0) & (s2 > 0) & (s3 > 0)) | ((s1 < 0) & (s2 < 0) & (s3 < 0))
    expected = np.zeros(volume.shape, bool)
    expected[3] = inside
    np.testing.assert_array_equal(rt.array == rt.label_set.by_name("heart").index, expected)
    assert inside.sum() > 100


def test_pydicoms_rtstruct_imports_onto_a_series_of_its_frame_of_reference(tmp_path):
    from pydicom.data import get_testdata_file

    src = get_testdata_file("rtstruct.dcm")
    ds = pydicom.dcmread(src, force=True)
    for_uid = str(ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)
    # its 'patient' ROI: x in [-200, 200], y in [-150, 150] mm at z = -200, -190, -180
    write_series(tmp_path / "ct", shape=(3, 120, 120), spacing_xyz=(4.0, 4.0, 10.0),
                 origin=(-239.0, -239.0, -200.0), for_uid=for_uid)  # fmt: skip
    volume = load(tmp_path / "ct")
    rt = read_rtstruct(src, volume)
    patient = rt.label_set.by_name("patient")
    assert patient.color == "#dca078"
    mask = rt.array == patient.index
    assert [int(mask[z].sum()) for z in range(3)] == [100 * 75] * 3
    ys, xs = np.nonzero(mask[1])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (10, 109, 23, 97)
    assert any("Isocenter 1" in n for n in rt.notes)  # POINT ROIs: no closed contour
    other = tmp_path / "other"
    write_series(other, shape=(3, 20, 20))
    with pytest.raises(RtStructError, match="frame of reference"):
        read_rtstruct(src, load(other))


def test_sr_measurement_report_reads_back_through_highdicom(tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    write_series(tmp_path / "src")
    volume = load(tmp_path / "src")
    doc = _doc(volume)
    ruler = doc.add(Ruler(2, id="r1", start=(1.0, 2.0, 3.0), end=(4.0, 10.0, 15.0)))
    rect = doc.add(RoiRect(2, id="q1", z=2, bounds=(3.0, 4.0, 9.0, 12.0)))
    poly = doc.add(Polygon(5, id="p1", z=1, vertices=((2.0, 2.0), (2.0, 12.0), (10.0, 7.0))))
    res = export_case(volume, doc, tmp_path / "out", ["dicom-seg", "sr"], deid=False)
    assert "measurements.dcm" in res.files and "failed" not in res.info
    sr = hd.sr.srread(str(res.folder / "measurements.dcm"))
    seg = pydicom.dcmread(res.folder / "seg.dcm")
    parsed = sr.content  # the TID 1500 MeasurementReport
    planar = parsed.get_planar_roi_measurement_groups()
    by_id = {str(g.tracking_identifier): g for g in planar}
    lengths = [m.value for g in planar for m in g.get_measurements(name=codes.SCT.Length)]
    assert lengths == [pytest.approx(ruler.length_mm(volume.spacing), rel=1e-4)]
    areas = sorted(m.value for g in planar for m in g.get_measurements(name=codes.SCT.Area))
    expected = sorted([roi_stats(volume, rect).area_mm2, roi_stats(volume, poly).area_mm2])
    assert areas == pytest.approx(expected, rel=1e-4)
    assert len(by_id) == 3
    volumes = parsed.get_volumetric_roi_measurement_groups()
    got = {}
    for g in volumes:
        (m,) = g.get_measurements(name=codes.SCT.Volume)
        ref = g.referenced_segment[0].ReferencedSOPSequence[0]
        got[int(ref.ReferencedSegmentNumber)] = m.value
        assert ref.ReferencedSOPInstanceUID == seg.SOPInstanceUID
    expected_ml = {
        int(n): label_stats(volume, doc.labelmap.array, idx).volume_ml
        for n, idx in res.info["dicom_seg"]["segments"].items()
    }
    assert got == pytest.approx(expected_ml, rel=1e-4)


def test_cli_exports_seg_rtstruct_and_sr_deidentified_with_their_images(tmp_path, capsys):
    from viewer.cli import main
    from viewer.labels.seg_read import read_seg
    from viewer.labels.store import LabelStore

    write_series(tmp_path / "src")
    volume = load(tmp_path / "src")
    with LabelStore.open(volume) as store:
        doc = store.document
        doc.set_label_set(TABLE)
        mask = np.zeros(volume.shape[1:], bool)
        mask[4:10, 5:12] = True
        doc.paint(2, mask, 2)
        doc.paint(3, mask, 5)
        doc.add(Ruler(2, id="r1", start=(2.0, 4.0, 5.0), end=(2.0, 9.0, 11.0)))
        expected = doc.labelmap.array.copy()
    out = tmp_path / "export"
    rc = main(["export", str(tmp_path / "src"), "--format", "dicom-seg,rtstruct,sr",
               "--seg-type", "binary", "--with-image", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    (case,) = out.iterdir()
    names = {p.name for p in case.iterdir()}
    assert {"seg.dcm", "rtstruct.dcm", "measurements.dcm", "images"} <= names
    blob = b"".join(p.read_bytes() for p in case.rglob("*") if p.is_file())
    assert b"Doe^Jane" not in blob and b"PID-42" not in blob
    assert volume.series_uid.encode() not in blob
    deid_volume = load(case / "images")
    assert pydicom.dcmread(case / "seg.dcm").SegmentationType == "BINARY"
    np.testing.assert_array_equal(read_seg(case / "seg.dcm", deid_volume).array, expected)
    rt = read_rtstruct(case / "rtstruct.dcm", deid_volume)
    for c in TABLE:
        np.testing.assert_array_equal(
            rt.array == rt.label_set.by_name(c.name).index, expected == c.index
        )
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sr = hd.sr.srread(str(case / "measurements.dcm"))
    assert sr.PatientID == pydicom.dcmread(case / "seg.dcm").PatientID
    (group,) = sr.content.get_planar_roi_measurement_groups()
    (length,) = group.get_measurements(name=codes.SCT.Length)
    assert length.value == pytest.approx(np.hypot(5 * 0.9, 6 * 0.7), rel=1e-4)
    assert len(sr.content.get_volumetric_roi_measurement_groups()) == 2
