"""What the reader states for honest labels (spacing source, patient orientation, cine frame
time) and the VOI LUT applied as pydicom applies it; read through viewer.study.facts."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests import dicom_factory as f
from viewer.study import facts
from viewer.study.scan import scan_folder
from viewer.study.series import load_series

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def _load_only(folder):
    (info,) = [s for s in scan_folder(folder).series if s.kind == "dicom"]
    return info, load_series(info)


def _region(dx_cm, dy_cm, box=(0, 0, 63, 47), units=3):
    r = Dataset()
    r.RegionSpatialFormat = 1
    r.RegionDataType = 1
    r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = box
    r.PhysicalUnitsXDirection = units
    r.PhysicalUnitsYDirection = units
    r.PhysicalDeltaX = dx_cm
    r.PhysicalDeltaY = dy_cm
    return r


def write_echo_clip(path, frames=120, regions=None, frame_time=33.3):
    """A 120-frame ultrasound clip: no patient position or orientation, cine frame time."""
    ds = f.base_dataset(US_MULTIFRAME, "US", generate_uid(), generate_uid())
    ds.SeriesDescription = "Echo 4ch"
    ds.InstanceNumber = 1
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    if frame_time is not None:
        ds.FrameTime = frame_time
    if regions is not None:
        ds.SequenceOfUltrasoundRegions = Sequence(regions)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, size=(frames, 48, 64), dtype=np.uint8)
    f.set_pixels(ds, clip)
    f.save(ds, path)
    return clip


def test_echo_clip_loads_as_a_cine_without_patient_orientation(tmp_path):
    clip = write_echo_clip(tmp_path / "echo.dcm", regions=[_region(0.051, 0.051)])
    info, vol = _load_only(tmp_path)
    assert vol.shape == (120, 48, 64) and np.array_equal(vol.array, clip)
    assert facts.has_patient_orientation(vol) is False
    assert facts.frame_time_ms(vol) == pytest.approx(33.3)
    # No "slices have no ImagePositionPatient" noise: frames in time, not slices.
    assert not any("ImagePositionPatient" in w for w in vol.warnings)
    assert not any("ImagePositionPatient" in p for p in info.problems)
    # SequenceOfUltrasoundRegions: 0.051 cm per pixel is 0.51 mm.
    assert facts.spacing_source(vol) == "ultrasound"
    assert vol.spacing[:2] == pytest.approx((0.51, 0.51))
    assert facts.has_calibrated_spacing(vol)


def test_ultrasound_largest_cm_region_wins_and_other_units_are_not_millimetres(tmp_path):
    small = _region(0.02, 0.02, box=(0, 0, 9, 9))
    large = _region(0.04, 0.05, box=(0, 0, 63, 47))
    doppler = _region(0.1, 0.1, box=(0, 0, 63, 47), units=4)  # seconds, not cm
    write_echo_clip(tmp_path / "a" / "echo.dcm", frames=2, regions=[small, large])
    _, vol = _load_only(tmp_path / "a")
    assert vol.spacing[:2] == pytest.approx((0.4, 0.5))
    write_echo_clip(tmp_path / "b" / "echo.dcm", frames=2, regions=[doppler])
    _, vol = _load_only(tmp_path / "b")
    assert facts.spacing_source(vol) == "none" and not facts.has_calibrated_spacing(vol)


def test_frame_time_vector_gives_the_mean_step(tmp_path):
    write_echo_clip(tmp_path / "echo.dcm", frames=4, frame_time=None)
    path = tmp_path / "echo.dcm"
    f.set_attribute(path, "FrameTimeVector", [0, 40, 40, 43])
    _, vol = _load_only(tmp_path)
    assert facts.frame_time_ms(vol) == pytest.approx(41.0)


def test_radiograph_spacing_at_the_detector_and_without_any(tmp_path):
    f.write_2d(tmp_path / "dx" / "a.dcm", np.zeros((8, 10), np.uint16), modality="DX")
    _, vol = _load_only(tmp_path / "dx")
    assert facts.spacing_source(vol) == "detector"
    assert vol.spacing[:2] == pytest.approx((0.15, 0.2))
    assert facts.has_patient_orientation(vol) is False  # no ImageOrientationPatient
    f.write_2d(tmp_path / "cr" / "a.dcm", np.zeros((8, 10), np.uint16), "CR", imager_spacing=None)
    _, vol = _load_only(tmp_path / "cr")
    assert facts.spacing_source(vol) == "none" and not facts.has_calibrated_spacing(vol)


def test_four_cr_images_stacked_have_no_patient_orientation(tmp_path):
    series_uid, study_uid = generate_uid(), generate_uid()
    for k in range(4):
        path = f.write_2d(tmp_path / f"cr{k}.dcm", np.full((6, 6), k, np.uint16), "CR")
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.InstanceNumber = series_uid, study_uid, k + 1
        ds.save_as(path)
    _, vol = _load_only(tmp_path)
    assert vol.shape == (4, 6, 6)
    assert facts.has_patient_orientation(vol) is False


def test_ct_keeps_patient_spacing_and_orientation(tmp_path):
    f.write_ct_series(tmp_path, shape=(3, 5, 5))
    _, vol = _load_only(tmp_path)
    assert facts.spacing_source(vol) == "patient"
    assert facts.has_patient_orientation(vol) is True
    assert facts.frame_time_ms(vol) is None and facts.volume_label(vol) is None


def test_pydicom_ct_small_and_secondary_capture(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.save_as(tmp_path / "ct.dcm")
    _, vol = _load_only(tmp_path)
    assert facts.spacing_source(vol) == "patient" and facts.has_patient_orientation(vol)
    sc = tmp_path / "sc"
    sc.mkdir()
    pydicom.dcmread(get_testdata_file("SC_rgb_rle.dcm")).save_as(sc / "sc.dcm")
    _, vol = _load_only(sc)
    assert facts.has_patient_orientation(vol) is False


def _with_voi_lut(path, photometric="MONOCHROME2"):
    """A CT image with a 12-bit VOI LUT (a gamma curve over HU 0..2999)."""
    values = np.arange(-1000, 3800, 100, dtype=np.int16).reshape(1, 6, 8)
    truth = f.write_ct_series(path.parent, shape=(1, 6, 8), values=values, intercept=-1024.0)
    ds = pydicom.dcmread(truth.paths[0])
    item = Dataset()
    first = 0  # values below it (air) map to the first entry, above 2999 to the last
    entries = 3000
    table = np.round(4095 * (np.linspace(0, 1, entries) ** 0.5)).astype(np.uint16)
    item.LUTDescriptor = [entries, first, 12]
    item.add_new("LUTData", "US", [int(v) for v in table])
    item.LUTExplanation = "GAMMA"
    ds.VOILUTSequence = Sequence([item])
    ds.PhotometricInterpretation = photometric
    ds.save_as(truth.paths[0])
    return truth.paths[0]


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_voi_lut_applied_as_pydicom_applies_it(tmp_path, photometric):
    path = _with_voi_lut(tmp_path / "ct" / "x.dcm", photometric)
    _, vol = _load_only(tmp_path / "ct")
    ds = pydicom.dcmread(path)
    expected = pydicom.pixels.apply_voi_lut(
        pydicom.pixels.apply_modality_lut(ds.pixel_array, ds), ds
    )
    shown = facts.apply_voi_lut(vol, vol.array[0])
    assert facts.has_voi_lut(vol)
    if photometric == "MONOCHROME1":
        expected = 4095 - expected  # shown with higher brighter, like every greyscale image
    assert np.array_equal(shown, expected)
    assert facts.voi_lut_window(vol) == (2047.5, 4096.0)


def test_without_voi_lut_nothing_is_applied(tmp_path):
    f.write_ct_series(tmp_path, shape=(1, 4, 4))
    _, vol = _load_only(tmp_path)
    assert facts.apply_voi_lut(vol, vol.array[0]) is None and not facts.has_voi_lut(vol)
