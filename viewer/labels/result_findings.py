"""Findings a person can click, derived from an analysis record (boxes, mask components, classes).

One finding per box; one per connected component of each non-background mask label,
except labels that are anatomy (e.g. lung), which stay a layer and are reported as a
structure volume; one finding for a classification. Qt-free and torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from viewer.labels.results import ResultRecord

#: Mask labels that name anatomy rather than a finding: reported as a structure volume.
ANATOMY_NAMES = frozenset(
    {
        "lung",
        "lungs",
        "left lung",
        "right lung",
        "liver",
        "heart",
        "body",
        "spleen",
        "kidney",
        "kidneys",
        "aorta",
        "bone",
        "spine",
        "brain",
        "background",
    }
)
#: A label filling more than this fraction of the volume is anatomy whatever its name.
ANATOMY_FRACTION = 0.02
#: Words that make a mask label a lesion (a finding) whatever its size or the model's.
LESION_WORDS = (
    "nodule", "tumor", "tumour", "lesion", "mass", "metasta", "cyst", "hemorrhage",
    "haemorrhage", "bleed", "fracture", "infarct", "polyp", "stone", "calculus", "effusion",
    "pneumothorax", "aneurysm", "embol", "abscess", "edema", "oedema", "cancer", "carcinoma",
    "opacity", "consolidation",
)  # fmt: skip
#: A model with more labels than this segments anatomy (TotalSegmentator's 117 structures):
#: only its lesion-named labels are findings, the rest are structures with their volumes.
MANY_LABELS = 8
#: The findings list stays readable: beyond this many components per label, the largest win.
MAX_COMPONENTS_PER_LABEL = 200


@dataclass(frozen=True)
class Finding:
    kind: str  # "box" | "region" | "classification"
    label: str
    score: float | None
    centre_zyx: tuple[float, float, float]  # voxel indices: where a click jumps to
    slice_range: tuple[int, int]  # inclusive z range
    extent_mm: tuple[float, float, float]  # (x, y, z) size of the box / component bounding box
    volume_ml: float | None = None  # regions in volumes
    area_mm2: float | None = None  # regions in 2D images
    probabilities: tuple[tuple[str, float], ...] = ()  # classification, best first
    run_id: str = ""

    def describe(self) -> str:
        """One line for the findings list, e.g. 'nodule 0.91 — 12 × 10 × 8 mm, slices 20–26'."""
        if self.kind == "classification":
            probs = ", ".join(f"{name} {p:.2f}" for name, p in self.probabilities)
            return f"{self.label} ({probs})"
        head = self.label if self.score is None else f"{self.label} {self.score:.2f}"
        ex = [e for e in self.extent_mm]
        if self.slice_range[0] == self.slice_range[1] and ex[2] == 0:
            size = f"{ex[0]:.0f} × {ex[1]:.0f} mm"
        else:
            size = f"{ex[0]:.0f} × {ex[1]:.0f} × {ex[2]:.0f} mm"
        if self.volume_ml is not None:
            size += f", {self.volume_ml:.2f} mL"
        if self.area_mm2 is not None:
            size += f", {self.area_mm2:.0f} mm²"
        z0, z1 = self.slice_range
        where = f"slice {z0}" if z0 == z1 else f"slices {z0}–{z1}"
        return f"{head} — {size}, {where}"


@dataclass(frozen=True)
class StructureVolume:
    """An anatomical label kept as a layer: its name and how much of it there is."""

    label: str
    voxels: int
    volume_ml: float


@dataclass(frozen=True)
class ResultSummary:
    findings: list[Finding]
    structures: list[StructureVolume]


def _clip_range(lo: float, hi: float, n: int) -> tuple[int, int]:
    a = int(np.clip(np.floor(lo + 0.5), 0, n - 1))
    b = int(np.clip(np.floor(hi + 0.5), 0, n - 1))
    return (min(a, b), max(a, b))


def box_findings(rec: ResultRecord, spacing_xyz: tuple[float, float, float]) -> list[Finding]:
    """One finding per box: centre of the box, size in mm, slice range."""
    out = []
    sx, sy, sz = spacing_xyz
    for b in rec.boxes:
        lo, hi = b.corners_zyx()
        centre = tuple((a + c) / 2.0 for a, c in zip(lo, hi, strict=True))
        two_d = len(b.corners) == 4
        extent = (
            abs(hi[2] - lo[2]) * sx,
            abs(hi[1] - lo[1]) * sy,
            0.0 if two_d else abs(hi[0] - lo[0]) * sz,
        )
        out.append(
            Finding(
                kind="box",
                label=b.label,
                score=b.score,
                centre_zyx=centre,  # type: ignore[arg-type]
                slice_range=_clip_range(lo[0], hi[0], rec.shape[0]),
                extent_mm=extent,
                run_id=rec.run_id,
            )
        )
    return sorted(out, key=lambda f: -(f.score or 0.0))


def is_anatomy(name: str, voxels: int, total_voxels: int) -> bool:
    return name.strip().lower() in ANATOMY_NAMES or voxels > ANATOMY_FRACTION * total_voxels


def is_lesion(name: str) -> bool:
    low = name.strip().lower()
    return any(word in low for word in LESION_WORDS)


def is_finding_label(name: str, voxels: int, total_voxels: int, n_labels: int) -> bool:
    """Whether a mask label's components are findings (else the label is a structure): a
    lesion name always is; anatomy never is; other names are findings only in a small model."""
    if is_lesion(name):
        return True
    if is_anatomy(name, voxels, total_voxels):
        return False
    return n_labels <= MANY_LABELS


def _label_counts(lm: np.ndarray, known: list[int]) -> dict[int, int]:
    """Voxels per non-zero label. Counting the card's labels one by one is ~40× faster than
    a bincount over a 300×512×512 map; bincount only when other values are present."""
    top = int(lm.max()) if lm.size else 0
    if top == 0:
        return {}
    if top in known and all(0 < k < 256 for k in known):
        counts = {k: int(np.count_nonzero(lm == k)) for k in sorted(set(known))}
        if sum(counts.values()) == int(np.count_nonzero(lm)):
            return {k: n for k, n in counts.items() if n}
    full = np.bincount(lm.ravel(), minlength=256)
    return {int(i): int(full[i]) for i in np.flatnonzero(full[1:]) + 1}


def _components(
    mask: np.ndarray,
) -> list[tuple[int, tuple[float, float, float], tuple[slice, slice, slice]]]:
    """(voxels, centre (z, y, x), bounding slices) of each face-connected component, largest
    first, at most MAX_COMPONENTS_PER_LABEL.

    Works inside the mask's bounding box and measures each component inside its own box:
    whole-volume ``center_of_mass``/``bincount`` on a 300×512×512 label image took ~7 s."""
    axes = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    if any(len(a) == 0 for a in axes):
        return []
    crop = tuple(slice(int(a[0]), int(a[-1]) + 1) for a in axes)
    offset = np.array([c.start for c in crop], dtype=float)
    comp, _ = ndimage.label(mask[crop])  # face connectivity, as the engine's cleaning
    out = []
    for cid, sl in enumerate(ndimage.find_objects(comp), start=1):
        if sl is None:
            continue
        coords = np.nonzero(comp[sl] == cid)
        size = len(coords[0])
        centre = offset + [c.start for c in sl] + [float(np.mean(c)) for c in coords]
        full = tuple(
            slice(c.start + o.start, c.stop + o.start) for c, o in zip(sl, crop, strict=True)
        )
        out.append((size, tuple(float(v) for v in centre), full))
    out.sort(key=lambda t: -t[0])
    return out[:MAX_COMPONENTS_PER_LABEL]  # type: ignore[return-value]


def region_findings(
    rec: ResultRecord, spacing_xyz: tuple[float, float, float]
) -> tuple[list[Finding], list[StructureVolume]]:
    """Connected components of each non-anatomy label; anatomy labels give a structure volume."""
    if rec.label_map is None or "mask" in rec.removed_layers:
        return [], []
    lm = rec.label_map
    sx, sy, sz = spacing_xyz
    voxel_ml = sx * sy * sz / 1000.0
    two_d = lm.shape[0] == 1
    findings: list[Finding] = []
    structures: list[StructureVolume] = []
    counts = _label_counts(lm, [i.index for i in rec.labels])
    n_labels = max(len([e for e in rec.labels if e.index]), len(counts))
    for index, n in counts.items():
        name = rec.label_name(index)
        if not is_finding_label(name, n, lm.size, n_labels):
            structures.append(StructureVolume(name, n, n * voxel_ml))
            continue
        for size, centre, sl in _components(lm == index):
            extent = (
                (sl[2].stop - sl[2].start) * sx,
                (sl[1].stop - sl[1].start) * sy,
                0.0 if two_d else (sl[0].stop - sl[0].start) * sz,
            )
            findings.append(
                Finding(
                    kind="region",
                    label=name,
                    score=None,
                    centre_zyx=tuple(float(c) for c in centre),  # type: ignore[arg-type]
                    slice_range=(sl[0].start, sl[0].stop - 1),
                    extent_mm=extent,
                    volume_ml=None if two_d else size * voxel_ml,
                    area_mm2=size * sx * sy if two_d else None,
                    run_id=rec.run_id,
                )
            )
    structures.sort(key=lambda v: v.label.casefold())
    return findings, structures


def classification_finding(rec: ResultRecord) -> list[Finding]:
    """The classification as one finding, located at the heat map's peak when there is one."""
    if not rec.probabilities:
        return []
    ranked = tuple(sorted(rec.probabilities.items(), key=lambda kv: -kv[1]))
    top, p = ranked[0]
    nz, ny, nx = rec.shape
    centre: tuple[float, float, float] = ((nz - 1) / 2.0, (ny - 1) / 2.0, (nx - 1) / 2.0)
    if rec.heat_map is not None and float(rec.heat_map.max()) > 0:
        peak = np.unravel_index(int(np.argmax(rec.heat_map)), rec.heat_map.shape)
        centre = tuple(float(v) for v in peak)  # type: ignore[assignment]
    z = int(round(centre[0]))
    return [
        Finding(
            kind="classification",
            label=top,
            score=p,
            centre_zyx=centre,
            slice_range=(z, z),
            extent_mm=(0.0, 0.0, 0.0),
            probabilities=ranked,
            run_id=rec.run_id,
        )
    ]


#: What every surface says of a result run by explicit override.
OUTSIDE_INTENDED_USE = "outside intended use"


def caveats(rec: ResultRecord) -> list[str]:
    """The sentences that must travel with a result wherever it is shown: that it ran
    outside its intended use (an explicit override), each plausibility / out-of-distribution
    flag, and an OOD score outside the card's range that no flag explains. Empty for a plain,
    admitted, unflagged result."""
    out: list[str] = []
    if rec.outside_intended_use:
        out.append(
            f"Outside intended use: {rec.model_name} was run by explicit override on a series "
            "its model card does not admit."
        )
    for flag in rec.flags:
        if flag.code == "outside_intended_use" and rec.outside_intended_use:
            continue  # said above
        if flag.message not in out:
            out.append(flag.message)
    lo_hi, score = rec.ood_range, rec.ood_score
    if (
        score is not None
        and lo_hi is not None
        and not lo_hi[0] <= score <= lo_hi[1]
        and not any(f.code == "out_of_distribution" for f in rec.flags)
    ):
        out.append(
            f"Out-of-distribution score {score:.3g} is outside the range "
            f"{lo_hi[0]:.3g}–{lo_hi[1]:.3g} the model card measured on its validation data."
        )
    return out


def label_volumes(rec: ResultRecord, spacing_xyz: tuple[float, float, float]) -> dict[int, float]:
    """Volume per label index (mL; mm² for a 2D image): the engine's ``volumes_ml`` by name
    when the record has them, else counted on the label map (one bincount for all labels,
    so a 117-label map costs one pass)."""
    if rec.label_map is None:
        return {}
    by_name = rec.volumes_ml
    if by_name and all(info.name in by_name for info in rec.labels):
        return {info.index: float(by_name[info.name]) for info in rec.labels}
    lm = rec.label_map
    sx, sy, sz = spacing_xyz
    unit = sx * sy if lm.shape[0] == 1 else sx * sy * sz / 1000.0
    counts = np.bincount(lm.ravel(), minlength=256) if lm.size else np.zeros(256, int)
    return {info.index: float(counts[info.index]) * unit for info in rec.labels}


def summarise(rec: ResultRecord, spacing_xyz: tuple[float, float, float]) -> ResultSummary:
    """Every finding of a record (classification first, then boxes by score, then regions)."""
    regions, structures = region_findings(rec, spacing_xyz)
    boxes = [] if "boxes" in rec.removed_layers else box_findings(rec, spacing_xyz)
    return ResultSummary(classification_finding(rec) + boxes + regions, structures)
