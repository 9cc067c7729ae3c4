"""Postprocessing: map model-grid outputs back onto the input's voxel grid, clean label maps."""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
from scipy import ndimage

from inference.device_copy import nonzero_to_host

# The OOD scores live in inference.ood; importable from here as before (explicit re-exports).
from inference.ood import ood_score_classification as ood_score_classification
from inference.ood import ood_score_detection as ood_score_detection
from inference.ood import ood_score_segmentation as ood_score_segmentation
from inference.preprocess import Frame
from inference.resampling import AxisMap, upsample_chunks


def from_model_axes(array: np.ndarray, frame: Frame) -> np.ndarray:
    """Undo ``preprocess.reorient``: an array on the oriented grid -> the input's axes."""
    out = array
    for k, f in enumerate(frame.flip):
        if f:
            out = np.flip(out, axis=k)
    return np.ascontiguousarray(np.transpose(out, np.argsort(frame.perm)))


def labels_to_input(
    probs,
    frame: Frame,
    output: str,
    indices: list[int],
    threshold: float = 0.5,
    device: str | None = None,
) -> np.ndarray:
    """Class probabilities (C, *model_shape) -> uint8 label map in the input grid.

    Probabilities are resampled back first and the decision taken at full resolution, so
    boundaries are smooth and exact. ``softmax``: channel k is label index k (0 = background).
    ``sigmoid``: channel k is ``indices[k]``, above ``threshold``; later channels win overlaps.
    ``device``: do it in torch there (``labels_to_input_on``) instead of numpy on the CPU.
    """
    if device is not None:
        return labels_to_input_on(probs, frame, output, indices, threshold, device)
    maps = frame.back_maps()
    if output != "sigmoid" and len(frame.oriented_shape) == 3:
        return from_model_axes(_argmax_upsampled(probs, frame.oriented_shape, maps=maps), frame)
    out = np.zeros(frame.oriented_shape, dtype=np.uint8)
    lut = np.asarray(indices, dtype=np.uint8)
    for z0, z1, slab in upsample_chunks(probs, frame.oriented_shape, maps=maps):
        if output == "sigmoid":
            res = np.zeros(slab.shape[1:], dtype=np.uint8)
            above = (slab >= threshold).numpy()
            for k in range(slab.shape[0]):
                res[above[k]] = lut[k]
        else:
            res = argmax_uint8(slab)
        out[z0:z1] = res
    return from_model_axes(out, frame)


def argmax_uint8(slab) -> np.ndarray:
    """Channel argmax (first maximum wins, like torch.argmax) as uint8; a running maximum
    with masked fills is ~4x faster on the CPU than argmax over the leading axis."""
    return argmax_tensor(slab).cpu().numpy()


def argmax_tensor(slab):
    """``argmax_uint8`` as a uint8 tensor on the slab's own device."""
    import torch

    best = slab[0]
    idx = torch.zeros(slab.shape[1:], dtype=torch.uint8, device=slab.device)
    for k in range(1, slab.shape[0]):
        better = slab[k] > best
        idx.masked_fill_(better, k)
        best = torch.maximum(best, slab[k])
    return idx


# ---- the same mapping in torch on a device (CUDA when the run is there) ---------------------
#: Output slices per upsampling step on a device: big enough to keep a GPU busy, small
#: enough that one slab of a 512 x 512 multi-channel map stays a few hundred MB.
DEVICE_CHUNK = 32


def from_model_axes_tensor(t, frame: Frame):
    """``from_model_axes`` for a torch tensor (on any device)."""
    dims = [k for k, f in enumerate(frame.flip) if f]
    if dims:
        t = t.flip(dims)
    return t.permute(*(int(a) for a in np.argsort(frame.perm))).contiguous()


def labels_to_input_on(
    probs, frame: Frame, output: str, indices: list[int], threshold: float, device: str
) -> np.ndarray:
    """``labels_to_input`` in torch on ``device``: the probabilities are upsampled slab by
    slab (trilinear/bilinear, align_corners=False, as the CPU path) and the decision taken
    there; only the uint8 label map comes back to the host."""
    import torch

    p = probs.to(device).float()
    out = torch.empty(frame.oriented_shape, dtype=torch.uint8, device=p.device)
    lut = torch.as_tensor(np.asarray(indices, dtype=np.uint8), device=p.device)
    maps = frame.back_maps()
    for z0, z1, slab in upsample_chunks(p, frame.oriented_shape, chunk=DEVICE_CHUNK, maps=maps):
        if output == "sigmoid":
            res = torch.zeros(slab.shape[1:], dtype=torch.uint8, device=p.device)
            for k in range(slab.shape[0]):
                res[slab[k] >= threshold] = lut[k]
        else:
            res = argmax_tensor(slab)
        out[z0:z1] = res
    return nonzero_to_host(from_model_axes_tensor(out, frame))


def heat_to_input_on(channel, frame: Frame, device: str, floor: float = 1e-4) -> np.ndarray:
    """``heat_to_input`` in torch on ``device`` (the same slabs skipped below ``floor``)."""
    import torch

    from inference.preprocess import axis_weights

    shape = frame.oriented_shape
    maps = frame.back_maps()
    c = channel.to(device).float().clamp(0.0, 1.0)
    if len(shape) == 2:
        _, _, slab = next(upsample_chunks(c[None], shape, maps=maps))
        return nonzero_to_host(from_model_axes_tensor(slab[0], frame))
    out = torch.zeros(shape, dtype=torch.float32, device=c.device)
    i0, i1, _ = maps[0].weights() if maps else axis_weights(shape[0], c.shape[0])
    slice_max = c.amax(dim=(1, 2)).cpu().numpy()
    # The CPU path's 8-slice slabs decide what is skipped; runs of kept slabs upsample together.
    keep = [
        z0
        for z0 in range(0, shape[0], 8)
        if slice_max[i0[z0] : i1[min(shape[0], z0 + 8) - 1] + 1].max() >= floor
    ]
    start, per_step = 0, max(1, DEVICE_CHUNK // 8)
    while start < len(keep):
        end = start
        while end + 1 < len(keep) and keep[end + 1] == keep[end] + 8 and end - start + 1 < per_step:
            end += 1
        z0, z1 = keep[start], min(shape[0], keep[end] + 8)
        _, _, slab = next(upsample_chunks(c[None], shape, chunk=z1 - z0, start=z0, maps=maps))
        out[z0:z1] = slab[0]
        start = end + 1
    return nonzero_to_host(from_model_axes_tensor(out, frame))


def _uniform_cubes(labels: np.ndarray) -> np.ndarray:
    """True where the 2x2x2 block of coarse voxels starting there (clamped at the far edges)
    carries one label: every output voxel interpolated from that block gets that label."""
    padded = np.pad(labels, [(0, 1)] * 3, mode="edge")
    nz, ny, nx = labels.shape
    same = np.ones(labels.shape, dtype=bool)
    for dz, dy, dx in product((0, 1), repeat=3):
        if dz or dy or dx:
            same &= padded[dz : dz + nz, dy : dy + ny, dx : dx + nx] == labels
    return same


def _trilinear_points(p: np.ndarray, z, y, x) -> np.ndarray:
    """Trilinear values of a coarse array ``p`` at points given as (i0, i1, w) per axis."""
    (z0, z1, wz), (y0, y1, wy), (x0, x1, wx) = z, y, x

    def row(zi, yi):
        a = p[zi, yi, x0]
        return a + (p[zi, yi, x1] - a) * wx

    def plane(zi):
        a = row(zi, y0)
        return a + (row(zi, y1) - a) * wy

    a = plane(z0)
    return a + (plane(z1) - a) * wz


def _argmax_upsampled(
    probs, shape: tuple[int, int, int], chunk: int = 8, maps: tuple[AxisMap, ...] | None = None
) -> np.ndarray:
    """argmax of trilinearly upsampled probabilities, without upsampling all of them.

    If every coarse voxel around an output voxel has the same argmax k, the interpolated
    probabilities (a convex combination) have argmax k too, exactly. So only voxels near a
    label boundary are interpolated; the rest are a uint8 lookup. Slabs that are mostly
    boundary (noisy maps) take the dense path. ``maps``: ``Frame.back_maps()`` (None:
    align_corners=False interpolation)."""
    from inference.preprocess import axis_weights

    p = np.ascontiguousarray(probs.float().numpy())
    coarse = argmax_uint8(probs)
    uniform = _uniform_cubes(coarse)
    if maps:
        zw, yw, xw = (m.weights() for m in maps)
    else:
        zw = axis_weights(shape[0], p.shape[1])
        yw = axis_weights(shape[1], p.shape[2])
        xw = axis_weights(shape[2], p.shape[3])
    out = np.empty(shape, dtype=np.uint8)
    for z0 in range(0, shape[0], chunk):
        z1 = min(shape[0], z0 + chunk)
        zi = zw[0][z0:z1]
        lab = coarse[zi][:, yw[0]][:, :, xw[0]]
        edge = ~uniform[zi][:, yw[0]][:, :, xw[0]]
        n = int(edge.sum())
        if n > 0.3 * edge.size:
            lab = _dense_slab(probs, shape, z0, z1, maps)
        elif n:
            zz, yy, xx = np.nonzero(edge)
            zz = zz + z0
            pts = [tuple(a[i] for a in axis) for axis, i in ((zw, zz), (yw, yy), (xw, xx))]
            best = _trilinear_points(p[0], *pts)
            idx = np.zeros(n, dtype=np.uint8)
            for k in range(1, p.shape[0]):
                v = _trilinear_points(p[k], *pts)
                better = v > best
                idx[better] = k
                best = np.maximum(best, v)
            lab[edge] = idx
        out[z0:z1] = lab
    return out


def _dense_slab(
    probs, shape: tuple[int, int, int], z0: int, z1: int, maps: tuple[AxisMap, ...] | None
) -> np.ndarray:
    _, _, slab = next(upsample_chunks(probs, shape, chunk=z1 - z0, start=z0, maps=maps))
    return argmax_uint8(slab)


def heat_to_input(
    channel, frame: Frame, floor: float = 1e-4, device: str | None = None
) -> np.ndarray:
    """One probability channel (*model_shape) -> float32 in [0, 1] in the input grid.

    Slabs whose coarse source slices stay below ``floor`` everywhere are written as zeros
    without interpolating (error < ``floor``): a nodule heat map is empty almost everywhere.
    ``device``: do it in torch there (``heat_to_input_on``)."""
    from inference.preprocess import axis_weights

    if device is not None:
        return heat_to_input_on(channel, frame, device, floor)

    shape = frame.oriented_shape
    maps = frame.back_maps()
    out = np.zeros(shape, dtype=np.float32)
    c = channel.float().clamp(0.0, 1.0)
    if len(shape) == 2:
        _, _, slab = next(upsample_chunks(c[None], shape, maps=maps))
        return from_model_axes(slab[0].numpy(), frame)
    i0, i1, _ = maps[0].weights() if maps else axis_weights(shape[0], c.shape[0])
    slice_max = c.amax(dim=(1, 2)).numpy()
    chunk = 8
    for z0 in range(0, shape[0], chunk):
        z1 = min(shape[0], z0 + chunk)
        if slice_max[i0[z0] : i1[z1 - 1] + 1].max() < floor:
            continue
        _, _, slab = next(upsample_chunks(c[None], shape, chunk=z1 - z0, start=z0, maps=maps))
        out[z0:z1] = slab[0].numpy()
    return from_model_axes(out, frame)


def box_to_input(corners: tuple[float, ...], frame: Frame) -> tuple[float, ...]:
    """Model-grid box corners (lo..., hi...) -> input-grid corners in the input's axis order."""
    d = len(corners) // 2
    lo = np.empty(d)
    hi = np.empty(d)
    for k in range(d):
        a = frame.to_input(k, corners[k])
        b = frame.to_input(k, corners[k + d])
        if frame.flip[k]:
            n = frame.oriented_shape[k] - 1
            a, b = n - b, n - a
        axis = frame.perm[k]
        # Both corners clipped into the grid, so lo <= hi holds even for a box at the edge of
        # a model grid finer than the input (a core Box refuses lo > hi).
        last = float(frame.input_shape[axis] - 1)
        lo[axis] = min(max(0.0, a), last)
        hi[axis] = min(max(0.0, b), last)
    return tuple(float(v) for v in lo) + tuple(float(v) for v in hi)


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel (axis projections: no full-size index arrays)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def clean_components(
    label_map: np.ndarray, thresholds: dict[str, Any], indices: list[int] | None = None
) -> np.ndarray:
    """Drop components smaller than ``min_component_voxels``; keep only the largest component of
    each label listed in ``largest_component`` (e.g. the body, one organ). In place.

    ``indices`` are the label values to clean (default: every value present). Work happens
    inside each label's bounding box, so a small label in a big volume costs little."""
    min_size = int(thresholds.get("min_component_voxels", 0) or 0)
    largest = set(thresholds.get("largest_component", []) or [])
    if not min_size and not largest:
        return label_map
    if indices is None:
        indices = [int(i) for i in np.flatnonzero(np.bincount(label_map.ravel()))]
    for idx in indices:
        if idx == 0 or (idx not in largest and not min_size):
            continue
        mask = label_map == idx
        box = bounding_box(mask)
        if box is None:
            continue
        sub = mask[box]
        del mask
        comps, n = ndimage.label(sub)
        sizes = _component_sizes(comps, n)
        drop = sizes < min_size
        if idx in largest:
            drop |= np.arange(len(sizes)) != int(np.argmax(sizes))
        drop[0] = False
        dropped = np.flatnonzero(drop)
        if len(dropped) > 64:  # many components: one pass over the box
            label_map[box][drop[comps] & sub] = 0
        elif len(dropped):  # a few specks: touch only their own small boxes
            objects = ndimage.find_objects(comps)
            target = label_map[box]
            for k in dropped:
                sl = objects[k - 1]
                target[sl][comps[sl] == k] = 0
    return label_map


def _component_sizes(comps: np.ndarray, n: int) -> np.ndarray:
    """Voxels per component (index 0 = background, set to 0). torch.bincount counts int32
    labels directly; numpy's would first widen the whole array to int64."""
    try:
        import torch

        sizes = torch.bincount(torch.from_numpy(comps.ravel()), minlength=n + 1).numpy()
    except (ImportError, RuntimeError):
        sizes = np.bincount(comps.ravel(), minlength=n + 1)
    sizes = sizes.astype(np.int64)
    sizes[0] = 0
    return sizes


def label_volumes(label_map: np.ndarray, spacing: Any, names: dict[int, str]) -> dict[str, float]:
    """Label name -> volume in mL (3D) or area in mm^2 (2D images)."""
    sp = [float(s) for s in spacing]
    if label_map.ndim == 3:
        unit = sp[0] * sp[1] * sp[2] / 1000.0
    else:
        unit = sp[0] * sp[1]
    # count_nonzero per label: bincount would first widen the whole map to int64.
    return {
        name: float(np.count_nonzero(label_map == idx) * unit)
        for idx, name in names.items()
        if idx > 0
    }
