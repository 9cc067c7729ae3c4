"""The phantoms' four structures (lung, a nodule, a vessel tree, the body) and the simulated
user of the interactive-segmentation literature (each next click at the centre -- the point
farthest from its border -- of the largest error region), for training and evaluating the
promptable demo model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from phantoms.chest import LUNG, NODULE, chest_ct

STRUCTURES = ("lung", "nodule", "vessel", "body")


def largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def structures(
    seed: int, shape: tuple[int, int, int]
) -> tuple[np.ndarray, tuple[float, float, float], dict[str, np.ndarray]]:
    """(HU image, spacing (z, y, x) mm, {structure: truth}) of one phantom: THE truth of the
    promptable model's training and of both quality benchmarks (tests/benchmarks/
    segment_quality.py, prompt_quality.py), so that every table speaks of the same structures."""
    ct = chest_ct(shape, seed=seed, n_nodules=(2, 3), nodule_radius_mm=(5.0, 10.0))
    hu = ct.hu
    lung = ct.labels == LUNG
    nodule = largest(ct.labels == NODULE)
    # The vessels are the soft-tissue tubes (40 HU) the phantom draws inside the lungs (the
    # lung label includes them); the biggest connected tree is the structure. The lung
    # label also holds a crescent of the aorta (160 HU, drawn over the lungs): excluded
    # with its rim, or "the vessel" would be that crescent.
    smooth = ndimage.median_filter(hu, 3)
    aorta = ndimage.binary_dilation(lung & (smooth > 100), iterations=2)
    vessel = largest(lung & (smooth > -400) & ~aorta)
    # The body: everything not outside air, holes (lungs) filled slice by slice.
    outside = largest(smooth < -950)
    body = ndimage.binary_fill_holes(~outside, structure=np.ones((1, 3, 3), bool))
    truth = {"lung": lung, "nodule": nodule, "vessel": vessel, "body": body}
    return hu, tuple(float(s) for s in ct.spacing[::-1]), truth  # type: ignore[return-value]


@dataclass(frozen=True)
class Click:
    zyx: tuple[int, int, int]
    positive: bool


def next_click(pred: np.ndarray, truth: np.ndarray, spacing_zyx) -> Click | None:
    """The centre of the largest error region (missed structure or wrong inclusion)."""
    best: tuple[int, np.ndarray, bool] | None = None
    for positive, err in ((True, truth & ~pred), (False, pred & ~truth)):
        if not err.any():
            continue
        comp = largest(err)
        n = int(comp.sum())
        if best is None or n > best[0]:
            best = (n, comp, positive)
    if best is None:
        return None
    _, comp, positive = best
    region = ndimage.find_objects(comp.astype(np.uint8))[0]
    dist = ndimage.distance_transform_edt(np.pad(comp[region], 1), sampling=spacing_zyx)
    at = np.unravel_index(int(np.argmax(dist)), dist.shape)
    zyx = tuple(int(a - 1 + s.start) for a, s in zip(at, region, strict=True))
    return Click(zyx, positive)  # type: ignore[arg-type]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = float(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / s if s else 1.0
