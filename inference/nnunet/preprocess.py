"""nnU-Net's DefaultPreprocessor for one image: transpose, crop to non-zero, normalise, resample.

Order and arithmetic follow ``DefaultPreprocessor.run_case_npy`` (float32 data, normalisation
before resampling, the nonzero mask with holes filled); only the cropped region is copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.nnunet.config import NnunetConfig, Normalization
from inference.nnunet.resample import compute_new_shape, resample_channel


@dataclass(frozen=True)
class CropFrame:
    """What the export needs to map a prediction back (all in the transposed axis order)."""

    shape_before_cropping: tuple[int, ...]
    bbox: tuple[tuple[int, int], ...]
    shape_after_cropping: tuple[int, ...]
    spacing: tuple[float, ...]  # the image's, transposed
    target_spacing: tuple[float, ...]  # the network's (3 entries, also for 2d)
    shape_after_resampling: tuple[int, ...]


def transposed_spacing(config: NnunetConfig, spacing_zyx) -> tuple[float, ...]:
    return tuple(float(spacing_zyx[i]) for i in config.transpose_forward)


def target_spacing(config: NnunetConfig, spacing_t) -> tuple[float, ...]:
    if config.is_2d:  # 2d configurations keep the spacing between slices
        return (float(spacing_t[0]), *config.spacing)
    return tuple(config.spacing)


def plan_geometry(config: NnunetConfig, shape_zyx, spacing_zyx) -> tuple[tuple, tuple, tuple]:
    """(transposed shape, transposed spacing, resampled shape before cropping): an upper
    bound of the arrays a run allocates, computed from the header alone."""
    shape_t = tuple(int(shape_zyx[i]) for i in config.transpose_forward)
    sp_t = transposed_spacing(config, spacing_zyx)
    return shape_t, sp_t, compute_new_shape(shape_t, sp_t, target_spacing(config, sp_t))


def nonzero_bbox(image_czyx: np.ndarray, fwd) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """nnU-Net's ``create_nonzero_mask`` + ``get_bbox_from_mask`` on the transposed image."""
    from scipy.ndimage import binary_fill_holes

    mask = None
    for c in range(image_czyx.shape[0]):
        ch = image_czyx[c].transpose(fwd)
        nz = (ch.astype(np.float32) != 0) if ch.dtype == np.float64 else (ch != 0)
        mask = nz if mask is None else (mask | nz)
    mask = binary_fill_holes(mask)
    bbox = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        bbox.append((int(hit[0]), int(hit[-1]) + 1) if hit.size else (0, mask.shape[axis]))
    return mask, tuple(bbox)


def normalize(image: np.ndarray, norm: Normalization, inside: np.ndarray) -> None:
    """One float32 channel in place, as nnU-Net's normalisation classes do it."""
    eps = 1e-8
    if norm.scheme == "CTNormalization":
        np.clip(image, norm.lower, norm.upper, out=image)
        image -= norm.mean
        image /= max(norm.std, eps)
    elif norm.scheme == "ZScoreNormalization":
        if norm.use_mask:
            mean = image[inside].mean()
            std = image[inside].std()
            image[inside] = (image[inside] - mean) / (max(std, eps))
        else:
            mean = image.mean()
            std = image.std()
            image -= mean
            image /= max(std, eps)
    elif norm.scheme == "RescaleTo01Normalization":
        image -= image.min()
        image /= np.clip(image.max(), a_min=eps, a_max=None)
    elif norm.scheme == "RGBTo01Normalization":
        image /= 255.0
    # NoNormalization: float32 as is


def preprocess(
    image_czyx: np.ndarray, spacing_zyx, config: NnunetConfig
) -> tuple[np.ndarray, CropFrame]:
    """(data float32 (C, *resampled shape), geometry) for the network."""
    fwd = config.transpose_forward
    shape_t = tuple(image_czyx.shape[1 + i] for i in fwd)
    spacing_t = transposed_spacing(config, spacing_zyx)
    mask, bbox = nonzero_bbox(image_czyx, fwd)
    crop = tuple(slice(a, b) for a, b in bbox)
    inside = mask[crop]
    del mask
    data = np.stack(
        [image_czyx[c].transpose(fwd)[crop].astype(np.float32) for c in range(image_czyx.shape[0])]
    )
    shape_crop = data.shape[1:]
    for c, norm in enumerate(config.normalization):
        normalize(data[c], norm, inside)
    del inside
    target = target_spacing(config, spacing_t)
    new_shape = compute_new_shape(shape_crop, spacing_t, target)
    if tuple(new_shape) != tuple(shape_crop):
        out = np.zeros((data.shape[0], *new_shape), dtype=np.float32)
        for c in range(data.shape[0]):
            out[c] = resample_channel(
                data[c], new_shape, config.resampling_data, spacing_t, target, np.float32
            )
        data = out
    geom = CropFrame(shape_t, bbox, tuple(shape_crop), spacing_t, target, tuple(new_shape))
    return data, geom
