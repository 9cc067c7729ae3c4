"""A training dataset assembled from exported labels, and its deterministic split by patient.

Two layouts are read (folders are only ever opened for reading):

- the RadLens export: ``DIR/<case_id>/`` with ``image.nii.gz``, ``mask.nii.gz`` (uint8 label
  map), ``label_table.json`` ({"1": {"name", "color"}}), ``annotations.json`` (boxes...), else
  ``coco.json`` (2D boxes, see ``coco.py``), and ``export.json`` (case_id, pseudonymous
  patient_id, modality, geometry);
- nnU-Net / MSD style: ``DIR/imagesTr/<name>.nii.gz`` + ``DIR/labelsTr/<name>.nii.gz`` (an
  nnU-Net ``_0000`` channel suffix on the image is accepted), optional ``DIR/dataset.json``.

Arrays come back indexed (z, y, x) like ``viewer.study.volume.Volume``; spacing is (x, y, z).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_LPS = np.diag([-1.0, -1.0, 1.0])


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the case or file and the problem."""


@dataclass(frozen=True)
class Geometry:
    shape: tuple[int, int, int]  # (z, y, x)
    spacing: tuple[float, float, float]  # (x, y, z) mm
    origin: tuple[float, float, float]  # LPS mm of voxel (0, 0, 0)
    direction: tuple[float, ...]  # 3x3 row-major, columns are the x, y, z axes in LPS

    def differs_from(self, other: Geometry, tol_mm: float = 1e-3) -> str | None:
        """A sentence saying how two grids differ, or None when they are the same grid."""
        if self.shape != other.shape:
            return f"size {_fmt_shape(self.shape)} vs {_fmt_shape(other.shape)}"
        if not np.allclose(self.spacing, other.spacing, atol=tol_mm):
            return f"spacing {self.spacing} vs {other.spacing} mm"
        if not np.allclose(self.origin, other.origin, atol=tol_mm):
            return f"origin {self.origin} vs {other.origin} mm"
        if not np.allclose(self.direction, other.direction, atol=1e-4):
            return "orientation (direction cosines) differ"
        return None


def _fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


@dataclass(frozen=True)
class TrainingCase:
    """One case of a dataset: where its files are and what is known about it (not the pixels)."""

    case_id: str
    patient_id: str
    image_path: Path
    label_path: Path | None
    modality: str = "OT"
    #: boxes as (lo_z, lo_y, lo_x, hi_z, hi_y, hi_x) inclusive voxel corners, with label indices
    boxes: tuple[tuple[float, ...], ...] = ()
    box_labels: tuple[int, ...] = ()
    #: case-level class index for classification (None: derived from the label map)
    class_index: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def load_image(self) -> tuple[np.ndarray, Geometry]:
        """The image as float32 (z, y, x) and its geometry."""
        return read_nifti(self.image_path, np.float32)

    def load_label(self) -> tuple[np.ndarray, Geometry]:
        """The label map as uint8 (z, y, x); a case without one raises DatasetError."""
        if self.label_path is None:
            raise DatasetError(f"case {self.case_id}: has no label map")
        arr, geo = read_nifti(self.label_path, None)
        if np.any(arr < 0) or np.any(arr > 255) or np.any(arr != np.round(arr)):
            raise DatasetError(f"case {self.case_id}: {self.label_path.name} is not a label map")
        return arr.astype(np.uint8), geo


@dataclass(frozen=True)
class Dataset:
    root: Path
    cases: tuple[TrainingCase, ...]
    #: label index -> name (background 0 excluded)
    labels: dict[int, str]
    layout: str  # "radlens-export" | "imagesTr-labelsTr"

    def describe(self) -> str:
        patients = len({c.patient_id for c in self.cases})
        names = ", ".join(f"{i}={n}" for i, n in sorted(self.labels.items())) or "none"
        return (
            f"{len(self.cases)} cases from {patients} patients in {self.root} "
            f"({self.layout}); labels: {names}"
        )


def read_nifti(path: Path, dtype: Any) -> tuple[np.ndarray, Geometry]:
    """Read a NIfTI file read-only; returns the array (z, y, x) and its LPS geometry."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read as NIfTI ({exc})") from exc
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DatasetError(f"{path}: expected a 2D or 3D image, got shape {data.shape}")
    arr = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    affine = np.asarray(img.affine, dtype=float)
    lin = _LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)
    direction = lin / spacing
    origin = _LPS @ affine[:3, 3]
    geo = Geometry(
        shape=tuple(int(s) for s in arr.shape),  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        origin=tuple(float(o) for o in origin),  # type: ignore[arg-type]
        direction=tuple(float(d) for d in direction.reshape(-1)),
    )
    return arr, geo


def _nifti_in(folder: Path, stem: str) -> Path | None:
    for suffix in NIFTI_SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _read_json(path: Path, case_id: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"case {case_id}: cannot read {path.name} ({exc})") from exc


def _label_table(data: Any, where: str) -> dict[int, str]:
    """Accepts {"1": {"name": ...}}, {"1": "name"} or [{"index": 1, "name": ...}]."""
    out: dict[int, str] = {}
    try:
        if isinstance(data, dict) and "labels" in data:
            data = data["labels"]
        if isinstance(data, dict):
            for k, v in data.items():
                out[int(k)] = str(v["name"] if isinstance(v, dict) else v)
        elif isinstance(data, list):
            for e in data:
                out[int(e["index"])] = str(e["name"])
        else:
            raise TypeError("neither an object nor a list")
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{where}: label table is malformed ({exc})") from exc
    out.pop(0, None)
    return out


def _boxes(data: Any, case_id: str) -> tuple[list[tuple[float, ...]], list[int], int | None]:
    """Boxes (3D zyx corners) and a case-level class from an export's annotations.json."""
    items = data.get("annotations", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DatasetError(f"case {case_id}: annotations.json has no list of annotations")
    boxes, labels = [], []
    for a in items:
        if not isinstance(a, dict) or a.get("kind") != "Box" or a.get("status") == "rejected":
            continue
        c = [float(v) for v in a.get("corners", ())]
        if a.get("z") is not None and len(c) == 4:
            z = float(a["z"])
            c = [z, c[0], c[1], z, c[2], c[3]]
        if len(c) != 6 or not all(math.isfinite(v) for v in c):
            raise DatasetError(f"case {case_id}: annotations.json has a malformed box {a!r}")
        boxes.append(tuple(c))
        labels.append(int(a.get("label", 1)))
    cls = data.get("class_index") if isinstance(data, dict) else None
    return boxes, labels, (int(cls) if cls is not None else None)


def _coco_case(folder: Path, case_id: str) -> tuple[list, list[int], dict[int, str]]:
    from inference.training.coco import CocoError, coco_boxes

    try:
        return coco_boxes(_read_json(folder / "coco.json", case_id), case_id)
    except CocoError as exc:
        raise DatasetError(str(exc)) from exc


def _export_case(folder: Path) -> tuple[TrainingCase, dict[int, str]]:
    case_id = folder.name
    image = _nifti_in(folder, "image")
    if image is None:
        raise DatasetError(f"case {case_id}: no image.nii.gz in {folder}")
    mask = _nifti_in(folder, "mask")
    meta: dict[str, Any] = {}
    if (folder / "export.json").is_file():
        meta = _read_json(folder / "export.json", case_id)
        if not isinstance(meta, dict):
            raise DatasetError(f"case {case_id}: export.json is not a JSON object")
    labels: dict[int, str] = {}
    if (folder / "label_table.json").is_file():
        labels = _label_table(_read_json(folder / "label_table.json", case_id), f"case {case_id}")
    boxes: list[tuple[float, ...]] = []
    box_labels: list[int] = []
    cls = None
    ann_error: DatasetError | None = None
    if (folder / "annotations.json").is_file():
        try:
            boxes, box_labels, cls = _boxes(
                _read_json(folder / "annotations.json", case_id), case_id
            )
        except DatasetError as exc:
            ann_error = exc
    if not boxes and (folder / "coco.json").is_file():
        # A radiograph exported with only the COCO format (or a hand-made COCO file).
        boxes, box_labels, names = _coco_case(folder, case_id)
        labels = labels or names
    elif ann_error is not None:
        raise ann_error
    case = TrainingCase(
        case_id=str(meta.get("case_id") or case_id),
        patient_id=str(meta.get("patient_id") or case_id),
        image_path=image,
        label_path=mask,
        modality=str(meta.get("modality") or "OT").upper(),
        boxes=tuple(boxes),
        box_labels=tuple(box_labels),
        class_index=cls,
        meta=meta,
    )
    return case, labels


def load_dataset(root: str | Path, check_geometry: bool = True) -> Dataset:
    """Find every case under ``root`` and check that each image and label share one grid."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    cases: list[TrainingCase] = []
    labels: dict[int, str] = {}
    if (root / "imagesTr").is_dir():
        layout = "imagesTr-labelsTr"
        modality = "OT"
        if (root / "dataset.json").is_file():
            info = _read_json(root / "dataset.json", "dataset.json")
            labels = _label_table(_msd_labels(info), str(root / "dataset.json"))
            modality = _msd_modality(info)
        for image in sorted((root / "imagesTr").iterdir()):
            if not image.name.endswith(NIFTI_SUFFIXES) or image.name.startswith("."):
                continue
            stem = _stem(image)
            base = stem[:-5] if stem.endswith("_0000") else stem
            label = _nifti_in(root / "labelsTr", base)
            if label is None:
                raise DatasetError(f"case {base}: {image.name} has no labelsTr/{base}.nii.gz")
            cases.append(TrainingCase(base, base, image, label, modality=modality))
    else:
        layout = "radlens-export"
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if _nifti_in(folder, "image") is None:
                continue
            case, table = _export_case(folder)
            for k, v in table.items():
                if labels.get(k, v) != v:
                    raise DatasetError(
                        f"case {case.case_id}: label {k} is {v!r} here but {labels[k]!r} elsewhere"
                    )
                labels[k] = v
            cases.append(case)
    if not cases:
        raise DatasetError(
            f"{root}: no cases found (expected <case>/image.nii.gz folders or imagesTr/ + labelsTr/)"
        )
    ids = [c.case_id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DatasetError(f"{root}: case ids used twice: {', '.join(dupes)}")
    if check_geometry:
        for case in cases:
            check_case_geometry(case)
    return Dataset(root=root, cases=tuple(cases), labels=labels, layout=layout)


def _msd_modality(data: Any) -> str:
    """The first channel's modality: MSD "modality" or nnU-Net v2 "channel_names"."""
    table = data.get("modality") or data.get("channel_names") if isinstance(data, dict) else None
    first = table.get("0") if isinstance(table, dict) else None
    if not isinstance(first, str):
        return "OT"
    # nnU-Net v2 may write normalisation names ("noNorm", "zscore"): keep DICOM modalities only.
    return first.upper() if first.upper() in ("CT", "MR", "PT", "CR", "DX", "US", "NM") else "OT"


def _msd_labels(data: Any) -> Any:
    # MSD: {"labels": {"0": "background", "1": "lung"}}; nnU-Net v2: {"labels": {"lung": 1}}.
    table = data.get("labels", {}) if isinstance(data, dict) else {}
    if table and all(isinstance(v, int) for v in table.values()):
        table = {str(v): k for k, v in table.items()}
    return table


def _header_geometry(path: Path) -> Geometry:
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read as NIfTI ({exc})") from exc
    shape = tuple(img.shape[:3]) + (1,) * (3 - len(img.shape[:3]))
    affine = np.asarray(img.affine, dtype=float)
    lin = _LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    spacing = np.where(spacing > 0, spacing, 1.0)
    return Geometry(
        shape=(int(shape[2]), int(shape[1]), int(shape[0])),
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        origin=tuple(float(o) for o in _LPS @ affine[:3, 3]),  # type: ignore[arg-type]
        direction=tuple(float(d) for d in (lin / spacing).reshape(-1)),
    )


def check_case_geometry(case: TrainingCase) -> None:
    """Raise DatasetError naming the case when its label map is not on the image's grid."""
    if case.label_path is None:
        return
    img, lab = _header_geometry(case.image_path), _header_geometry(case.label_path)
    problem = img.differs_from(lab)
    if problem:
        raise DatasetError(
            f"case {case.case_id}: {case.image_path.name} and {case.label_path.name} "
            f"are on different grids ({problem})"
        )


# ---- split ----------------------------------------------------------------------------------


def patient_rank(patient_id: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for a patient, from SHA-256(seed:patient)."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_patient(
    cases: Sequence[TrainingCase], val_fraction: float, seed: int
) -> tuple[list[TrainingCase], list[TrainingCase]]:
    """(train, validation): every case of a patient lands on the same side.

    Patients are ordered by a hash of (seed, patient id), so the split does not depend on
    file order or on which other patients exist; the first ``round(n * f)`` (at least one
    when f > 0 and there are two or more patients) go to validation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"validation fraction must be in [0, 1), got {val_fraction}")
    patients = sorted({c.patient_id for c in cases}, key=lambda p: (patient_rank(p, seed), p))
    n_val = int(round(len(patients) * val_fraction))
    if val_fraction > 0 and len(patients) >= 2:
        n_val = min(max(n_val, 1), len(patients) - 1)
    val_patients = set(patients[:n_val])
    train = [c for c in cases if c.patient_id not in val_patients]
    val = [c for c in cases if c.patient_id in val_patients]
    return train, val


# ---- writing (demo data and tests) ---------------------------------------------------------


def write_case(
    root: str | Path,
    case_id: str,
    image: np.ndarray,
    label: np.ndarray | None,
    spacing: Sequence[float],
    labels: dict[int, str],
    patient_id: str | None = None,
    modality: str = "CT",
    boxes: Sequence[tuple[float, ...]] = (),
    box_labels: Sequence[int] = (),
    class_index: int | None = None,
) -> Path:
    """Write one case in the RadLens export layout (axis-aligned LPS grid, origin 0).

    Used to turn synthetic phantoms into a dataset; real exports come from ``viewer.labels``.
    """
    import nibabel as nib

    folder = Path(root) / case_id
    folder.mkdir(parents=True, exist_ok=False)
    sx, sy, sz = (float(s) for s in spacing)
    affine = np.diag([-sx, -sy, sz, 1.0])  # LPS axes written as RAS
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    nib.save(nib.Nifti1Image(np.transpose(img, (2, 1, 0)), affine), str(folder / "image.nii.gz"))
    if label is not None:
        lab = np.asarray(label, dtype=np.uint8)
        if lab.ndim == 2:
            lab = lab[None]
        nib.save(nib.Nifti1Image(np.transpose(lab, (2, 1, 0)), affine), str(folder / "mask.nii.gz"))
    table = {str(k): {"name": v, "color": "#ff0000"} for k, v in labels.items()}
    (folder / "label_table.json").write_text(json.dumps(table, indent=1), encoding="utf-8")
    anns: dict[str, Any] = {
        "annotations": [
            {"kind": "Box", "label": int(lab_i), "corners": [float(v) for v in box], "z": None}
            for box, lab_i in zip(boxes, box_labels or [1] * len(boxes), strict=True)
        ]
    }
    if class_index is not None:
        anns["class_index"] = int(class_index)
    (folder / "annotations.json").write_text(json.dumps(anns, indent=1), encoding="utf-8")
    export = {
        "case_id": case_id,
        "patient_id": patient_id or case_id,
        "modality": modality,
        "geometry": {"shape_zyx": list(img.shape[:3]), "spacing_xyz": [sx, sy, sz]},
    }
    (folder / "export.json").write_text(json.dumps(export, indent=1), encoding="utf-8")
    return folder
