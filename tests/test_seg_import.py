"""DICOM-SEG import of what other writers make: FRACTIONAL (thresholded at 0.5, said so),
a SEG written by dcmqi (3D Slicer's converter) on its source, segments on a subset of frames,
multi-frame sources, and a SEG merged into a document that already has labels."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.seg_series import blobs, load, write_series
from viewer.labels.dicomseg import build_segmentation, read_sources
from viewer.labels.document import Document
from viewer.labels.export import export_case, write_nrrd
from viewer.labels.model import LabelSet, annotation_class
from viewer.labels.seg_read import SegImportError, import_seg_into, read_seg

ITKIMAGE2SEGIMAGE = Path("/work/main/.venv/bin/itkimage2segimage")


@pytest.fixture
def volume(tmp_path):
    write_series(tmp_path / "src")
    return load(tmp_path / "src")


def test_fractional_seg_is_thresholded_at_one_half_and_says_so(volume, tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    prob = np.zeros(volume.shape, np.float32)
    prob[2, 5:10, 6:12] = 0.8
    prob[2, 10:12, 6:12] = 0.4  # below one half: not in the segment
    prob[3, 5:10, 6:12] = 0.51
    seg = hd.seg.Segmentation(
        source_images=read_sources(volume),
        pixel_array=prob,
        segmentation_type="FRACTIONAL",
        fractional_type="PROBABILITY",
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=1, segment_label="tumour probability",
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.Tissue, algorithm_type="AUTOMATIC",
                algorithm_identification=hd.AlgorithmIdentificationSequence(
                    name="prob-net", family=codes.DCM.ArtificialIntelligence, version="2"),
            )
        ],
        series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="Other", manufacturer_model_name="x",
        software_versions="1", device_serial_number="1",
    )  # fmt: skip
    seg.save_as(str(tmp_path / "frac.dcm"))
    imp = read_seg(tmp_path / "frac.dcm", volume)
    assert imp.seg_type == "FRACTIONAL"
    assert any("thresholded at 0.5" in n for n in imp.notes)
    np.testing.assert_array_equal(imp.array, (prob > 0.5).astype(np.uint8))
    assert imp.automatic and imp.segments[0].algorithm_name == "prob-net"
    assert imp.label_set.get(1).name == "tumour probability"


def test_a_seg_written_by_dcmqi_imports_onto_its_source(volume, tmp_path):
    if not ITKIMAGE2SEGIMAGE.exists():
        pytest.skip("dcmqi is not installed")
    labels = np.zeros(volume.shape, np.uint8)
    labels[1:3, 4:9, 5:11] = 1
    labels[4, 12:16, 3:8] = 2
    write_nrrd(labels, volume, tmp_path / "labels.nrrd")
    code = {"CodeValue": "85756007", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Tissue"}
    meta = {
        "ContentCreatorName": "Reader^One", "ClinicalTrialSeriesID": "1",
        "ClinicalTrialTimePointID": "1", "SeriesDescription": "dcmqi seg", "SeriesNumber": "300",
        "InstanceNumber": "1", "BodyPartExamined": "",
        "segmentAttributes": [[
            {"labelID": 1, "SegmentLabel": "kidney", "SegmentAlgorithmType": "MANUAL",
             "recommendedDisplayRGBValue": [200, 40, 40],
             "SegmentedPropertyCategoryCodeSequence": code, "SegmentedPropertyTypeCodeSequence": code},
            {"labelID": 2, "SegmentLabel": "cyst", "SegmentAlgorithmType": "MANUAL",
             "recommendedDisplayRGBValue": [40, 200, 40],
             "SegmentedPropertyCategoryCodeSequence": code, "SegmentedPropertyTypeCodeSequence": code},
        ]],
        "ContentLabel": "SEG", "ContentDescription": "dcmqi",
        "ClinicalTrialCoordinatingCenterName": "test",
    }  # fmt: skip
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    run = subprocess.run(
        [str(ITKIMAGE2SEGIMAGE), "--inputImageList", str(tmp_path / "labels.nrrd"),
         "--inputDICOMDirectory", str(tmp_path / "src"), "--outputDICOM", str(tmp_path / "dq.dcm"),
         "--inputMetadata", str(tmp_path / "meta.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert pydicom.dcmread(tmp_path / "dq.dcm").Manufacturer != "RadLens"
    imp = read_seg(tmp_path / "dq.dcm", volume)
    np.testing.assert_array_equal(imp.array, labels)
    assert [(c.index, c.name) for c in imp.label_set] == [(1, "kidney"), (2, "cyst")]
    red = imp.label_set.get(1).color
    assert abs(int(red[1:3], 16) - 200) <= 2 and abs(int(red[3:5], 16) - 40) <= 2


def test_segments_on_a_subset_of_frames_land_on_their_slices(volume, tmp_path):
    table = LabelSet((annotation_class(5, "only here", "#00ff00"),))
    labels = np.zeros(volume.shape, np.uint8)
    labels[4, 3:6, 3:6] = 5  # one slice of six
    seg, _ = build_segmentation(volume, labels, table, read_sources(volume), seg_type="binary")
    assert int(seg.NumberOfFrames) == 1
    seg.save_as(str(tmp_path / "one.dcm"))
    np.testing.assert_array_equal(read_seg(tmp_path / "one.dcm", volume).array, labels)


def test_multi_frame_source_round_trip(tmp_path):
    import highdicom as hd

    write_series(tmp_path / "src")
    singles = [pydicom.dcmread(p) for p in sorted((tmp_path / "src").glob("*.dcm"))]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        singles, series_instance_uid=hd.UID(), series_number=5,
        sop_instance_uid=hd.UID(), instance_number=1,
    )  # fmt: skip
    (tmp_path / "mf").mkdir()
    enhanced.save_as(str(tmp_path / "mf" / "ct.dcm"))
    volume = load(tmp_path / "mf")
    assert len(set(volume.meta["source_files"])) == 1 and any(volume.meta["frame_index"])
    doc = Document(volume.shape, volume.series_uid)
    doc.labelmap.array[...] = np.where(blobs(volume.shape, 2, seed=3) > 0, 2, 0)
    for seg_type in ("labelmap", "binary"):
        res = export_case(
            volume, doc, tmp_path / seg_type, ["dicom-seg"], deid=False, seg_type=seg_type
        )
        ds = pydicom.dcmread(res.folder / "seg.dcm")
        ref = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        assert [r.ReferencedSOPInstanceUID for r in ref] == [enhanced.SOPInstanceUID]
        np.testing.assert_array_equal(
            read_seg(res.folder / "seg.dcm", volume).array, doc.labelmap.array
        )


def test_import_into_a_labelled_document_keeps_its_classes(volume, tmp_path):
    theirs = LabelSet((annotation_class(1, "tumour", "#ff00ff"),))
    labels = np.zeros(volume.shape, np.uint8)
    labels[2, 2:5, 2:5] = 1
    seg, _ = build_segmentation(volume, labels, theirs, read_sources(volume))
    seg.save_as(str(tmp_path / "t.dcm"))
    doc = Document(volume.shape, volume.series_uid)  # 1 lung, 2 nodule
    doc.labelmap.array[0, 0:2, 0:2] = 1  # lung is in use
    imp = import_seg_into(doc, tmp_path / "t.dcm", volume)
    tumour = doc.label_set.by_name("tumour")
    assert tumour.index not in (1, 2) and tumour.color == "#ff00ff"
    assert doc.label_set.get(1).name == "lung"
    assert any("imported as label" in n for n in imp.notes)
    assert int((doc.labelmap.array == tumour.index).sum()) == 9
    assert int((doc.labelmap.array == 1).sum()) == 4


def test_a_seg_of_another_frame_of_reference_is_refused(volume, tmp_path):
    write_series(tmp_path / "other")
    other = load(tmp_path / "other")
    labels = np.zeros(other.shape, np.uint8)
    labels[1, 1:3, 1:3] = 1
    seg, _ = build_segmentation(other, labels, LabelSet(), read_sources(other))
    seg.save_as(str(tmp_path / "o.dcm"))
    with pytest.raises(SegImportError, match="frame of reference"):
        read_seg(tmp_path / "o.dcm", volume)


def test_not_a_seg_is_refused_with_its_name(volume):
    with pytest.raises(SegImportError, match="not a DICOM-SEG"):
        read_seg(volume.meta["source_files"][0], volume)
