"""The JSON/CSV/COCO records of an export: annotations with voxel and patient coordinates,
measures and ROI statistics; one CSV row per annotation; COCO boxes per slice."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import numpy as np

from viewer.labels.document import Document
from viewer.labels.model import Annotation, Box, Ruler
from viewer.labels.planar import is_planar
from viewer.labels.stats import roi_stats
from viewer.study.facts import spacing_source
from viewer.study.volume import Volume


def annotation_record(a: Annotation, volume: Volume, doc: Document) -> dict[str, Any]:
    """An annotation as JSON: its own fields plus points in voxel and patient (LPS mm) space."""
    rec = a.to_dict()
    pts = a.points()
    rec["label_name"] = doc.label_set.get(a.label).name if a.label in doc.label_set else ""
    rec["points_voxel_zyx"] = [list(p) for p in pts]
    rec["points_patient_lps_mm"] = [list(map(float, volume.index_to_patient(p))) for p in pts]
    # Without a stated pixel spacing, lengths and areas are in pixels and named so.
    calibrated = spacing_source(volume) != "none"
    if isinstance(a, Ruler):
        if calibrated:
            rec["length_mm"] = a.length_mm(volume.spacing)
        else:
            rec["length_px"] = a.length_mm((1.0, 1.0, 1.0))
    if is_planar(a) and not volume.is_rgb:
        stats = roi_stats(volume, a).to_dict()
        if not calibrated:
            stats["area_px"] = stats.pop("voxels")
            for key in ("area_mm2", "volume_ml"):
                stats.pop(key, None)
        rec["stats"] = stats
    if isinstance(a, Box):
        lo, hi = a.bounds_zyx()
        extent = np.subtract(hi, lo) + 1
        if calibrated:
            sz = np.asarray(volume.spacing[::-1])
            rec["size_mm_zyx"] = list(map(float, extent * sz))
        else:
            rec["size_px_zyx"] = list(map(float, extent))
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
    "length_mm", "area_mm2", "length_px", "area_px",
    "mean", "sd", "min", "max", "volume_ml", "n_points", "axis",
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
        for k in ("area_mm2", "area_px", "mean", "sd", "min", "max", "volume_ml"):
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
