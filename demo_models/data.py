"""The demo models' data: synthetic phantoms written as datasets ``radlens train`` reads.

Every training phantom becomes one case in the RadLens export layout
(``inference.training.dataset.write_case``) at the native scanner grid it was drawn on; the
trainer then resamples it to the card's spacing and applies the card's intensity steps
exactly as the engine does at inference time (``inference.training.task_data``). Seeds:
training phantoms use low seeds, detection threshold choice 5000+, held-out tests 1000+ (CT)
or 10000+ (radiographs), so no evaluation phantom is ever seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference.training.dataset import write_case
from phantoms.chest import LABEL_NAMES, ChestXR, Nodule, chest_ct, chest_radiograph

#: Field of view of the chest CT phantom (x, y, z) mm, as chest_ct() builds it by default.
CT_FOV_MM = (350.0, 350.0, 300.0)
#: Native (z, y, x) grids training phantoms are drawn at: the demo study's (96, 256, 256) and
#: coarser/finer neighbours, so the model sees several partial-volume looks after resampling.
NATIVE_SHAPES = ((64, 192, 192), (96, 256, 256), (120, 320, 320))
CT_LABELS = {i: n for i, n in LABEL_NAMES.items() if i}


def shape_for_spacing(
    spacing_xyz: Sequence[float], fov_mm: Sequence[float] = CT_FOV_MM
) -> tuple[int, int, int]:
    """(z, y, x) voxel counts that cover ``fov_mm`` at ``spacing_xyz``."""
    sx, sy, sz = (float(s) for s in spacing_xyz)
    fx, fy, fz = (float(f) for f in fov_mm)
    return (round(fz / sz), round(fy / sy), round(fx / sx))


def nodule_boxes(nodules: Sequence[Nodule], spacing_xyz: Sequence[float]) -> np.ndarray:
    """(N, 6) true boxes (z0, y0, x0, z1, y1, x1) in voxels."""
    rows = [np.concatenate(n.box_zyx(tuple(spacing_xyz))) for n in nodules]  # type: ignore[arg-type]
    return np.asarray(rows, dtype=float).reshape(-1, 6)


def scanner_look(seed: int) -> tuple[tuple[int, int, int], dict[str, float]]:
    """The native grid and scanner look (noise, contrast, lung and nodule density) drawn from
    the seed, so a network neither learns one exact grey level nor one partial-volume look.
    Contrast scales HU around water: lung at -880 x 1.05 stays ~80 HU above air."""
    rng = np.random.default_rng([seed, 7])
    native = NATIVE_SHAPES[int(rng.integers(len(NATIVE_SHAPES)))]
    look = {
        "noise_hu": float(rng.uniform(5.0, 30.0)),
        "contrast": float(rng.uniform(0.95, 1.05)),
        "lung_hu": float(rng.uniform(-880.0, -820.0)),
        "nodule_hu": float(rng.uniform(-20.0, 80.0)),
    }
    return native, look


def write_ct_dataset(
    root: Path,
    seeds: Sequence[int],
    *,
    n_nodules: tuple[int, int],
    nodule_radius_mm: tuple[float, float],
    native: tuple[int, int, int] | None = None,
    boxes_only: bool = False,
) -> Path:
    """One chest CT case per seed (each its own patient) on the seed's native grid and look
    (``native`` fixes the grid: tests): HU, lung/nodule mask and nodule boxes (label 2), or
    with ``boxes_only`` just the nodule boxes as label 1 (a detector's one class)."""
    for seed in seeds:
        shape, look = scanner_look(seed)
        ct = chest_ct(
            native or shape,
            seed=seed,
            n_nodules=n_nodules,
            nodule_radius_mm=nodule_radius_mm,
            **look,  # type: ignore[arg-type]
        )
        boxes = [tuple(float(v) for v in b) for b in nodule_boxes(ct.nodules, ct.spacing)]
        mask, table, box_label = (
            (None, {1: "nodule"}, 1) if boxes_only else (ct.labels, CT_LABELS, 2)
        )
        write_case(
            root, f"ct{seed:05d}", ct.hu, mask, ct.spacing, table,
            patient_id=f"P{seed:05d}", boxes=boxes, box_labels=[box_label] * len(boxes),
        )  # fmt: skip
    return root


def radiograph_pair(seed: int, size: int) -> list[ChestXR]:
    """The same anatomy without and with a nodule, so the nodule is the only thing that
    tells the two classes apart."""
    return [chest_radiograph(size, seed=int(seed), nodule=nodule) for nodule in (False, True)]


def write_radiograph_dataset(root: Path, seeds: Sequence[int], size: int) -> Path:
    """Two DX cases per seed and one patient: the pair of ``radiograph_pair`` (class 0 / 1),
    so both land on the same side of the trainer's patient split."""
    for seed in seeds:
        for xr in radiograph_pair(seed, size):
            cls = int(xr.has_nodule)
            write_case(
                root, f"xr{seed:05d}-{cls}", xr.image, None, (*xr.spacing, 1.0), {1: "nodule"},
                patient_id=f"P{seed:05d}", modality="DX", class_index=cls,
            )  # fmt: skip
    return root
