"""Preprocessing composed from a model card: reorient, resample, intensity; small functions.

The input image is indexed (z, y, x) or (y, x); ``spacing`` and the ``direction`` columns are
in (x, y, z) order (see viewer/study/volume.py). A ``Frame`` records how the input grid maps
onto the model's grid so that postprocessing can map every result back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.axes import frame_flips
from inference.resampling import (  # noqa: F401  (re-exported: callers import them from here)
    MONAI_SPACINGD,
    RADLENS,
    AxisMap,
    axis_weights,
    resample,
    resample_labels,
    resample_volume,
    spacingd_axis,
    upsample_chunks,
)


@dataclass(frozen=True)
class Frame:
    """Input grid -> model grid: permute/flip axes (reorientation), then scale (resampling).

    Model axis ``k`` is input axis ``perm[k]``, reversed when ``flip[k]``; ``oriented_shape``
    is the input shape after that, ``model_shape`` the shape the network sees. Resampling
    follows ``convention`` (see inference.resampling): "radlens" is align_corners=False (model
    index m covers input (m + 0.5) * s - 0.5); "monai_spacingd" is MONAI's Spacingd, model
    index m at oriented input index ``maps[k].offset + maps[k].scale * m``.
    """

    input_shape: tuple[int, ...]
    perm: tuple[int, ...]
    flip: tuple[bool, ...]
    oriented_shape: tuple[int, ...]
    model_shape: tuple[int, ...]
    model_spacing: tuple[float, ...]  # per model axis, (z, y, x) order
    convention: str = RADLENS
    #: "monai_spacingd": model -> oriented input index along each model axis; () otherwise
    maps: tuple[AxisMap, ...] = ()

    @property
    def scale(self) -> tuple[float, ...]:
        """Input (oriented) voxels per model voxel along each model axis."""
        if self.maps:
            return tuple(m.scale for m in self.maps)
        return tuple(o / m for o, m in zip(self.oriented_shape, self.model_shape, strict=True))

    @property
    def reoriented(self) -> bool:
        return self.perm != tuple(range(len(self.perm))) or any(self.flip)

    def back_maps(self) -> tuple[AxisMap, ...] | None:
        """Oriented input index -> model coordinate per axis (MONAI's Invertd); None for the
        "radlens" convention, whose way back is align_corners=False interpolation."""
        return tuple(m.inverse() for m in self.maps) if self.maps else None

    def to_input(self, k: int, coordinate: float) -> float:
        """A model-grid coordinate along model axis ``k`` -> the oriented input's."""
        if self.maps:
            return self.maps[k].offset + self.maps[k].scale * coordinate
        return (coordinate + 0.5) * self.scale[k] - 0.5


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
    convention: str = RADLENS,
    model_flip: tuple[bool, ...] | None = None,
) -> Frame:
    """The mapping for an input of ``shape``; ``target_spacing``/``resize`` are (x, y[, z]).

    ``model_flip[k]``: model axis k runs opposite to RadLens's LPS-aligned frame (a network
    that sees its own directions). ``convention`` "monai_spacingd" (with a target spacing, no
    resize) places the model grid as MONAI's Spacingd does: exact spacing, the first voxel's
    centre kept (see inference.resampling)."""
    ndim = len(shape)
    perm, flip = (
        orientation_to_model(direction, ndim)
        if reorient_axes
        else (tuple(range(ndim)), (False,) * ndim)
    )
    if model_flip:
        flip = tuple(f != m for f, m in zip(flip, model_flip, strict=True))
    sp_in = axis_spacing(spacing, ndim)
    oriented = tuple(shape[p] for p in perm)
    sp = tuple(sp_in[p] for p in perm)
    if convention == MONAI_SPACINGD and resize is None and target_spacing is not None:
        tsp = tuple(float(t) for t in target_spacing)[::-1]
        maps = tuple(spacingd_axis(n, s, t) for n, s, t in zip(oriented, sp, tsp, strict=True))
        return Frame(
            tuple(shape),
            perm,
            flip,
            oriented,
            tuple(m.n_out for m in maps),
            tsp,
            MONAI_SPACINGD,
            maps,
        )
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
    if frame.maps:
        from inference.resampling import resample_separable

        return resample_separable(t, frame.maps, lead=1).contiguous()
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


def card_frame(card, shape: tuple[int, ...], spacing: Any, direction: Any) -> Frame:
    """The Frame ``card`` puts on an input of spatial ``shape``: its target spacing or resize,
    its reorientation and its resampling convention (``preprocessing.resample``). A 3D
    network with its own ``network.axes`` gets the grid in its own directions
    (``inference.axes.frame_axes``), so windows and MONAI's Spacingd grid start where its own
    tools start them."""
    # The trainer hands a view of the card without a network (it trains in RadLens's frame).
    network = getattr(card, "network", None) or {}
    axes = network.get("axes")
    return make_frame(
        shape,
        spacing,
        direction,
        card.target_spacing,
        resize_of(card.preprocessing.get("steps", [])),
        reorient_axes=card.preprocessing.get("reorient", True),
        convention=card.preprocessing.get("resample", RADLENS),
        model_flip=frame_flips(axes) if axes and len(shape) == 3 else None,
    )


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
    frame = card_frame(card, tuple(spatial_shape), spacing, direction)
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
            x = resample_volume(oriented, frame.model_shape, maps=frame.maps or None)
        elif frame.maps:
            from inference.resampling import resample_separable

            x = resample_separable(torch.from_numpy(oriented.astype(np.float32)), frame.maps)
        else:
            x = resample(oriented.astype(np.float32), frame.model_shape)
    x = intensity(x, steps)
    if x.shape[0] != card.input_channels:
        if x.shape[0] == 1:
            x = x.expand(card.input_channels, *x.shape[1:])
        else:
            x = x.mean(dim=0, keepdim=True).expand(card.input_channels, *x.shape[1:])
    return torch.as_tensor(x).contiguous(), frame
