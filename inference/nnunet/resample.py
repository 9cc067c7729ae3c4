"""nnU-Net's resampling (``resample_data_or_seg_to_shape`` for images and probabilities), one
channel at a time, numerically identical to nnU-Net's skimage/scipy path.

nnU-Net resizes with ``skimage.transform.resize(order, mode='edge', anti_aliasing=False)``,
which is ``scipy.ndimage.zoom(grid_mode=True, mode='nearest')`` clipped to the input's range;
that is reproduced here with scipy alone. Anisotropic data ("separate z": spacing ratio > 3)
is resized slice by slice in-plane with ``order`` and along the low-resolution axis with
``order_z`` (nnU-Net's 3D ``map_coordinates``; for order 0 it is a gather of whole slices).
"""

from __future__ import annotations

import numpy as np

from inference.nnunet.config import ANISO_THRESHOLD, Resampling


def compute_new_shape(old_shape, old_spacing, new_spacing) -> tuple[int, ...]:
    """nnU-Net's ``compute_new_shape`` (Python ``round``: half to even)."""
    return tuple(
        int(round(i / j * k)) for i, j, k in zip(old_spacing, new_spacing, old_shape, strict=True)
    )


def separate_z(
    rule: Resampling, current_spacing, new_spacing, threshold: float = ANISO_THRESHOLD
) -> tuple[bool, int | None]:
    """nnU-Net's ``determine_do_sep_z_and_axis``: resample the low-resolution axis apart?"""

    def lowres_axis(spacing) -> np.ndarray:
        s = np.asarray(spacing, dtype=float)
        return np.where(max(s) / s == 1)[0]

    def aniso(spacing) -> bool:
        return bool(np.max(spacing) / np.min(spacing) > threshold)

    if rule.force_separate_z is not None:
        do = rule.force_separate_z
        axis = lowres_axis(current_spacing) if do else None
    elif aniso(current_spacing):
        do, axis = True, lowres_axis(current_spacing)
    elif aniso(new_spacing):
        do, axis = True, lowres_axis(new_spacing)
    else:
        do, axis = False, None
    if axis is None or len(axis) != 1:
        return False, None
    return do, int(axis[0])


def sk_resize(image: np.ndarray, shape, order: int) -> np.ndarray:
    """``skimage.transform.resize(image, shape, order, mode='edge', anti_aliasing=False)``
    for a float64 image (what nnU-Net passes), returning float64."""
    from scipy import ndimage

    factors = np.divide(image.shape, shape)
    zoom = [1 / f for f in factors]
    out = ndimage.zoom(image, zoom, order=order, mode="nearest", grid_mode=True)
    if order > 0:
        np.clip(out, np.min(image), np.max(image), out=out)
    return out


def resample_channel(
    channel: np.ndarray,
    new_shape,
    rule: Resampling,
    current_spacing,
    new_spacing,
    dtype_out=None,
) -> np.ndarray:
    """One channel of nnU-Net's ``resample_data_or_seg(is_seg=False)`` to ``new_shape``.

    Returns ``channel`` itself when the shape does not change (as nnU-Net does)."""
    shape = np.array(channel.shape)
    new_shape = np.array(new_shape)
    dtype_out = channel.dtype if dtype_out is None else dtype_out
    if np.all(shape == new_shape):
        return channel
    do_sep, axis = separate_z(rule, current_spacing, new_spacing)
    data = channel.astype(float, copy=False)
    if not do_sep:
        return sk_resize(data, new_shape, rule.order).astype(dtype_out, copy=False)
    assert axis is not None
    in_plane = [a for a in range(3) if a != axis]
    tmp_shape = new_shape.copy()
    tmp_shape[axis] = shape[axis]
    here = np.zeros(tmp_shape)
    for i in range(shape[axis]):
        sl: list[slice | int] = [slice(None)] * 3
        sl[axis] = i
        here[tuple(sl)] = sk_resize(data[tuple(sl)], new_shape[in_plane], rule.order)
    del data
    if shape[axis] == new_shape[axis]:
        return here.astype(dtype_out, copy=False)
    return _along_axis(here, new_shape, axis, rule.order_z).astype(dtype_out, copy=False)


def _along_axis(here: np.ndarray, new_shape, axis: int, order_z: int) -> np.ndarray:
    """The out-of-plane step of nnU-Net's separate-z resampling (``map_coordinates`` with
    align_corners=False coordinates, mode 'nearest'). The in-plane coordinates are whole
    numbers there, so order 0 is exactly a gather of source slices along ``axis``."""
    from scipy import ndimage

    n_src = here.shape[axis]
    n_dst = int(new_shape[axis])
    if order_z == 0:
        scale = float(n_src) / n_dst
        coords = scale * (np.arange(n_dst) + 0.5) - 0.5
        index = ndimage.map_coordinates(
            np.arange(n_src, dtype=float), coords[None], order=0, mode="nearest"
        )
        return np.take(here, index.astype(np.intp), axis=axis)
    rows, cols, dim = (int(x) for x in new_shape)
    o_rows, o_cols, o_dim = here.shape
    map_rows, map_cols, map_dims = np.mgrid[:rows, :cols, :dim]
    coords = np.array(
        [
            float(o_rows) / rows * (map_rows + 0.5) - 0.5,
            float(o_cols) / cols * (map_cols + 0.5) - 0.5,
            float(o_dim) / dim * (map_dims + 0.5) - 0.5,
        ]
    )
    return ndimage.map_coordinates(here, coords, order=order_z, mode="nearest")
