"""Peak memory of each hostile input: scanned and (where listed) loaded in a subprocess of its
own, its peak RSS read with ``resource.getrusage`` in that child. Nothing may pass 2 GB.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_hostile.py -q -s
(it runs in the ordinary suite too: each case takes a second or two).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

from tests import dicom_factory as f

ROOT = Path(__file__).resolve().parents[2]
MAX_RSS = 2 * 10**9
#: The same limit on every machine, so the same cases are refused everywhere.
LIMIT = "8GiB"

CHILD = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from radlens_core.errors import UserError
what, path = sys.argv[1], sys.argv[2]
outcomes = []
if what == "train":
    from inference.training.dataset import load_dataset
    try:
        load_dataset(path)
        outcomes.append("loaded")
    except UserError as exc:
        outcomes.append(str(exc))
else:
    from viewer.study.scan import scan_folder
    from viewer.study.series import load_series
    result = scan_folder(path)
    for s in result.series:
        try:
            load_series(s)
            outcomes.append("loaded")
        except UserError as exc:
            outcomes.append(str(exc))
    outcomes += [f"skipped {s.path.name}: {s.reason}" for s in result.skipped]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak_rss": peak, "outcomes": outcomes}))
"""


def _good(folder: Path) -> None:
    f.write_ct_series(folder / "good", shape=(4, 16, 16))


def _j2k(folder: Path) -> None:
    f.write_declared(folder / "j2k.dcm", 4096, 4096, 700, JPEG2000Lossless)


def _jpeg(folder: Path) -> None:
    f.write_declared(folder / "jpeg.dcm", 65535, 65535, 100000, JPEGBaseline8Bit)


def _rle(folder: Path) -> None:
    f.write_declared(folder / "rle.dcm", 65535, 65535, 100000, RLELossless)


def _j2k_codestream_lies(folder: Path) -> None:
    siz = (
        b"\xff\x4f\xff\x51"
        + struct.pack(">HHIIIIIIIIH", 41, 0, 65535, 65535, 0, 0, 65535, 65535, 0, 0, 1)
        + b"\x0f\x01\x01"
    )
    f.write_declared(folder / "liar.dcm", 64, 64, 1, JPEG2000Lossless, fragment=siz, bits=8)


def _nifti(folder: Path) -> None:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((30000, 30000, 5000))
    header["vox_offset"] = 352
    (folder / "huge.nii").write_bytes(header.binaryblock + b"\x00" * 1028)


def _nrrd(folder: Path) -> None:
    text = "NRRD0004\ntype: short\ndimension: 3\nsizes: 65535 65535 1000\nencoding: raw\nendian: little\n\n"
    (folder / "huge.nrrd").write_bytes(text.encode() + b"\x00" * 64)


def _mha(folder: Path) -> None:
    text = (
        "ObjectType = Image\nNDims = 3\nDimSize = 65535 65535 1000\n"
        "ElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    )
    (folder / "huge.mha").write_bytes(text.encode() + b"\x00" * 64)


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "pipe.dcm")


def _position_1e300(folder: Path) -> None:
    bad = f.write_ct_series(folder / "bad", shape=(4, 8, 8))
    f.set_attribute(bad.paths[1], "ImagePositionPatient", ["0", "0", "1e300"])


def _nan_spacing(folder: Path) -> None:
    bad = f.write_ct_series(folder / "bad", shape=(4, 8, 8))
    f.set_attribute(bad.paths[2], "PixelSpacing", ["nan", "0"])


def _dicomdir_escape(folder: Path) -> None:
    import pydicom

    src = f.write_ct_series(folder.parent / f"{folder.name}-src", shape=(3, 4, 4))
    fs = FileSet()
    for p in src.paths:
        fs.add(str(p))
    fs.write(folder / "media")
    ds = pydicom.dcmread(folder / "media" / "DICOMDIR")
    images = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    images[0].ReferencedFileID = ["..", "..", "x"]
    images[1].ReferencedFileID = "/etc/passwd"
    ds.save_as(folder / "media" / "DICOMDIR")


def _missing_slice(folder: Path) -> None:
    truth = f.write_ct_series(folder / "gap", shape=(4, 8, 8), shuffle_seed=None)
    data = truth.paths[1].read_bytes()
    truth.paths[1].write_bytes(data[: len(data) - 64])  # the pixels end short


CASES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "good series (reference)": ("scan", lambda d: None),
    "JPEG 2000, 700 frames of 4096x4096 (21.9 GiB)": ("scan", _j2k),
    "JPEG baseline, 65535x65535x100000 (781 TiB)": ("scan", _jpeg),
    "RLE, 65535x65535x100000 (781 TiB)": ("scan", _rle),
    "JPEG 2000 header 64x64, codestream 65535x65535": ("scan", _j2k_codestream_lies),
    "NIfTI header 30000x30000x5000 (8.19 TiB)": ("scan", _nifti),
    "NRRD header 65535x65535x1000 (7.81 TiB)": ("scan", _nrrd),
    "MHA header 65535x65535x1000 (7.81 TiB)": ("scan", _mha),
    "FIFO in the folder": ("scan", _fifo),
    "ImagePositionPatient 1e300": ("scan", _position_1e300),
    "PixelSpacing NaN and 0": ("scan", _nan_spacing),
    "DICOMDIR entries ../ and /etc/passwd": ("scan", _dicomdir_escape),
    "4 slices, one unreadable": ("scan", _missing_slice),
}


def _run_child(what: str, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RADLENS_MAX_ALLOC_BYTES": LIMIT}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, what, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_case_peak_rss_stays_under_2_gb(tmp_path, case):
    what, make = CASES[case]
    folder = tmp_path / "case"
    folder.mkdir()
    _good(folder)
    make(folder)
    data = _run_child(what, folder)
    peak = data["peak_rss"]
    print(f"\npeak RSS {peak / 2**20:7.1f} MiB  {case}")
    for line in data["outcomes"]:
        print(f"    {line[:160]}")
    assert "loaded" in data["outcomes"]  # the good series beside it still loads
    assert not any("Traceback" in line for line in data["outcomes"])
    assert peak < MAX_RSS, f"{case}: peak RSS {peak / 1e9:.2f} GB"


def test_training_case_declaring_too_much_peak_rss_stays_under_2_gb(tmp_path):
    from inference.training.dataset import write_case

    write_case(tmp_path, "ok", np.zeros((3, 4, 4), np.int16), np.zeros((3, 4, 4)), (1, 1, 1), {})
    write_case(tmp_path, "big", np.zeros((3, 4, 4), np.int16), None, (1, 1, 1), {})
    (tmp_path / "big" / "image.nii.gz").unlink()
    _nifti(tmp_path / "big")
    (tmp_path / "big" / "huge.nii").rename(tmp_path / "big" / "image.nii")
    data = _run_child("train", tmp_path)
    peak = data["peak_rss"]
    print(f"\npeak RSS {peak / 2**20:7.1f} MiB  training dataset, a case of 30000x30000x5000")
    (outcome,) = data["outcomes"]
    assert outcome.startswith("case big: ") and "declares 30000×30000×5000 voxels" in outcome
    assert peak < MAX_RSS
