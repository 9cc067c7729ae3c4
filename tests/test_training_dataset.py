"""Dataset assembly from exported labels and the deterministic patient split."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from inference.training.dataset import (
    DatasetError,
    TrainingCase,
    load_dataset,
    split_by_patient,
    write_case,
)

LABELS = {1: "lung", 2: "nodule"}


def _tiny(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 10, (4, 8, 6)).astype(np.int16)
    lab = np.zeros((4, 8, 6), np.uint8)
    lab[1:3, 2:6, 1:4] = 1
    return img, lab


def test_export_layout_round_trips_arrays_in_zyx_order(tmp_path):
    img, lab = _tiny(0)
    write_case(
        tmp_path,
        "c1",
        img,
        lab,
        (0.5, 0.7, 2.0),
        LABELS,
        patient_id="p1",
        boxes=[(1, 2, 1, 2, 5, 3)],
        box_labels=[2],
    )
    ds = load_dataset(tmp_path)
    (case,) = ds.cases
    assert case.patient_id == "p1" and case.modality == "CT"
    assert ds.labels == LABELS
    arr, geo = case.load_image()
    assert arr.shape == (4, 8, 6) and np.array_equal(arr, img)
    assert geo.spacing == pytest.approx((0.5, 0.7, 2.0))
    assert np.array_equal(case.load_label()[0], lab)
    assert case.boxes == ((1.0, 2.0, 1.0, 2.0, 5.0, 3.0),) and case.box_labels == (2,)


def test_mismatched_label_geometry_names_the_case(tmp_path):
    img, lab = _tiny(1)
    folder = write_case(tmp_path, "case-07", img, lab, (1.0, 1.0, 1.0), LABELS)
    # Overwrite the mask with one on a different grid (a crop).
    nib.save(
        nib.Nifti1Image(np.transpose(lab[:, :7], (2, 1, 0)), np.diag([-1, -1, 1, 1.0])),
        str(folder / "mask.nii.gz"),
    )
    with pytest.raises(
        DatasetError, match=r"case case-07: .*different grids \(size 4x8x6 vs 4x7x6\)"
    ):
        load_dataset(tmp_path)


def test_mismatched_spacing_is_reported(tmp_path):
    img, lab = _tiny(1)
    folder = write_case(tmp_path, "c", img, lab, (1.0, 1.0, 1.0), LABELS)
    nib.save(
        nib.Nifti1Image(np.transpose(lab, (2, 1, 0)), np.diag([-1, -1, 2, 1.0])),
        str(folder / "mask.nii.gz"),
    )
    with pytest.raises(DatasetError, match="case c: .*spacing"):
        load_dataset(tmp_path)


def test_images_tr_labels_tr_layout_is_a_dataset(tmp_path):
    img, lab = _tiny(2)
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    aff = np.diag([-1, -1, 1, 1.0])
    nib.save(
        nib.Nifti1Image(np.transpose(img, (2, 1, 0)), aff), str(tmp_path / "imagesTr/a_0000.nii.gz")
    )
    nib.save(
        nib.Nifti1Image(np.transpose(lab, (2, 1, 0)), aff), str(tmp_path / "labelsTr/a.nii.gz")
    )
    (tmp_path / "dataset.json").write_text(
        '{"labels": {"background": 0, "lung": 1}, "channel_names": {"0": "CT"}}'
    )
    ds = load_dataset(tmp_path)
    assert [c.case_id for c in ds.cases] == ["a"] and ds.labels == {1: "lung"}
    assert ds.layout == "imagesTr-labelsTr" and ds.cases[0].modality == "CT"


def test_missing_label_in_images_tr_layout_is_a_clear_error(tmp_path):
    img, _ = _tiny(3)
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp_path / "imagesTr/b.nii.gz"))
    with pytest.raises(DatasetError, match="case b: b.nii.gz has no labelsTr/b.nii.gz"):
        load_dataset(tmp_path)


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no cases found"):
        load_dataset(tmp_path)


def _cases(n_patients: int, per_patient: int = 2) -> list[TrainingCase]:
    return [
        TrainingCase(case_id=f"p{p}-s{s}", patient_id=f"p{p}", image_path=None, label_path=None)  # type: ignore[arg-type]
        for p in range(n_patients)
        for s in range(per_patient)
    ]


def test_split_keeps_each_patient_on_one_side_and_is_deterministic():
    cases = _cases(10)
    train, val = split_by_patient(cases, 0.2, seed=3)
    assert len({c.patient_id for c in val}) == 2
    assert not {c.patient_id for c in train} & {c.patient_id for c in val}
    again = split_by_patient(list(reversed(cases)), 0.2, seed=3)
    assert {c.case_id for c in again[1]} == {c.case_id for c in val}
    other_seeds = {
        frozenset(c.patient_id for c in split_by_patient(cases, 0.2, s)[1]) for s in range(8)
    }
    assert len(other_seeds) > 1  # the seed really changes the split


def test_split_of_two_patients_keeps_one_for_validation():
    train, val = split_by_patient(_cases(2), 0.1, seed=0)
    assert len({c.patient_id for c in val}) == 1 and len({c.patient_id for c in train}) == 1


def test_a_real_labels_export_is_a_training_case_with_its_geometry(tmp_path):
    """The labels exporter's own output (oblique grid, pseudonymous patient) reads back exactly."""
    from phantoms.chest import chest_ct
    from viewer.labels.deid import Deidentifier
    from viewer.labels.document import Document
    from viewer.labels.export import export_case
    from viewer.labels.model import Box
    from viewer.study.volume import Volume

    ct = chest_ct(shape=(8, 24, 24), seed=1, n_nodules=1, nodule_radius_mm=(20.0, 22.0))
    a = np.radians(15)
    direction = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    vol = Volume(
        ct.hu,
        spacing=ct.spacing,
        origin=(-10.0, 5.0, -40.0),
        direction=direction,
        modality="CT",
        series_uid="1.2.3.4.5",
        meta={"patient_id": "PAT-1"},
    )
    doc = Document(vol.shape, vol.series_uid)
    doc.labelmap.array[:] = ct.labels
    doc.add(Box(2, corners=(1, 2, 3, 4, 9, 10)))
    doc.add(Box(2, corners=(4, 5, 8, 9), z=3))
    res = export_case(
        vol, doc, tmp_path, ["nifti", "json"], with_image=True, deidentifier=Deidentifier(b"salt")
    )
    (case,) = load_dataset(tmp_path).cases
    assert case.case_id == res.case_id and case.patient_id.startswith("RL-")
    assert case.patient_id != "PAT-1" and case.modality == "CT"
    image, geo = case.load_image()
    assert np.array_equal(image, ct.hu) and np.array_equal(case.load_label()[0], ct.labels)
    assert np.allclose(geo.origin, vol.origin) and np.allclose(geo.spacing, vol.spacing)
    assert np.allclose(np.reshape(geo.direction, (3, 3)), direction, atol=1e-6)
    assert sorted(case.boxes) == [(1, 2, 3, 4, 9, 10), (3, 4, 5, 3, 8, 9)]
