"""DICOM-SEG export from a small pydicom CT series: segments, frames, references after de-id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from viewer.labels.deid import Deidentifier
from viewer.labels.document import Document
from viewer.labels.export import export_case
from viewer.labels.model import Point
from viewer.study.volume import Volume

SALT = b"seg-test-salt"
PHI = {
    "PatientName": "Smith^Johnathan",
    "PatientID": "MRN-99887766",
    "PatientBirthDate": "19510713",
    "InstitutionName": "St Elsewhere Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "AccessionNumber": "ACC-5551212",
}


def write_ct_series(
    folder: Path,
    shape=(4, 16, 16),
    spacing=(0.8, 0.8, 2.5),
    extra: Callable[[Dataset], None] | None = None,
) -> tuple[Volume, dict]:
    """A tiny axial CT series written with pydicom (``extra`` adds to each slice's
    dataset); returns its Volume and its UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    uids = {"study": generate_uid(), "series": generate_uid(), "for": generate_uid(), "sops": []}
    files = []
    arr = (np.arange(np.prod(shape)).reshape(shape) % 400 - 200).astype(np.int16)
    for z in range(shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"slice{z:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        for k, v in PHI.items():
            setattr(ds, k, v)
        ds.PatientSex = "M"
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
        ds.FrameOfReferenceUID = uids["for"]
        ds.Modality, ds.StudyDate, ds.SeriesDate, ds.StudyTime = (
            "CT",
            "20240229",
            "20240229",
            "101500",
        )
        ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "S1", 3, z + 1
        ds.Manufacturer = "Phantom"
        ds.ImagePositionPatient = [-6.0, -6.0, z * spacing[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = shape[1], shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.add_new((0x0011, 0x0010), "LO", "ACME private")
        ds.add_new((0x0011, 0x1001), "LO", PHI["PatientName"])
        ds.PixelData = arr[z].tobytes()
        if extra is not None:
            extra(ds)
        ds.save_as(str(path), enforce_file_format=True)
        files.append(str(path))
        uids["sops"].append(sop)
    vol = Volume(
        arr,
        spacing=spacing,
        origin=(-6.0, -6.0, 0.0),
        modality="CT",
        series_uid=uids["series"],
        meta={"source_files": files, "patient_id": PHI["PatientID"], "patient_name": PHI["PatientName"],
              "study_uid": uids["study"], "study_date": "20240229", "sop_instance_uids": uids["sops"]},
    )  # fmt: skip
    return vol, uids


@pytest.fixture
def series(tmp_path):
    return write_ct_series(tmp_path / "src")


def _doc(vol: Volume) -> Document:
    doc = Document(vol.shape, vol.series_uid)
    doc.labelmap.array[1, 2:6, 2:6] = 1
    doc.labelmap.array[2, 8:12, 8:12] = 2
    doc.labelmap.array[2, 2:4, 2:4] = 1
    doc.add(Point(2, zyx=(2, 10, 10)))
    return doc


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_dicom_seg_segments_frames_and_deidentified_references(series, tmp_path):
    import highdicom as hd

    vol, uids = series
    src_before = _hashes(tmp_path / "src")
    d = Deidentifier(SALT)
    res = export_case(
        vol, _doc(vol), tmp_path / "out", ["dicom-seg"], deidentifier=d, seg_type="binary"
    )
    seg = hd.seg.segread(str(res.folder / "seg.dcm"))

    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lung", "nodule"]
    assert seg.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "27925004"
    # omit_empty_frames: lung on slices 1 and 2, nodule on slice 2 -> 3 frames
    assert int(seg.NumberOfFrames) == 3
    # References point to the remapped UIDs of the source, consistently.
    ref_series = seg.ReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == d.uid(uids["series"])
    refs = {r.ReferencedSOPInstanceUID for r in ref_series.ReferencedInstanceSequence}
    assert refs == {d.uid(s) for s in uids["sops"]}
    assert seg.StudyInstanceUID == d.uid(uids["study"])
    assert seg.FrameOfReferenceUID == d.uid(uids["for"])
    assert seg.PatientID == d.pseudonym(PHI["PatientID"]) == str(seg.PatientName).rstrip("^")
    assert seg.StudyDate != "20240229" and seg.PatientIdentityRemoved == "YES"
    # Pixels: segment 2 (nodule) on slice 2 is exactly the drawn square.
    labels = seg.get_volume(combine_segments=True, relabel=False).array  # slices 1..2 only
    assert int((labels == 2).sum()) == 16 and int((labels == 1).sum()) == 20
    assert _hashes(tmp_path / "src") == src_before  # sources untouched


def test_same_source_exported_twice_gets_the_same_remapped_uids(series, tmp_path):
    vol, uids = series
    a = export_case(vol, _doc(vol), tmp_path / "a", ["dicom-seg"], deidentifier=Deidentifier(SALT))
    b = export_case(vol, _doc(vol), tmp_path / "b", ["dicom-seg"], deidentifier=Deidentifier(SALT))
    sa, sb = (pydicom.dcmread(r.folder / "seg.dcm") for r in (a, b))
    assert (
        sa.ReferencedSeriesSequence[0].SeriesInstanceUID
        == sb.ReferencedSeriesSequence[0].SeriesInstanceUID
    )
    assert sa.StudyDate == sb.StudyDate and a.case_id == b.case_id


def test_no_identifier_of_the_source_appears_in_any_exported_file(series, tmp_path):
    vol, uids = series
    res = export_case(
        vol, _doc(vol), tmp_path / "out", ["nifti", "nrrd", "dicom-seg", "json", "csv", "coco"],
        with_image=True, deidentifier=Deidentifier(SALT),
    )  # fmt: skip
    src = pydicom.dcmread(vol.meta["source_files"][0])
    secrets = [*PHI.values(), "Smith", "19510713", "20240229", uids["study"], uids["series"], uids["for"],
               *uids["sops"], str(src.file_meta.MediaStorageSOPInstanceUID)]  # fmt: skip
    # every file, the de-identified images the SEG references (images/) included
    blob = b"".join(p.read_bytes() for p in res.folder.rglob("*") if p.is_file())
    import gzip

    for p in res.folder.glob("*.gz"):
        blob += gzip.decompress(p.read_bytes())
    found = [s for s in secrets if s.encode() in blob]
    assert found == []
    assert {p.name for p in res.folder.iterdir()} >= {"seg.dcm", "mask.nii.gz", "export.json"}


def test_no_deid_keeps_original_references(series, tmp_path):
    vol, uids = series
    res = export_case(
        vol, _doc(vol), tmp_path / "out", ["dicom-seg"], deid=False, deidentifier=Deidentifier(SALT)
    )
    seg = pydicom.dcmread(res.folder / "seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uids["series"]
    assert seg.PatientID == PHI["PatientID"]


def test_dicom_seg_without_source_files_is_a_clear_error(tmp_path):
    from viewer.labels.dicomseg import SegExportError

    vol = Volume(np.zeros((2, 8, 8), np.int16), series_uid="1.2.3", modality="CT")
    doc = Document(vol.shape, vol.series_uid)
    doc.labelmap.array[0, 1, 1] = 1
    with pytest.raises(SegExportError, match="not loaded from DICOM"):
        export_case(vol, doc, tmp_path, ["dicom-seg"], deidentifier=Deidentifier(SALT))
    assert list(tmp_path.iterdir()) == []


#: What the attack found in the de-identified SEG (and what the de-identifier missed).
MORE_PHI = {
    "MedicalAlerts": "Penicillin alert",
    "Allergies": "Peanut allergy",
    "ResponsiblePerson": "Guardian^Gertrude",
    "ConsultingPhysicianName": "Consult^Connie",
    "ReferringPhysicianAddress": "12 Harley Street",
    "ReferringPhysicianTelephoneNumbers": "555-0199",
    "CountryOfResidence": "Freedonia",
    "RegionOfResidence": "Upper Sylvania",
    "OtherPatientNames": "Alias^Alice",
}
NESTED_NAME = "Nested^Nigel"


def _more_phi(ds: Dataset) -> None:
    for k, v in MORE_PHI.items():
        setattr(ds, k, v)
    person = Dataset()
    person.PersonName = NESTED_NAME  # a PN inside a sequence
    person.add_new((0x0011, 0x0010), "LO", "ACME")
    person.add_new((0x0011, 0x1001), "LO", NESTED_NAME)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-D3000", "SRT", "Chest"
    code.ContentCreatorName = NESTED_NAME  # nested in a sequence the table keeps
    ds.AnatomicRegionSequence = [code]
    ds.AcquisitionContextSequence = [person]
    ds.PerformingPhysicianName = NESTED_NAME
    ds.PatientBirthName = "Birth^Betty"


def _walk(ds: Dataset, path: str = ""):
    for elem in ds:
        yield f"{path}{elem.keyword or elem.tag}", elem
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                yield from _walk(item, f"{path}{elem.keyword}[{i}].")


def test_written_seg_carries_only_what_the_profile_keeps(tmp_path):
    vol, uids = write_ct_series(tmp_path / "src", extra=_more_phi)
    d = Deidentifier(SALT)
    res = export_case(vol, _doc(vol), tmp_path / "out", ["dicom-seg"], deidentifier=d)
    seg = pydicom.dcmread(res.folder / "seg.dcm")
    secrets = [*PHI.values(), *MORE_PHI.values(), NESTED_NAME, "Nested", "Smith", "Birth^Betty",
               "19510713", "20240229", uids["study"], uids["series"], uids["for"], *uids["sops"]]  # fmt: skip
    leaks, names = [], []
    for where, elem in _walk(seg):
        assert not elem.tag.is_private, where
        if elem.VR == "SQ":
            continue
        text = str(elem.value) if elem.value not in (None, "") else ""
        leaks += [f"{where}: {s}" for s in secrets if s and s in text]
        if elem.VR == "PN" and text:
            names.append((where, text))
    assert leaks == []
    pseudo = d.pseudonym(PHI["PatientID"])
    assert names == [("PatientName", f"{pseudo}^")]
    for kw in MORE_PHI:
        assert kw not in seg or seg[kw].value in (None, ""), kw
    # StudyTime: kept under the modified-dates option (dates move by whole days); the date moved.
    assert seg.StudyTime == "101500" and seg.StudyDate == d.shift_date(
        "20240229", d.date_shift(PHI["PatientID"])
    )
    assert seg.PatientIdentityRemoved == "YES" and seg.DeidentificationMethod
    codes = [c.CodeValue for c in seg.DeidentificationMethodCodeSequence]
    assert codes[:2] == ["113100", "113107"]
    assert seg.LongitudinalTemporalInformationModified == "MODIFIED"
    info = __import__("json").loads((res.folder / "export.json").read_text())
    assert [o["code"] for o in info["deid"]["options"]] == codes
    assert info["deid"]["table_rows"] == 621
    src = pydicom.dcmread(vol.meta["source_files"][0])
    assert src.Allergies == MORE_PHI["Allergies"]  # the source is never written
