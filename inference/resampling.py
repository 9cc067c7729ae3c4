"""Linear resampling between an input grid and a model grid: where the model grid sits, axis
by axis, and the slab-wise resampling and upsampling that never hold a full float copy.

Two conventions, named by a card's ``preprocessing.resample``:

- ``"radlens"`` (RadLens's own models): the model grid is the input's extent cut into
  round(n * s / t) voxels, sampled with align_corners=False (model voxel m covers input
  (m + 0.5) * n / N - 0.5); the spacing is close to, not exactly, the target.
- ``"monai_spacingd"`` (converted MONAI bundles with a Spacingd): MONAI's rule. The model grid
  has exactly the target spacing, its first voxel's centre on the input's first voxel's centre
  *in the network's own directions* (the engine hands such a network its grid that way round:
  ``networks.frame_axes``), and round((n - 1) * s / t + 1) voxels; values are linear with
  border clamping, and the inverse (MONAI's Invertd) samples the model grid at the input's
  voxel centres.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

RADLENS = "radlens"
MONAI_SPACINGD = "monai_spacingd"
CONVENTIONS = (RADLENS, MONAI_SPACINGD)


@dataclass(frozen=True)
class AxisMap:
    """Along one axis, output index i samples source coordinate ``offset + scale * i``,
    clamped to [0, n_src - 1] (border); ``n_out`` output voxels."""

    offset: float
    scale: float
    n_src: int
    n_out: int

    def inverse(self) -> AxisMap:
        """The map back: source index j -> output coordinate (j - offset) / scale."""
        return AxisMap(-self.offset / self.scale, 1.0 / self.scale, self.n_out, self.n_src)

    def weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i0, i1, w): output i blends sources i0[i] and i1[i] with weight w[i] on i1."""
        src = self.offset + self.scale * np.arange(self.n_out, dtype=np.float64)
        src = np.clip(src, 0.0, self.n_src - 1)
        i0 = np.floor(src).astype(np.intp)
        i1 = np.minimum(i0 + 1, self.n_src - 1)
        return i0, i1, (src - i0).astype(np.float32)


def spacingd_axis(n: int, spacing: float, target: float) -> AxisMap:
    """MONAI's Spacingd along one axis of ``n`` voxels: the model -> input map. The grid
    starts on the first voxel's centre (the caller hands the axis in the network's own
    direction); its size is numpy's round of (n - 1) * spacing / target + 1, as MONAI's
    ``compute_shape_offset`` rounds it (halves to even)."""
    n_out = max(1, int(np.round((n - 1) * float(spacing) / float(target) + 1.0)))
    return AxisMap(0.0, float(target) / float(spacing), n, n_out)


def lerp_axis(t: Any, axis: int, amap: AxisMap) -> Any:
    """A torch tensor resampled linearly along ``axis`` by ``amap`` (float32, same device)."""
    import torch

    i0, i1, w = amap.weights()
    if amap.n_out == t.shape[axis] and amap.offset == 0.0 and amap.scale == 1.0:
        return t.float()
    dev = t.device
    a = t.index_select(axis, torch.from_numpy(i0).to(dev)).float()
    b = t.index_select(axis, torch.from_numpy(i1).to(dev)).float()
    shape = [1] * t.ndim
    shape[axis] = amap.n_out
    ww = torch.from_numpy(w).to(dev).reshape(shape)
    return a + (b - a) * ww


def resample_separable(t: Any, maps: tuple[AxisMap, ...], lead: int = 1) -> Any:
    """``t`` (``lead`` non-spatial axes, then one spatial axis per map) resampled linearly by
    ``maps``, one axis at a time (trilinear is separable), the shrinking axes first."""
    order = sorted(range(len(maps)), key=lambda k: maps[k].n_out / max(1, maps[k].n_src))
    out = t
    for k in order:
        out = lerp_axis(out, lead + k, maps[k])
    return out.float()


def resample(array: np.ndarray, shape: tuple[int, ...], mode: str = "linear"):
    """A (C, *spatial) or (*spatial) array resampled to ``shape`` as a float32 torch tensor.

    Linear for images and probabilities, "nearest" for label maps (align_corners=False)."""
    import torch
    import torch.nn.functional as F

    t = array if isinstance(array, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(array))
    spatial = len(shape)
    squeeze = t.ndim == spatial
    t = t.float()
    t = t[None, None] if squeeze else t[None]
    if tuple(t.shape[2:]) != tuple(shape):
        if mode == "nearest":
            t = F.interpolate(t, size=shape, mode="nearest-exact")
        else:
            t = F.interpolate(
                t, size=shape, mode="trilinear" if spatial == 3 else "bilinear", align_corners=False
            )
    return t[0, 0] if squeeze else t[0]


def axis_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation along one axis (align_corners=False, as torch.interpolate):
    output i blends inputs i0[i] and i1[i] with weight w[i] on i1."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resample_volume(
    array: np.ndarray,
    shape: tuple[int, int, int],
    chunk: int = 8,
    maps: tuple[AxisMap, ...] | None = None,
):
    """(C, Z, Y, X) numpy array of any dtype -> float32 tensor (C, *shape), trilinear.

    Same values as one ``F.interpolate(mode="trilinear", align_corners=False)`` (or, with
    ``maps``, as MONAI's Spacingd: see inference.resampling), but slab by slab along z: only
    the input slices the output needs are converted to float, so a 300 x 512 x 512 int16
    volume never exists as a full float32 copy."""
    import torch
    import torch.nn.functional as F

    c = array.shape[0]
    out = torch.empty((c, *shape), dtype=torch.float32)
    i0, i1, w = maps[0].weights() if maps else axis_weights(shape[0], array.shape[1])
    for z0 in range(0, shape[0], chunk):
        z1 = min(shape[0], z0 + chunk)
        a = torch.from_numpy(np.ascontiguousarray(array[:, i0[z0:z1]], dtype=np.float32))
        b = torch.from_numpy(np.ascontiguousarray(array[:, i1[z0:z1]], dtype=np.float32))
        ww = torch.from_numpy(w[z0:z1])[None, :, None, None]
        plane = a + (b - a) * ww
        if maps:
            plane = resample_separable(plane, maps[1:], lead=2)
        elif tuple(plane.shape[2:]) != tuple(shape[1:]):
            plane = F.interpolate(
                plane, size=tuple(shape[1:]), mode="bilinear", align_corners=False
            )
        out[:, z0:z1] = plane
    return out


def resample_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour resampling of an integer label map (never blends label values)."""
    return (
        resample(labels.astype(np.float32), shape, mode="nearest")
        .round()
        .numpy()
        .astype(labels.dtype)
    )


def upsample_chunks(
    probs,
    shape: tuple[int, ...],
    chunk: int = 8,
    start: int = 0,
    maps: tuple[AxisMap, ...] | None = None,
) -> Iterator[tuple[int, int, Any]]:
    """Linear upsampling of a (C, *model) tensor to (C, *shape), yielded in slabs of the first axis.

    Equivalent to one trilinear interpolate (align_corners=False; with ``maps``, the
    per-axis maps of inference.resampling, e.g. ``Frame.back_maps()``), but the
    full-resolution multi-channel array never exists at once: (z0, z1, slab (C, z1 - z0,
    *shape[1:])) per step."""
    import torch
    import torch.nn.functional as F

    if len(shape) == 2:
        if maps:
            yield 0, shape[0], resample_separable(probs, maps, lead=1)
            return
        yield (
            0,
            shape[0],
            resample(probs, shape) if tuple(probs.shape[1:]) != shape else probs.float(),
        )
        return
    zm = probs.shape[1]
    nz = shape[0]
    if maps:
        zi0, zi1, zw = maps[0].weights()
    for z0 in range(start, nz, chunk):
        z1 = min(nz, z0 + chunk)
        if maps:
            i0 = torch.from_numpy(zi0[z0:z1]).to(probs.device)
            i1 = torch.from_numpy(zi1[z0:z1]).to(probs.device)
            w = torch.from_numpy(zw[z0:z1]).to(probs.device)[None, :, None, None]
        else:
            scale = zm / nz
            src = torch.arange(z0, z1, dtype=torch.float64, device=probs.device)
            src = ((src + 0.5) * scale - 0.5).clamp(0, zm - 1)
            i0 = src.floor().long()
            i1 = (i0 + 1).clamp(max=zm - 1)
            w = (src - i0).float()[None, :, None, None]
        # Separable: blend along z on the coarse grid first, so only one in-plane
        # interpolation per output slice happens at full resolution.
        a = probs[:, i0].float()
        plane = a + (probs[:, i1].float() - a) * w
        if maps:
            plane = resample_separable(plane, maps[1:], lead=2)
        elif tuple(plane.shape[2:]) != tuple(shape[1:]):
            plane = F.interpolate(
                plane, size=tuple(shape[1:]), mode="bilinear", align_corners=False
            )
        yield z0, z1, plane
