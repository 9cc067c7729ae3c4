"""Export one series' labels to ``DIR/<case_id>/``, the layout the training station reads.

Files: ``mask.nii.gz`` / ``mask.nrrd`` (+ ``image.*`` with ``with_image``), ``label_table.json``,
``annotations.json``, ``annotations.csv``, ``coco.json``, ``seg.dcm`` (LABELMAP by default, BINARY on request), ``rtstruct.dcm``,
``measurements.dcm`` (SR TID 1500) with ``images/`` (the de-identified images they reference,
when de-identified with the image), ``model_vs_final.json``
and ``export.json`` (case id, pseudonymous patient id, geometry, format versions, de-id report).
The case folder is built in a hidden temporary folder beside it and moved into place with
``os.replace``; an existing case folder is an error unless ``overwrite``.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    fsync_dir,
)
from radlens_core.nifti import write_nifti as core_write_nifti
from viewer.labels.deid import Deidentifier
from viewer.labels.deid_burned_in import ImageDecision, image_decision
from viewer.labels.dicomseg import DEFAULT_SEG_TYPE, SEG_TYPES, Algorithm
from viewer.labels.document import Document
from viewer.labels.export_records import (  # noqa: F401 - re-exported for importers
    COORDINATES,
    CSV_COLUMNS,
    annotation_record,
    annotations_csv,
    coco,
)
from viewer.labels.export_seg import SEG_REQUIRED  # noqa: F401 - re-exported
from viewer.labels.findings import model_vs_final, summary
from viewer.labels.model import LabelError, ModelMask
from viewer.labels.stats import label_measures
from viewer.study.volume import Volume

FORMATS = ("nifti", "nrrd", "dicom-seg", "rtstruct", "sr", "json", "csv", "coco")
EXPORT_FORMAT_VERSION = 1
ANNOTATIONS_FORMAT_VERSION = 1


class ExportError(LabelError, UserError):
    """An export that cannot be written; the message names the folder or the problem."""


#: What an OSError means for the person exporting, by errno.
_ERRNO_PROBLEMS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the disk is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "no such file or folder",
    errno.EFBIG: "the file is too large for this disk",
    errno.EIO: "an input/output error (is the disk failing or disconnected?)",
}


def write_problem(exc: BaseException, folder: Path | None = None) -> str:
    """The problem in a few words: errno as a phrase; a library's RuntimeError (SimpleITK,
    which does not say why) as "the disk is full" when the folder has no space left."""
    if isinstance(exc, OSError) and exc.errno in _ERRNO_PROBLEMS:
        return _ERRNO_PROBLEMS[exc.errno]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    if folder is not None:
        try:
            if shutil.disk_usage(folder).free < (1 << 20):
                return "the disk is full"
        except OSError:
            pass
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"the writer failed ({text[:200]})"


@contextmanager
def writing(path: Path, folder: Path, shown: Path | None = None) -> Iterator[None]:
    """Turn a failed write of ``path`` (in the temporary ``folder``) into an ExportError
    that names the file the user will look for (``shown``) and the problem."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        problem = write_problem(exc, folder).replace(str(folder), str((shown or path).parent))
        raise ExportError(f"cannot write {shown or path}: {problem}") from exc


@dataclass
class ExportResult:
    folder: Path
    case_id: str
    files: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


# ---- pieces, each usable on its own -----------------------------------------------------------
def write_nifti(array: np.ndarray, volume: Volume, path: Path) -> None:
    """(z, y, x) array -> NIfTI with the volume's RAS affine (qform and sform both set),
    through the one NIfTI writer; RGB images (z, y, x, c), which it does not take, are
    written with the same affine here."""
    data = np.asarray(array)
    if data.ndim == 3:
        core_write_nifti(path, data, volume.grid)
        return
    import nibabel as nib

    data = np.transpose(data, (2, 1, 0, 3) if data.ndim == 4 else (2, 1, 0))
    img = nib.Nifti1Image(np.ascontiguousarray(data), volume.affine_ras)
    img.set_qform(volume.affine_ras, code=1)
    img.set_sform(volume.affine_ras, code=1)
    img.header.set_xyzt_units("mm")
    raw = img.to_bytes()
    gz = Path(path).name.lower().endswith(".gz")
    atomic_write_bytes(path, gzip.compress(raw, compresslevel=6, mtime=0) if gz else raw)


def write_nrrd(array: np.ndarray, volume: Volume, path: Path) -> None:
    """(z, y, x) array -> NRRD via SimpleITK (which, like DICOM, speaks LPS)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=np.ndim(array) == 4)
    img.SetSpacing(volume.spacing)
    img.SetOrigin(volume.origin)
    img.SetDirection(tuple(float(v) for v in volume.direction.reshape(-1)))
    sitk.WriteImage(img, str(path), useCompression=True)


# ---- the whole case ----------------------------------------------------------------------------
def export_case(
    volume: Volume,
    doc: Document,
    out_dir: Path,
    formats: Iterable[str] = ("nifti", "json", "csv"),
    deid: bool = True,
    with_image: bool = False,
    overwrite: bool = False,
    deidentifier: Deidentifier | None = None,
    include_burned_in: bool = False,
    seg_type: str = DEFAULT_SEG_TYPE,
    ai: AiSource | None = None,
) -> ExportResult:
    """Write ``out_dir/<case_id>/`` atomically and return what was written.

    ``seg_type`` is the DICOM-SEG's type (labelmap or binary). ``ai`` says the labels are a
    model's results, not a person's: the report marks them so and the SEG says AUTOMATIC.

    With ``with_image``, an image that may show burned-in text (see ``deid_burned_in``) is
    left out, with a warning in ``export.json``, unless ``include_burned_in``. A write that
    fails is an ExportError naming the file and the problem; the previous export stays."""
    formats = list(dict.fromkeys(formats))
    if seg_type not in SEG_TYPES:
        raise ExportError(
            f"unknown DICOM-SEG type {seg_type!r}; choose from {', '.join(SEG_TYPES)}"
        )
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}")
    if doc.shape != volume.shape:
        raise ExportError(
            f"labels drawn on a {doc.shape} grid cannot be exported with a {volume.shape} series"
        )
    d = deidentifier or Deidentifier()
    case_id = d.case_id(volume.series_uid or str(id(volume)))
    out_dir = Path(out_dir)
    final = out_dir / case_id
    if final.exists() and not overwrite:
        raise ExportError(f"{final} already exists; choose another folder or pass --overwrite")
    with writing(final, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{case_id}.partial-", dir=out_dir))
    try:
        image = image_decision(volume, with_image, include_burned_in)
        files, info = _write_all(
            volume, doc, tmp, case_id, formats, deid, image, d, final, seg_type, ai
        )
        with writing(tmp, tmp, final):
            _fsync_files(tmp)
            _move_into_place(tmp, final, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(final, case_id, files, info)


def _fsync_files(folder: Path) -> None:
    """Make what libraries wrote (NRRD, DICOM-SEG) durable before the folder is swapped in."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        elif path.is_dir():
            _fsync_files(path)
    fsync_dir(folder)


def _move_into_place(tmp: Path, final: Path, overwrite: bool) -> None:
    old = None
    if final.exists():
        if not overwrite:  # appeared while we were writing
            raise ExportError(f"{final} already exists; pass --overwrite to replace it")
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_json(folder: Path, name: str, obj: Any, files: list[str], final: Path) -> None:
    with writing(folder / name, folder, final / name):
        atomic_write_json(folder / name, obj, indent=2)
    files.append(name)


def _write_all(
    volume: Volume,
    doc: Document,
    folder: Path,
    case_id: str,
    formats: list[str],
    deid: bool,
    image: ImageDecision,
    d: Deidentifier,
    final: Path,
    seg_type: str = DEFAULT_SEG_TYPE,
    ai: AiSource | None = None,
) -> tuple[list[str], dict[str, Any]]:
    files: list[str] = []
    meta = volume.meta
    patient_id = str(meta.get("patient_id") or meta.get("PatientID") or "")
    info: dict[str, Any] = {
        "case_id": case_id,
        "patient_id": d.pseudonym(patient_id or volume.series_uid) if deid else patient_id,
        "modality": volume.modality,
        "shape_zyx": list(volume.shape),
        "spacing_xyz": list(volume.spacing),
        "origin_lps": list(volume.origin),
        "direction": volume.direction.tolist(),
        "affine_ras": volume.affine_ras.tolist(),
        "is_2d": volume.is_2d,
        "series_uid": d.uid(volume.series_uid) if deid else volume.series_uid,
        "formats": {"export": EXPORT_FORMAT_VERSION, "annotations": ANNOTATIONS_FORMAT_VERSION,
                    "label_table": 1, "model_vs_final": 1},
        "files": {},
        "labels_source": "ai" if ai is not None else "human",
    }  # fmt: skip
    if ai is not None:
        info["ai_results"] = ai.report
        info["labels_note"] = (
            "these labels are AI results (no person drew or reviewed them): " + ai.summary
        )
    safe_meta = d.meta(meta, patient_id) if deid else {
        k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) or v is None
    }  # fmt: skip
    info["dicom"] = safe_meta
    mask = doc.labelmap.array
    measures = label_measures(volume, mask)
    info["labels"] = {
        str(c.index): {"name": c.name, "color": c.color, **measures.get(c.index, {"voxels": 0})}
        for c in doc.label_set
    }
    _write_json(folder, "label_table.json", doc.label_set.to_table(), files, final)
    orphans = [v for v in doc.labelmap.labels_present() if v not in doc.label_set]
    info["warnings"] = [
        f"label value {v} is painted but has no class in the label table (omitted from DICOM-SEG)"
        for v in orphans
    ]
    info["image"] = image.to_dict()
    if image.warning:
        info["warnings"].append(image.warning)

    for fmt, write, suffix in (("nifti", write_nifti, ".nii.gz"), ("nrrd", write_nrrd, ".nrrd")):
        if fmt not in formats:
            continue
        for stem, array in (("mask", mask), ("image", volume.array))[: 2 if image.write else 1]:
            with writing(folder / f"{stem}{suffix}", folder, final / f"{stem}{suffix}"):
                write(array, volume, folder / f"{stem}{suffix}")
            files.append(f"{stem}{suffix}")

    records = [
        annotation_record(a, volume, doc)
        for a in doc.annotations.values()
        if not isinstance(a, ModelMask)
    ]
    if "json" in formats:
        _write_json(folder, "annotations.json",
                    {"format": ANNOTATIONS_FORMAT_VERSION, "case_id": case_id, "series_uid": info["series_uid"],
                     "coordinates": COORDINATES,
                     "label_table": doc.label_set.to_table(), "annotations": records}, files, final)  # fmt: skip
    if "csv" in formats:
        with writing(folder / "annotations.csv", folder, final / "annotations.csv"):
            atomic_write_text(folder / "annotations.csv", annotations_csv(records))
        files.append("annotations.csv")
    if "coco" in formats:
        _write_json(folder, "coco.json", coco(doc, volume, case_id), files, final)
    if any(f in formats for f in ("dicom-seg", "rtstruct", "sr")):
        _case_dicom(volume, doc, folder, final, formats, deid, d, image, seg_type, ai, files, info)

    rows = model_vs_final(doc)
    _write_json(
        folder,
        "model_vs_final.json",
        {"format": 1, "summary": summary(rows), "findings": rows},
        files,
        final,
    )
    info["deid"] = d.report.to_dict() if deid else {"enabled": False}
    if deid:
        info["deid"]["patient_pseudonym"] = info["patient_id"]
        info["deid"]["date_shift_days"] = d.date_shift(patient_id or volume.series_uid)
        info["deid"]["json"] = "identity keys dropped from 'dicom'; UIDs remapped; dates shifted"
    info["files"] = {name: (folder / name).stat().st_size for name in files}
    files.append("export.json")
    _write_json(folder, "export.json", info, [], final)
    return files, info


def _case_dicom(
    volume: Volume,
    doc: Document,
    folder: Path,
    final: Path,
    formats: list[str],
    deid: bool,
    d: Deidentifier,
    image: ImageDecision,
    seg_type: str,
    ai: AiSource | None,
    files: list[str],
    info: dict[str, Any],
) -> None:
    from viewer.labels.dicomseg import SegExportError
    from viewer.labels.export_seg import DICOM_FORMATS, IMAGES_FOLDER, write_case_dicom

    out = write_case_dicom(
        volume, doc, folder, final, formats, deid, d, image, seg_type,
        ai.algorithm if ai is not None else None,
    )  # fmt: skip
    if out.failed and all(f in out.failed for f in formats):
        # Asked for DICOM objects alone and none could be made: nothing would be exported.
        shutil.rmtree(folder / IMAGES_FOLDER, ignore_errors=True)
        raise SegExportError("; ".join(dict.fromkeys(out.failed.values())))
    # What the source cannot give a DICOM object never costs the other formats: each
    # failure is reported on its own.
    titles = {"dicom-seg": "DICOM-SEG", "rtstruct": "RTSTRUCT", "sr": "SR measurement report"}
    for fmt, why in out.failed.items():
        (folder / DICOM_FORMATS[fmt]).unlink(missing_ok=True)
        info["failed"] = {**info.get("failed", {}), fmt: why}
        info["warnings"].append(f"{titles[fmt]} not written: {why}")
    info.update(out.info)
    files.extend(out.files)
    info["warnings"].extend(out.warnings)


@dataclass(frozen=True)
class AiSource:
    """Labels that are a model's results: what the report and the SEG say about them."""

    algorithm: Algorithm
    report: list[dict[str, Any]]
    summary: str
