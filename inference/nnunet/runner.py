"""Run an imported nnU-Net model on one image, the way ``nnUNetPredictor`` does, in less memory.

nnU-Net keeps the logits of every class at network resolution, converts all of them to
float64 to resample them, keeps every class again at image resolution and takes the argmax.
Here the logits stay float16 at network resolution (as in nnU-Net), and the way back is one
class at a time: each is resampled with nnU-Net's rule and folded into a running maximum and
argmax (and, if asked, a running softmax for the requested labels), so image-resolution
memory is a few arrays of the image's size whatever the number of classes. The run's memory
is estimated from the header before anything is allocated and refused above the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inference.nnunet.config import NnunetConfig
from inference.nnunet.errors import NnunetError
from inference.nnunet.preprocess import CropFrame, plan_geometry, preprocess
from inference.nnunet.resample import resample_channel
from radlens_core.progress import CancelCheck, Cancelled, Progress

GB = 1024**3


@dataclass(frozen=True)
class MemoryEstimate:
    total_bytes: int
    parts: dict[str, int]

    def sentence(self) -> str:
        biggest = max(self.parts, key=self.parts.get)  # type: ignore[arg-type]
        return f"about {self.total_bytes / GB:.1f} GB (largest part: {biggest})"


def available_memory() -> int:
    """Bytes the run may use: MemAvailable (Linux), else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * GB


def estimate_memory(
    config: NnunetConfig,
    shape_zyx: Sequence[int],
    spacing_zyx: Sequence[float],
    n_folds: int,
    n_probabilities: int = 0,
) -> MemoryEstimate:
    """Peak bytes of :func:`predict` for an image of ``shape_zyx`` (header facts only)."""
    channels = len(config.channel_names)
    k = config.num_classes
    shape_t, _sp, pre = plan_geometry(config, shape_zyx, spacing_zyx)
    n_in = int(np.prod(shape_t, dtype=np.int64))
    n_pre = int(np.prod(pre, dtype=np.int64))
    lead = len(pre) - len(config.patch_size)
    n_pad = int(np.prod(pre[:lead], dtype=np.int64)) * int(
        np.prod(
            [max(a, b) for a, b in zip(pre[lead:], config.patch_size, strict=True)], dtype=np.int64
        )
    )
    params = config.network.parameter_count() * 4
    act = (
        config.network.activation_bytes(tuple(config.patch_size))
        + 3 * k * int(np.prod(config.patch_size, dtype=np.int64)) * 4
    )
    pre_bytes = channels * n_in * 4 + 2 * n_in + 8 * n_in + 16 * n_pre + channels * n_pre * 4
    accum = k * n_pad * 2 * (2 if n_folds > 1 else 1) + n_pad * 2
    window = channels * n_pad * 4 * 2 + accum + act + params * (1 + n_folds)
    export = (
        k * n_pre * 2
        + 8 * n_pre * 2  # the channel as float64 and its spline coefficients
        + 8 * n_in * 2  # the resampled channel (float64) before it becomes float16
        + n_in * (2 + 2 + 1 + 1)  # running max, resampled float16, argmax, label map
        + n_probabilities * n_in * 4 * 2
        + (8 * n_in if n_probabilities else 0)
    )
    parts = {
        "preprocessing": pre_bytes,
        "sliding window": window,
        "mapping back": export,
    }
    return MemoryEstimate(max(parts.values()) + params, parts)


def check_memory(estimate: MemoryEstimate, limit: int | None, what: str) -> None:
    limit = available_memory() if limit is None else limit
    if estimate.total_bytes > limit:
        raise NnunetError(
            f"{what} would need {estimate.sentence()}, more than the {limit / GB:.1f} GB "
            "this machine has free; close other programs, use a smaller image or a machine "
            "with more memory"
        )


def export_prediction(
    logits,
    geom: CropFrame,
    config: NnunetConfig,
    probabilities_for: Sequence[int],
    tick: Callable[[], None],
    cancel: CancelCheck,
) -> tuple[np.ndarray, np.ndarray | None]:
    """nnU-Net's ``convert_predicted_logits_to_segmentation_with_correct_shape`` one class at
    a time: resample (float16, like nnU-Net), running argmax, uncrop, transpose back."""
    rule = config.resampling_probabilities
    current = geom.target_spacing
    target_shape = geom.shape_after_cropping
    crop_max = None
    seg = np.zeros(target_shape, dtype=np.uint8)
    keep: dict[int, np.ndarray] = {}
    m = s = None
    for c in range(config.num_classes):
        if cancel():
            raise Cancelled()
        channel = logits[c].numpy()
        r = resample_channel(channel, target_shape, rule, current, geom.spacing, np.float16)
        if crop_max is None:
            crop_max = np.array(r, dtype=np.float16, copy=True)
        else:
            better = r > crop_max
            seg[better] = c
            np.copyto(crop_max, r, where=better)
        if probabilities_for:
            r32 = r.astype(np.float32)
            if m is None:
                m, s = r32.copy(), np.ones_like(r32)
            else:
                m_new = np.maximum(m, r32)
                s = s * np.exp(m - m_new) + np.exp(r32 - m_new)
                m = m_new
            if c in probabilities_for:
                keep[c] = r32
        del r
        tick()
    del crop_max
    full = np.zeros(geom.shape_before_cropping, dtype=np.uint8)
    crop = tuple(slice(a, b) for a, b in geom.bbox)
    full[crop] = seg
    del seg
    label_map = np.ascontiguousarray(full.transpose(config.transpose_backward))
    del full
    probs = None
    if probabilities_for:
        probs = np.zeros((len(probabilities_for), *geom.shape_before_cropping), dtype=np.float32)
        for i, c in enumerate(probabilities_for):
            if c == 0:
                probs[i] = 1.0  # nnU-Net's uncropped probabilities: background outside the crop
            probs[i][crop] = np.exp(keep.pop(c) - m) / s
        probs = np.ascontiguousarray(
            probs.transpose([0, *[i + 1 for i in config.transpose_backward]])
        )
    return label_map, probs


def run(
    model,
    image_zyx: np.ndarray,
    spacing_xyz: Sequence[float],
    *,
    mirroring: bool = True,
    device: str = "cpu",
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    probabilities_for: Sequence[int] = (),
    memory_limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """See :func:`inference.nnunet.predict` (the public entry point)."""
    import torch

    from inference.nnunet.sliding import pad_to_patch, predict_logits, slicers

    config: NnunetConfig = model.config
    image = np.asarray(image_zyx)
    flat = image.ndim == 2
    if flat:  # a 2D image: nnU-Net reads it as one slice, spacing 999x the largest
        image = image[None]
        sx, sy = float(spacing_xyz[0]), float(spacing_xyz[1])
        spacing_xyz = (sx, sy, 999 * max(sx, sy))
    channels = len(config.channel_names)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != channels:
        raise NnunetError(
            f"model {model.model_id!r} needs {channels} channel(s) "
            f"({', '.join(config.channel_names)}); the image has shape {tuple(np.shape(image_zyx))}"
        )
    if len(spacing_xyz) != 3 or not all(np.isfinite(spacing_xyz)) or min(spacing_xyz) <= 0:
        raise NnunetError(f"the image's spacing {tuple(spacing_xyz)} is not three positive numbers")
    spacing_zyx = tuple(float(x) for x in reversed(tuple(spacing_xyz)))
    if config.reader == "NaturalImage2DIO":  # nnU-Net reads PNG/BMP/TIFF as spacing (999, 1, 1)
        spacing_zyx = (999.0, 1.0, 1.0)
    bad = [c for c in probabilities_for if not 0 <= c < config.num_classes]
    if bad:
        raise NnunetError(f"model {model.model_id!r} has no label {bad[0]}")
    n_folds = len(model.fold_weights)
    estimate = estimate_memory(
        config, image.shape[1:], spacing_zyx, n_folds, len(probabilities_for)
    )
    check_memory(estimate, memory_limit, f"Running {model.model_id!r} on this image")

    cancel = cancel or (lambda: False)
    report = progress or (lambda f, s: None)
    report(0.0, "Preparing the image as nnU-Net does")
    data, geom = preprocess(image, spacing_zyx, config)
    if cancel():
        raise Cancelled()
    dev = torch.device(device)
    mirror = config.mirror_axes if mirroring else None
    padded, _pads = pad_to_patch(tuple(data.shape[1:]), tuple(config.patch_size))
    n_tiles = len(slicers(padded, tuple(config.patch_size)))
    total = n_folds * n_tiles + config.num_classes
    done = [0]

    def tick(sentence: str) -> Callable[[], None]:
        def step() -> None:
            done[0] += 1
            report(0.05 + 0.95 * done[0] / total, sentence)

        return step

    tensor = torch.from_numpy(data)
    del data
    network = model.network.to(dev)
    logits = None
    try:
        with torch.inference_mode():
            for i, weights in enumerate(model.fold_weights):
                network.load_state_dict(weights)
                network.eval()
                fold = predict_logits(
                    network,
                    tensor,
                    tuple(config.patch_size),
                    config.num_classes,
                    mirror,
                    dev,
                    tick(f"Segmenting (fold {i + 1} of {n_folds})"),
                    cancel,
                )
                if logits is None:
                    logits = fold
                else:
                    logits += fold
                del fold
            del tensor
            assert logits is not None
            if n_folds > 1:
                logits /= n_folds
            seg, probs = export_prediction(
                logits,
                geom,
                config,
                tuple(probabilities_for),
                tick("Mapping back to the image"),
                cancel,
            )
            if flat:  # back to the caller's (y, x)
                return seg[0], (probs[:, 0] if probs is not None else None)
            return seg, probs
    finally:
        del logits
