"""Reading the two dataset layouts into ``TrainingCase`` records (folders are only read).

- the RadLens export: ``DIR/<case_id>/`` with ``image.nii.gz``, ``mask.nii.gz`` (uint8 label
  map), ``label_table.json`` ({"1": {"name", "color"}}), ``annotations.json`` (boxes...), else
  ``coco.json`` (2D boxes, see ``coco.py``), and ``export.json`` (case_id, pseudonymous
  patient_id, modality, geometry);
- nnU-Net / MSD style: ``DIR/imagesTr/<name>.nii.gz`` + ``DIR/labelsTr/<name>.nii.gz`` (an
  nnU-Net ``_0000`` channel suffix on the image is accepted), optional ``DIR/dataset.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from inference.training.cases import DatasetError, TrainingCase
from radlens_core.nifti import NIFTI_SUFFIXES


def nifti_in(folder: Path, stem: str) -> Path | None:
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


def export_case(folder: Path) -> tuple[TrainingCase, dict[int, str]]:
    case_id = folder.name
    image = nifti_in(folder, "image")
    if image is None:
        raise DatasetError(f"case {case_id}: no image.nii.gz in {folder}")
    mask = nifti_in(folder, "mask")
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


def msd_cases(root: Path) -> tuple[list[TrainingCase], dict[int, str]]:
    """The cases and label table of an ``imagesTr/`` + ``labelsTr/`` dataset."""
    labels: dict[int, str] = {}
    modality = "OT"
    if (root / "dataset.json").is_file():
        info = _read_json(root / "dataset.json", "dataset.json")
        labels = _label_table(_msd_labels(info), str(root / "dataset.json"))
        modality = _msd_modality(info)
    cases = []
    for image in sorted((root / "imagesTr").iterdir()):
        if not image.name.endswith(NIFTI_SUFFIXES) or image.name.startswith("."):
            continue
        stem = _stem(image)
        base = stem[:-5] if stem.endswith("_0000") else stem
        label = nifti_in(root / "labelsTr", base)
        if label is None:
            raise DatasetError(f"case {base}: {image.name} has no labelsTr/{base}.nii.gz")
        cases.append(TrainingCase(base, base, image, label, modality=modality))
    return cases, labels


def export_cases(root: Path) -> tuple[list[TrainingCase], dict[int, str]]:
    """The cases of a RadLens export (one folder per case) and their common label table."""
    cases: list[TrainingCase] = []
    labels: dict[int, str] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if nifti_in(folder, "image") is None:
            continue
        case, table = export_case(folder)
        for k, v in table.items():
            if labels.get(k, v) != v:
                raise DatasetError(
                    f"case {case.case_id}: label {k} is {v!r} here but {labels[k]!r} elsewhere"
                )
            labels[k] = v
        cases.append(case)
    return cases, labels


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
