"""Export one series' labels to ``DIR/<case_id>/``, the layout the training station reads.

(About 420 lines: every writer here goes through ``writing``; the JSON/CSV/COCO record
builders are the part to move to their own module when it grows again.)

Files: ``mask.nii.gz`` / ``mask.nrrd`` (+ ``image.*`` with ``with_image``), ``label_table.json``,
``annotations.json``, ``annotations.csv``, ``coco.json``, ``seg.dcm``, ``model_vs_final.json``
and ``export.json`` (case id, pseudonymous patient id, geometry, format versions, de-id report).
The case folder is built in a hidden temporary folder beside it and moved into place with
``os.replace``; an existing case folder is an error unless ``overwrite``.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
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
from viewer.labels.document import Document
from viewer.labels.findings import model_vs_final, summary
from viewer.labels.model import Annotation, Box, LabelError, ModelMask, Ruler
from viewer.labels.planar import is_planar
from viewer.labels.stats import label_stats, roi_stats
from viewer.study.volume import Volume

#: What the DICOM-SEG needs present among the table's combined rows: the Enhanced General
#: Equipment module's Device Serial Number (Type 1), RadLens's own dummy value.
SEG_REQUIRED = {"DeviceSerialNumber": "D"}
FORMATS = ("nifti", "nrrd", "dicom-seg", "json", "csv", "coco")
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


def annotation_record(a: Annotation, volume: Volume, doc: Document) -> dict[str, Any]:
    """An annotation as JSON: its own fields plus points in voxel and patient (LPS mm) space."""
    rec = a.to_dict()
    pts = a.points()
    rec["label_name"] = doc.label_set.get(a.label).name if a.label in doc.label_set else ""
    rec["points_voxel_zyx"] = [list(p) for p in pts]
    rec["points_patient_lps_mm"] = [list(map(float, volume.index_to_patient(p))) for p in pts]
    if isinstance(a, Ruler):
        rec["length_mm"] = a.length_mm(volume.spacing)
    if is_planar(a) and not volume.is_rgb:
        rec["stats"] = roi_stats(volume, a).to_dict()
    if isinstance(a, Box):
        lo, hi = a.bounds_zyx()
        sz = np.asarray(volume.spacing[::-1])
        rec["size_mm_zyx"] = list(map(float, (np.subtract(hi, lo) + 1) * sz))
    return rec


COORDINATES = (
    "points_voxel_zyx: voxel indices (z, y, x); points_patient_lps_mm: DICOM LPS (x, y, z); "
    "Polygon/RoiRect/RoiEllipse lie on slice 'z' along array 'axis' (0: z, 1: y, 2: x) and "
    "their vertices/bounds are in the other two array axes, in (z, y, x) order"
)

CSV_COLUMNS = [
    "id", "kind", "label", "label_name", "source", "status", "score",
    "z0", "y0", "x0", "z1", "y1", "x1",
    "x0_mm", "y0_mm", "z0_mm", "x1_mm", "y1_mm", "z1_mm",
    "length_mm", "area_mm2", "mean", "sd", "min", "max", "volume_ml", "n_points", "axis",
]  # fmt: skip


def annotations_csv(records: Iterable[dict[str, Any]]) -> str:
    """One row per annotation: the first and last characteristic point, measures, ROI stats."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        row = {k: r.get(k, "") for k in CSV_COLUMNS}
        vox, mm = r["points_voxel_zyx"], r["points_patient_lps_mm"]
        if vox:
            row.update(zip(("z0", "y0", "x0"), vox[0], strict=True))
            row.update(zip(("z1", "y1", "x1"), vox[-1], strict=True))
            row.update(zip(("x0_mm", "y0_mm", "z0_mm"), mm[0], strict=True))
            row.update(zip(("x1_mm", "y1_mm", "z1_mm"), mm[-1], strict=True))
        row["n_points"] = len(vox)
        for k in ("area_mm2", "mean", "sd", "min", "max", "volume_ml"):
            row[k] = r.get("stats", {}).get(k, "")
        w.writerow(row)
    return buf.getvalue()


def coco(doc: Document, volume: Volume, case_id: str) -> dict[str, Any]:
    """COCO detection JSON of the 2D boxes: one image per slice that has any (a radiograph: one)."""
    by_slice: dict[int, list[Box]] = {}
    for a in doc.annotations.values():
        if isinstance(a, Box) and not a.is_3d and a.status != "rejected":
            by_slice.setdefault(int(a.z), []).append(a)  # type: ignore[arg-type]
    ny, nx = volume.shape[1:]
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for i, z in enumerate(sorted(by_slice), start=1):
        name = "image" if volume.is_2d else f"slice_{z:04d}"
        images.append({"id": i, "file_name": name, "width": nx, "height": ny, "slice_index": z})
        for b in by_slice[z]:
            y0, x0, y1, x1 = b.corners
            w, h = x1 - x0 + 1, y1 - y0 + 1  # inclusive voxel centres -> pixel-edge extent
            anns.append(
                {"id": len(anns) + 1, "image_id": i, "category_id": b.label,
                 "bbox": [x0 - 0.5, y0 - 0.5, w, h], "area": w * h, "iscrowd": 0,
                 "score": b.score, "status": b.status, "annotation_id": b.id}
            )  # fmt: skip
    return {
        "info": {"description": f"RadLens boxes of {case_id}", "version": "1.0"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": c.index, "name": c.name} for c in doc.label_set],
    }


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
) -> ExportResult:
    """Write ``out_dir/<case_id>/`` atomically and return what was written.

    With ``with_image``, an image that may show burned-in text (see ``deid_burned_in``) is
    left out, with a warning in ``export.json``, unless ``include_burned_in``. A write that
    fails is an ExportError naming the file and the problem; the previous export stays."""
    formats = list(dict.fromkeys(formats))
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
        files, info = _write_all(volume, doc, tmp, case_id, formats, deid, image, d, final)
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
    }  # fmt: skip
    safe_meta = d.meta(meta, patient_id) if deid else {
        k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool)) or v is None
    }  # fmt: skip
    info["dicom"] = safe_meta
    mask = doc.labelmap.array
    info["labels"] = {
        str(c.index): {"name": c.name, "color": c.color, **_label_measures(volume, mask, c.index)}
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
    if "dicom-seg" in formats:
        from viewer.labels.dicomseg import SegExportError

        try:
            info["dicom_seg"] = _write_seg(volume, doc, folder / "seg.dcm", deid, d, final)
            files.append("seg.dcm")
        except SegExportError as exc:
            # What the source cannot give a SEG never costs the other formats: the failure is
            # reported per format. Asked for alone, nothing would be exported: an error.
            if all(f == "dicom-seg" for f in formats):
                raise
            (folder / "seg.dcm").unlink(missing_ok=True)
            info["failed"] = {**info.get("failed", {}), "dicom-seg": str(exc)}
            info["warnings"].append(f"DICOM-SEG not written: {exc}")

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


def _label_measures(volume: Volume, mask: np.ndarray, index: int) -> dict[str, Any]:
    n = int(np.count_nonzero(mask == index))
    if n == 0 or volume.is_rgb:
        return {"voxels": n}
    s = label_stats(volume, mask, index)
    return {"voxels": n, "volume_ml": s.volume_ml, "mean": s.mean, "sd": s.sd}


def _write_seg(
    volume: Volume, doc: Document, path: Path, deid: bool, d: Deidentifier, final: Path
) -> dict[str, Any]:
    from viewer.labels.dicomseg import build_segmentation, read_sources, write_segmentation

    sources = read_sources(volume)
    if deid:
        sources = [
            d.dataset(s, source=str(f))
            for s, f in zip(sources, volume.meta["source_files"], strict=True)
        ]
    accepted_model = any(
        isinstance(a, ModelMask) and a.status in ("accepted", "edited")
        for a in doc.annotations.values()
    )
    seg, segments = build_segmentation(
        volume,
        doc.labelmap.array,
        doc.label_set,
        sources,
        "SEMIAUTOMATIC" if accepted_model else "MANUAL",
    )
    if deid:  # the SEG's own header came from de-identified sources; the table applies to it too
        d.scrub(seg, required=SEG_REQUIRED)
    with writing(path, path.parent, final / path.name):
        write_segmentation(seg, path)
    return {
        "segments": {str(n): idx for n, idx in segments.items()},
        "series_instance_uid": str(seg.SeriesInstanceUID),
        "referenced_series_uid": str(sources[0].SeriesInstanceUID),
    }
