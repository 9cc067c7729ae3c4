"""Preprocessing composed from a model card: reorient, resample, intensity; small functions.

The input image is indexed (z, y, x) or (y, x); ``spacing`` and the ``direction`` columns are
in (x, y, z) order (see viewer/study/volume.py). A ``Frame`` records how the input grid maps
onto the model's grid so that postprocessing can map every result back exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """Input grid -> model grid: permute/flip axes (reorientation), then scale (resampling).

    Model axis ``k`` is input axis ``perm[k]``, reversed when ``flip[k]``; ``oriented_shape``
    is the input shape after that, ``model_shape`` the shape the network sees. Resampling
    uses the align_corners=False convention: model index m covers input (m + 0.5) * s - 0.5.
    """

    input_shape: tuple[int, ...]
    perm: tuple[int, ...]
    flip: tuple[bool, ...]
    oriented_shape: tuple[int, ...]
    model_shape: tuple[int, ...]
    model_spacing: tuple[float, ...]  # per model axis, (z, y, x) order

    @property
    def scale(self) -> tuple[float, ...]:
        """Input (oriented) voxels per model voxel along each model axis."""
        return tuple(o / m for o, m in zip(self.oriented_shape, self.model_shape, strict=True))

    @property
    def reoriented(self) -> bool:
        return self.perm != tuple(range(len(self.perm))) or any(self.flip)


def axis_spacing(spacing: Any, ndim: int) -> tuple[float, ...]:
    """Spacing per array axis ((z, y, x) or (y, x)) from an (x, y[, z]) spacing."""
    sp = [float(s) for s in spacing]
    return tuple(sp[:ndim][::-1])


def orientation_to_model(direction: Any, ndim: int) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Permutation and flips that bring a 3D array to the LPS-aligned frame models are trained in
    (array axes z -> S, y -> P, x -> L). 2D images, ``direction=None`` and oblique, ambiguous
    frames keep their axes."""
    if ndim != 3 or direction is None:
        return tuple(range(ndim)), (False,) * ndim
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    perm = [0, 0, 0]
    flip = [False, False, False]
    used = set()
    for a in range(3):  # array axis a is direction column 2 - a
        col = d[:, 2 - a]
        lps = int(np.argmax(np.abs(col)))
        if lps in used:
            return (0, 1, 2), (False, False, False)
        used.add(lps)
        perm[2 - lps] = a
        flip[2 - lps] = bool(col[lps] < 0)
    return tuple(perm), tuple(flip)


def reorient(array: np.ndarray, perm: tuple[int, ...], flip: tuple[bool, ...]) -> np.ndarray:
    """Input axes -> model axes (a view, no copy)."""
    out = np.transpose(array, perm)
    for k, f in enumerate(flip):
        if f:
            out = np.flip(out, axis=k)
    return out


def make_frame(
    shape: tuple[int, ...],
    spacing: Any,
    direction: Any,
    target_spacing: tuple[float, ...] | None,
    resize: tuple[int, ...] | None = None,
    reorient_axes: bool = True,
) -> Frame:
    """The mapping for an input of ``shape``; ``target_spacing``/``resize`` are (x, y[, z])."""
    ndim = len(shape)
    perm, flip = (
        orientation_to_model(direction, ndim)
        if reorient_axes
        else (tuple(range(ndim)), (False,) * ndim)
    )
    sp_in = axis_spacing(spacing, ndim)
    oriented = tuple(shape[p] for p in perm)
    sp = tuple(sp_in[p] for p in perm)
    if resize is not None:
        model = tuple(int(v) for v in resize[::-1])
    elif target_spacing is not None:
        tsp = tuple(float(t) for t in target_spacing)[::-1]
        model = tuple(
            max(1, int(round(n * s / t))) for n, s, t in zip(oriented, sp, tsp, strict=True)
        )
    else:
        model = oriented
    model_sp = tuple(n * s / m for n, s, m in zip(oriented, sp, model, strict=True))
    return Frame(tuple(shape), perm, flip, oriented, model, model_sp)


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


def resample_volume(array: np.ndarray, shape: tuple[int, int, int], chunk: int = 8):
    """(C, Z, Y, X) numpy array of any dtype -> float32 tensor (C, *shape), trilinear.

    Same values as one ``F.interpolate(mode="trilinear", align_corners=False)``, but slab by
    slab along z: only the input slices the output needs are converted to float, so a
    300 x 512 x 512 int16 volume never exists as a full float32 copy."""
    import torch
    import torch.nn.functional as F

    c = array.shape[0]
    out = torch.empty((c, *shape), dtype=torch.float32)
    i0, i1, w = axis_weights(shape[0], array.shape[1])
    for z0 in range(0, shape[0], chunk):
        z1 = min(shape[0], z0 + chunk)
        a = torch.from_numpy(np.ascontiguousarray(array[:, i0[z0:z1]], dtype=np.float32))
        b = torch.from_numpy(np.ascontiguousarray(array[:, i1[z0:z1]], dtype=np.float32))
        ww = torch.from_numpy(w[z0:z1])[None, :, None, None]
        plane = a + (b - a) * ww
        if tuple(plane.shape[2:]) != tuple(shape[1:]):
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
    probs, shape: tuple[int, ...], chunk: int = 8, start: int = 0
) -> Iterator[tuple[int, int, Any]]:
    """Linear upsampling of a (C, *model) tensor to (C, *shape), yielded in slabs of the first axis.

    Equivalent to one trilinear interpolate (align_corners=False), but the full-resolution
    multi-channel array never exists at once: (z0, z1, slab (C, z1 - z0, *shape[1:])) per step."""
    import torch
    import torch.nn.functional as F

    if len(shape) == 2:
        yield (
            0,
            shape[0],
            resample(probs, shape) if tuple(probs.shape[1:]) != shape else probs.float(),
        )
        return
    zm = probs.shape[1]
    nz = shape[0]
    scale = zm / nz
    for z0 in range(start, nz, chunk):
        z1 = min(nz, z0 + chunk)
        src = (torch.arange(z0, z1, dtype=torch.float64, device=probs.device) + 0.5) * scale - 0.5
        src = src.clamp(0, zm - 1)
        i0 = src.floor().long()
        i1 = (i0 + 1).clamp(max=zm - 1)
        w = (src - i0).float()[None, :, None, None]
        # Separable: blend along z on the coarse grid first, so only one in-plane
        # interpolation per output slice happens at full resolution.
        a = probs[:, i0].float()
        plane = a + (probs[:, i1].float() - a) * w
        if tuple(plane.shape[2:]) != tuple(shape[1:]):
            plane = F.interpolate(
                plane, size=tuple(shape[1:]), mode="bilinear", align_corners=False
            )
        yield z0, z1, plane


#: numpy dtypes torch cannot move or convert everywhere: widened on the CPU first
_TORCH_WIDEN = {
    np.dtype(np.uint16): np.int32,
    np.dtype(np.uint32): np.int64,
    np.dtype(bool): np.uint8,
}


def to_model_axes(t, perm: tuple[int, ...], flip: tuple[bool, ...], lead: int = 0):
    """``reorient`` for a torch tensor whose first ``lead`` axes are not spatial (a view)."""
    out = t.permute(*range(lead), *(lead + p for p in perm))
    dims = [lead + k for k, f in enumerate(flip) if f]
    return out.flip(dims) if dims else out


def resample_on(image: np.ndarray, frame: Frame, channels_last: bool, device: str):
    """The input, reoriented and resampled to ``frame.model_shape`` in torch on ``device``:
    (C, *model_shape) float32 there. Same semantics as the numpy path (linear, i.e.
    ``F.interpolate`` trilinear/bilinear with align_corners=False); only the input's own
    dtype crosses to the device, the float copy is made there."""
    import torch
    import torch.nn.functional as F

    arr = np.ascontiguousarray(image)
    widen = _TORCH_WIDEN.get(arr.dtype)
    if widen is not None:
        arr = arr.astype(widen)
    t = torch.from_numpy(arr).to(device)
    t = t.movedim(-1, 0) if channels_last else t[None]
    t = to_model_axes(t, frame.perm, frame.flip, lead=1).float()
    shape = tuple(frame.model_shape)
    if tuple(t.shape[1:]) != shape:
        mode = "trilinear" if len(shape) == 3 else "bilinear"
        t = F.interpolate(t[None], size=shape, mode=mode, align_corners=False)[0]
    return t.contiguous()


def resample_labels_on(labels: np.ndarray, shape: tuple[int, ...], device: str) -> np.ndarray:
    """``resample_labels`` in torch on ``device``: nearest neighbour ("nearest-exact", the
    CPU path's rule), never blending label values."""
    import torch
    import torch.nn.functional as F

    arr = np.ascontiguousarray(labels)
    t = torch.from_numpy(arr.astype(np.float32)).to(device)
    if tuple(t.shape) != tuple(shape):
        t = F.interpolate(t[None, None], size=shape, mode="nearest-exact")[0, 0]
    return t.round().cpu().numpy().astype(labels.dtype)


# ---- intensity ------------------------------------------------------------------------------
def clip_scale(
    x, a_min: float, a_max: float, b_min: float = 0.0, b_max: float = 1.0, clip: bool = True
):
    """Window [a_min, a_max] (e.g. HU) onto [b_min, b_max]."""
    y = (x - a_min) / (a_max - a_min) * (b_max - b_min) + b_min
    return y.clamp(min(b_min, b_max), max(b_min, b_max)) if clip else y


def zscore(x):
    std = float(x.std())
    return (x - x.mean()) / (std if std > 1e-8 else 1.0)


def minmax(x):
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else x - lo


def intensity(x, steps: list[dict[str, Any]]):
    """Apply the card's intensity steps in order (``resize`` is handled by the Frame)."""
    for s in steps:
        op = s["op"]
        if op == "clip_scale":
            x = clip_scale(
                x,
                s["a_min"],
                s["a_max"],
                s.get("b_min", 0.0),
                s.get("b_max", 1.0),
                s.get("clip", True),
            )
        elif op == "zscore":
            x = zscore(x)
        elif op == "minmax":
            x = minmax(x)
    return x


def resize_of(steps: list[dict[str, Any]]) -> tuple[int, ...] | None:
    for s in steps:
        if s["op"] == "resize":
            return tuple(int(v) for v in s["size"])
    return None


def prepare(
    image: np.ndarray,
    spacing: Any,
    direction: Any,
    card,
    channels_last: bool = False,
    device: str | None = None,
):
    """Image -> (model input tensor (C, *model_shape) float32, Frame), following the card.

    ``device`` None: numpy slabs on the CPU (``resample_volume``); a torch device name: the
    same resampling in torch on that device (``resample_on``), the tensor left there."""
    import torch

    steps = card.preprocessing.get("steps", [])
    spatial_shape = image.shape[:-1] if channels_last else image.shape
    frame = make_frame(
        tuple(spatial_shape),
        spacing,
        direction,
        card.target_spacing,
        resize_of(steps),
        reorient_axes=card.preprocessing.get("reorient", True),
    )
    if device is not None:
        x = resample_on(image, frame, channels_last, device)
    else:
        arr = np.moveaxis(image, -1, 0) if channels_last else image[None]
        oriented = (
            np.stack([reorient(a, frame.perm, frame.flip) for a in arr]) if len(arr) > 1 else None
        )
        if oriented is None:
            oriented = reorient(arr[0], frame.perm, frame.flip)[None]  # a view: no copy yet
        if len(frame.model_shape) == 3:
            x = resample_volume(oriented, frame.model_shape)
        else:
            x = resample(oriented.astype(np.float32), frame.model_shape)
    x = intensity(x, steps)
    if x.shape[0] != card.input_channels:
        if x.shape[0] == 1:
            x = x.expand(card.input_channels, *x.shape[1:])
        else:
            x = x.mean(dim=0, keepdim=True).expand(card.input_channels, *x.shape[1:])
    return torch.as_tensor(x).contiguous(), frame
