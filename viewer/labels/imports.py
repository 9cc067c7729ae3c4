"""Re-import of exported labels: NIfTI/NRRD masks onto a series grid, JSON annotations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.nifti import NiftiError, is_nifti, read_nifti
from viewer.labels.labelmap import LabelMap
from viewer.labels.model import Annotation, LabelError, LabelSet, annotation_from_dict
from viewer.study.volume import Volume


class LabelImportError(LabelError, UserError):
    """A label file that cannot be imported; the message names the file and the problem."""


def _read_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(array (z, y, x), LPS affine of (x, y, z) indices) of a NIfTI or NRRD/MHA file."""
    if is_nifti(path):
        from nibabel.filebasedimages import ImageFileError  # read_nifti lets it through

        try:
            arr, grid = read_nifti(path)
        except (NiftiError, ImageFileError) as exc:
            raise LabelImportError(f"{exc}; a label map must be a 3D image") from exc
        return arr, grid.affine_lps
    import SimpleITK as sitk

    from viewer.study.errors import StudyError
    from viewer.study.formats import image_information

    try:  # the size from the header first: never allocate what a hostile header declares
        _size, _spacing, refusal = image_information(path)
    except StudyError as exc:
        raise LabelImportError(f"{path}: cannot read the label map ({exc.reason})") from None
    if refusal is not None:
        raise LabelImportError(f"{path}: {refusal}")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:  # ITK's message: several lines, the C++ source file first
        lines = [ln for ln in str(exc).splitlines() if "ERROR" in ln or "rror" in ln]
        detail = " ".join((lines[-1] if lines else str(exc)).split())[:200]
        raise LabelImportError(f"{path}: cannot read the label map ({detail})") from exc
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise LabelImportError(f"{path}: a label map must be a 3D scalar image")
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    aff[:3, 3] = img.GetOrigin()
    return sitk.GetArrayFromImage(img), aff


def import_mask(path: Path | str, volume: Volume, tol_mm: float = 1e-3) -> LabelMap:
    """A label map file (NIfTI, NRRD, MHA) read onto ``volume``'s grid; any difference in
    size, spacing, origin or orientation is an error that says which."""
    path = Path(path)
    if not path.is_file():
        raise LabelImportError(f"{path}: no such file")
    arr, aff = _read_mask(path)
    if tuple(arr.shape) != volume.shape:
        raise LabelImportError(
            f"{path}: label map is {'x'.join(map(str, arr.shape))} (z, y, x) but the series is "
            f"{'x'.join(map(str, volume.shape))}"
        )
    ref = volume.affine_lps
    if not np.allclose(aff[:3, :3], ref[:3, :3], atol=tol_mm):
        spacing = np.linalg.norm(aff[:3, :3], axis=0)
        if not np.allclose(spacing, volume.spacing, atol=tol_mm):
            raise LabelImportError(
                f"{path}: voxel spacing {tuple(spacing.round(4))} mm differs from the series {volume.spacing}"
            )
        raise LabelImportError(
            f"{path}: orientation differs from the series (direction cosines do not match)"
        )
    if not np.allclose(aff[:3, 3], ref[:3, 3], atol=max(tol_mm, 1e-3 * min(volume.spacing))):
        raise LabelImportError(
            f"{path}: origin {tuple(np.round(aff[:3, 3], 3))} mm differs from the series {volume.origin}"
        )
    if np.any(arr < 0) or np.any(arr > 255) or np.any(arr != np.round(arr)):
        raise LabelImportError(f"{path}: values must be whole numbers 0..255 to be a label map")
    return LabelMap(array=np.ascontiguousarray(arr).astype(np.uint8))


def read_label_table(path: Path | str) -> LabelSet:
    path = Path(path)
    return LabelSet.from_table(_load_json(path))


def import_annotations(path: Path | str) -> tuple[list[Annotation], LabelSet | None]:
    """Annotations from an exported ``annotations.json`` (or a bare list), plus its label
    table when the file carries one. Export-only fields (points in mm, stats) are ignored."""
    path = Path(path)
    data = _load_json(path)
    items = data.get("annotations") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LabelImportError(f"{path}: expected a list of annotations")
    out = []
    for i, rec in enumerate(items):
        try:
            out.append(annotation_from_dict(rec))
        except LabelError as exc:
            raise LabelImportError(f"{path}: annotation #{i + 1}: {exc}") from exc
    table = data.get("label_table") if isinstance(data, dict) else None
    return out, (LabelSet.from_table(table) if table else None)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise LabelImportError(f"{path}: no such file") from None
    except OSError as exc:
        from viewer.labels.export import write_problem

        raise LabelImportError(f"cannot read {path}: {write_problem(exc)}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelImportError(f"{path}: not readable JSON ({exc})") from exc


def import_mask_into(doc: Any, path: Path | str, volume: Volume) -> Any:
    """Replace the document's label map by a mask file, as one undoable edit (a MaskEdit)."""
    return _set_mask(doc, import_mask(path, volume).array, path)


def _set_mask(doc: Any, new: np.ndarray, path: Path | str) -> Any:
    if new.shape != doc.shape:
        raise LabelImportError(
            f"{path}: label map {new.shape} does not match the document {doc.shape}"
        )
    edit = doc.labelmap.set_array(new)
    if not edit.empty:
        doc.apply(edit)  # already applied by set_array; applying records it (idempotent)
    return edit


def import_annotations_into(doc: Any, path: Path | str) -> list[Annotation]:
    """Add the annotations of an ``annotations.json`` (ids already present are refused), one undo step."""
    anns, _ = import_annotations(path)
    return _add_annotations(doc, anns, path)


def _add_annotations(doc: Any, anns: list[Annotation], path: Path | str) -> list[Annotation]:
    from viewer.labels.document import AnnotationEdit, CompoundEdit

    clash = [a.id for a in anns if a.id in doc.annotations]
    if clash:
        raise LabelImportError(f"{path}: annotations {clash[:3]} are already in this series")
    if anns:
        doc.apply(
            CompoundEdit(
                tuple(AnnotationEdit(None, a, "import") for a in anns), "import annotations"
            )
        )
    return anns


#: What "Import labels…" reads, for the file dialog.
LABEL_FILE_FILTER = (
    "Label files (*.dcm *.DCM *.nii *.nii.gz *.nrrd *.mha *.json);;"
    "DICOM-SEG or RTSTRUCT (*.dcm *.DCM *);;Masks (*.nii *.nii.gz *.nrrd *.mha);;"
    "Annotations (*.json)"
)


#: Puts what a label file held into a document (on the thread that owns it) and says what.
Apply = Callable[[Any], str]


def prepare_label_import(path: Path | str, volume: Volume) -> Apply:
    """Read any label file RadLens reads onto ``volume`` (the slow part, fine on a worker):
    DICOM-SEG, RTSTRUCT, a NIfTI/NRRD/MHA label map or an annotations.json. Returns the
    step that puts it into a document as one undoable edit and answers a sentence saying
    what was imported (with any note the reader made)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".json"):
        anns, _ = import_annotations(path)

        def add_annotations(doc: Any) -> str:
            _add_annotations(doc, anns, path)
            return f"Imported {len(anns)} annotations from {path.name}."

        return add_annotations
    if name.endswith((".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")):
        mask = import_mask(path, volume).array

        def set_mask(doc: Any) -> str:
            _set_mask(doc, mask, path)
            return f"Imported the label map {path.name}."

        return set_mask
    kind = _dicom_kind(path)
    if kind == "seg":
        from viewer.labels.seg_read import merge_seg, read_seg

        seg = read_seg(path, volume)

        def put_seg(doc: Any) -> str:
            imp = merge_seg(doc, seg, path)
            names = ", ".join(s.label.name for s in imp.segments)
            made = " (AI result)" if imp.automatic else ""
            head = f"Imported {imp.seg_type} DICOM-SEG{made} {path.name}: {names}."
            return " ".join([head, *imp.notes])

        return put_seg
    if kind == "rtstruct":
        from viewer.labels.rtstruct import merge_rtstruct, read_rtstruct

        rois = read_rtstruct(path, volume)

        def put_rtstruct(doc: Any) -> str:
            rt = merge_rtstruct(doc, rois, path)
            return " ".join([f"Imported RTSTRUCT {path.name}: {', '.join(rt.names)}.", *rt.notes])

        return put_rtstruct
    raise LabelImportError(
        f"{path}: not a label file RadLens reads (DICOM-SEG, RTSTRUCT, NIfTI, NRRD, MHA or "
        "annotations JSON)"
    )


def import_labels_into(doc: Any, path: Path | str, volume: Volume) -> str:
    """Read a label file onto ``volume`` and put it into ``doc`` (one undoable step)."""
    return prepare_label_import(path, volume)(doc)


def _dicom_kind(path: Path) -> str:
    """'seg', 'rtstruct' or '' for a DICOM file (any other file is '')."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except pydicom.errors.InvalidDicomError:
        try:  # no preamble: the SOP class decides whether it is a label object
            ds = pydicom.dcmread(
                str(path), stop_before_pixels=True, specific_tags=["SOPClassUID"], force=True
            )
        except (OSError, pydicom.errors.InvalidDicomError, ValueError):
            return ""
    except OSError:
        return ""
    uid = str(ds.get("SOPClassUID", ""))
    if uid in ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"):
        return "seg"
    if uid == "1.2.840.10008.5.1.4.1.1.481.3":
        return "rtstruct"
    return ""
