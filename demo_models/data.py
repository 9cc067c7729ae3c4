"""Training and evaluation data for the shipped demo models, generated from the phantoms.

Every sample is generated directly at the model card's target spacing and preprocessed with
the card's intensity steps, so what a network sees in training is what the engine feeds it
after resampling. Only numpy here: torch tensors are made by the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from phantoms.chest import ChestCT, Nodule, chest_ct, chest_radiograph

#: Field of view of the chest CT phantom (x, y, z) mm, as chest_ct() builds it by default.
CT_FOV_MM = (350.0, 350.0, 300.0)


def shape_for_spacing(
    spacing_xyz: Sequence[float], fov_mm: Sequence[float] = CT_FOV_MM
) -> tuple[int, int, int]:
    """(z, y, x) voxel counts that cover ``fov_mm`` at ``spacing_xyz``."""
    sx, sy, sz = (float(s) for s in spacing_xyz)
    fx, fy, fz = (float(f) for f in fov_mm)
    return (round(fz / sz), round(fy / sy), round(fx / sx))


#: Native (z, y, x) grids training phantoms are drawn at before resampling: the demo study's
#: (96, 256, 256) and coarser/finer neighbours, so the model sees several partial-volume looks.
NATIVE_SHAPES = ((64, 192, 192), (96, 256, 256), (120, 320, 320))


def ct_phantom(
    seed: int,
    spacing_xyz: Sequence[float],
    *,
    vary: bool,
    n_nodules: int | tuple[int, int] = (1, 4),
    nodule_radius_mm: tuple[float, float] = (3.0, 9.0),
) -> ChestCT:
    """A chest CT phantom on the model grid for ``spacing_xyz``, made the way the engine makes
    its input: generated at a native scanner resolution, then resampled with the engine's own
    linear resampling (labels: nearest). Generating directly at the coarse spacing would give
    hard edges, but resampling blends air and fat at the skin into lung-like values, and a
    model that never saw that calls the body outline lung.

    With ``vary`` the scanner look (noise, contrast, lung and nodule density) is drawn from
    the seed as well, so a network does not learn one exact grey level. The returned
    ``spacing`` is the model grid's (the engine's ``round(n * s / t)`` rule makes it differ
    slightly from ``spacing_xyz``), and nodule centres are in model voxels.
    """
    from inference.preprocess import resample_labels, resample_volume

    rng = np.random.default_rng([seed, 7])
    native = NATIVE_SHAPES[int(rng.integers(len(NATIVE_SHAPES)))]
    look = {}
    if vary:
        look = {
            "noise_hu": float(rng.uniform(5.0, 30.0)),
            # Contrast scales HU around water: lung at -880 x 1.05 stays ~80 HU above air.
            "contrast": float(rng.uniform(0.95, 1.05)),
            "lung_hu": float(rng.uniform(-880.0, -820.0)),
            "nodule_hu": float(rng.uniform(-20.0, 80.0)),
        }
    ct = chest_ct(native, seed=seed, n_nodules=n_nodules, nodule_radius_mm=nodule_radius_mm, **look)
    fov = np.asarray(native[::-1]) * np.asarray(ct.spacing)  # (x, y, z) mm
    model = tuple(
        max(1, round(f / t)) for f, t in zip(fov[::-1], tuple(spacing_xyz)[::-1], strict=True)
    )
    hu = resample_volume(ct.hu[None], model)[0].numpy()
    labels = resample_labels(ct.labels, model)
    scale = np.asarray(model) / np.asarray(native)
    nodules = [
        Nodule(tuple(float(v) for v in (np.asarray(n.center_zyx) + 0.5) * scale - 0.5), n.radius_mm)
        for n in ct.nodules
    ]
    spacing = tuple(float(v) for v in fov / np.asarray(model[::-1]))
    return ChestCT(
        hu=np.clip(np.rint(hu), -1024, 3071).astype(np.int16),
        labels=labels,
        spacing=spacing,  # type: ignore[arg-type]
        nodules=nodules,
        seed=seed,
    )


def clip_scale(
    hu: np.ndarray, a_min: float, a_max: float, b_min: float = 0.0, b_max: float = 1.0
) -> np.ndarray:
    """The card's ``clip_scale`` step: clip to [a_min, a_max], map linearly to [b_min, b_max]."""
    x = (np.clip(hu.astype(np.float32), a_min, a_max) - a_min) / (a_max - a_min)
    return (x * (b_max - b_min) + b_min).astype(np.float32)


def crop(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """A crop of ``size`` at ``start``; parts outside the array are filled with its minimum."""
    out = np.full(tuple(size), array.min(), dtype=array.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, array.shape, strict=True):
        a, b = max(s, 0), min(s + n, dim)
        src.append(slice(a, b))
        dst.append(slice(a - s, b - s))
    out[tuple(dst)] = array[tuple(src)]
    return out


def patch_starts(
    shape: Sequence[int],
    patch: Sequence[int],
    rng: np.random.Generator,
    n: int,
    centres: Sequence[Sequence[float]] = (),
    focus_fraction: float = 0.5,
) -> list[tuple[int, ...]]:
    """``n`` patch corners: about ``focus_fraction`` of them near one of ``centres`` (jittered
    by a quarter patch, so objects are not always in the middle), the rest uniform."""
    starts = []
    for _ in range(n):
        if len(centres) and rng.random() < focus_fraction:
            c = np.asarray(centres[rng.integers(len(centres))], dtype=float)
            jitter = rng.uniform(-0.25, 0.25, len(patch)) * np.asarray(patch)
            s = np.round(c + jitter - np.asarray(patch) / 2.0).astype(int)
        else:
            s = np.array(
                [rng.integers(0, max(d - p, 0) + 1) for d, p in zip(shape, patch, strict=True)]
            )
        hi = np.maximum(np.asarray(shape) - np.asarray(patch), 0)
        starts.append(tuple(int(v) for v in np.clip(s, 0, hi)))
    return starts


# ---- detection ----------------------------------------------------------------------------


def nodule_boxes(nodules: Sequence[Nodule], spacing_xyz: Sequence[float]) -> np.ndarray:
    """(N, 6) true boxes (z0, y0, x0, z1, y1, x1) in voxels."""
    rows = [np.concatenate(n.box_zyx(tuple(spacing_xyz))) for n in nodules]  # type: ignore[arg-type]
    return np.asarray(rows, dtype=float).reshape(-1, 6)


# ---- radiographs --------------------------------------------------------------------------


def radiograph_set(
    seeds: Sequence[int], size: int = 128, paired: bool = False
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, float, float] | None]]:
    """Images (N, size, size) float32 in [0, 1], labels (N,) 0 normal / 1 nodule, and the
    nodule boxes. Nodule presence alternates with the seed so the classes are balanced; with
    ``paired`` every seed gives both images instead: the same anatomy with and without a
    nodule, so the nodule is the only thing that tells the classes apart (faster learning)."""
    images, labels, boxes = [], [], []
    for s in seeds:
        for nodule in (False, True) if paired else (bool(s % 2),):
            xr = chest_radiograph(size, seed=int(s), nodule=nodule)
            images.append(minmax(xr.image))
            labels.append(int(xr.has_nodule))
            boxes.append(xr.box_yx)
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64), boxes


def minmax(image: np.ndarray) -> np.ndarray:
    """The card's ``minmax`` step: linear map of the image's range onto [0, 1]."""
    x = image.astype(np.float32)
    return (x - x.min()) / (float(np.ptp(x)) + 1e-6)
