"""A small generated archive for `radlens batch` tests and benchmarks: phantom chest CTs
(analysed), an MR series and an SR object (skipped: no model is meant for them) and a CT
whose compressed pixels are corrupt (fails while loading)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from phantoms.chest import chest_ct
from radlens_core.series import series_key
from tests.dicom_factory import set_attribute, write_ct_series, write_non_image

SHAPE = (12, 32, 32)
SPACING = (4.0, 4.0, 5.0)


@dataclass
class Archive:
    root: Path
    ct: list[str] = field(default_factory=list)  # series keys expected "done"
    skipped: list[str] = field(default_factory=list)
    corrupt: str = ""
    corrupt_folder: Path | None = None
    corrupt_uids: tuple[str, str] = ("", "")

    @property
    def keys(self) -> set[str]:
        return {*self.ct, *self.skipped, self.corrupt} - {""}


def write_phantom_ct(folder: Path, seed: int, **kw: object):
    ct = chest_ct(SHAPE, seed=seed, n_nodules=1)
    return write_ct_series(folder, shape=SHAPE, spacing=SPACING, values=ct.hu, **kw)


def write_corrupt_ct(folder: Path, series_uid: str | None = None, study_uid: str | None = None):
    """A CT whose headers read but whose RLE pixel data is garbage: fails when loaded."""
    truth = write_ct_series(
        folder,
        shape=(4, 16, 16),
        spacing=SPACING,
        transfer_syntax=RLELossless,
        series_uid=series_uid,
        study_uid=study_uid,
    )
    for path in truth.paths:
        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60 + b"\xff" * 20])
        ds.save_as(path)
    return truth


def make_archive(
    root: Path, n_ct: int = 3, unsuitable: bool = True, corrupt: bool = True
) -> Archive:
    archive = Archive(root)
    for seed in range(n_ct):
        truth = write_phantom_ct(root / f"patient{seed:03d}" / "ct", seed)
        archive.ct.append(series_key(truth.series_uid))
    if unsuitable:
        mr = write_ct_series(root / "patient-mr" / "mr", shape=(6, 16, 16), spacing=SPACING)
        for path in mr.paths:
            set_attribute(path, "Modality", "MR")
        archive.skipped.append(series_key(mr.series_uid))
        sr_path = write_non_image(root / "patient-mr" / "report" / "sr.dcm", "sr")
        archive.skipped.append(series_key(str(pydicom.dcmread(sr_path).SeriesInstanceUID)))
    if corrupt:
        folder = root / "patient-bad" / "ct"
        truth = write_corrupt_ct(folder)
        archive.corrupt = series_key(truth.series_uid)
        archive.corrupt_folder = folder
        archive.corrupt_uids = (truth.series_uid, truth.study_uid)
    return archive


def repair_corrupt(archive: Archive) -> None:
    """Replace the corrupt series' files by a good CT with the same UIDs (a re-sent study)."""
    assert archive.corrupt_folder is not None
    for path in archive.corrupt_folder.iterdir():
        path.unlink()
    series_uid, study_uid = archive.corrupt_uids
    write_phantom_ct(archive.corrupt_folder, 99, series_uid=series_uid, study_uid=study_uid)
