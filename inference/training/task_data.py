"""Per-task training arrays: the card's preprocessing, resampling, targets and augmentation.

Split out of ``train.py`` so the loop stays short: this module turns a ``TrainingCase`` into
the network's input grid exactly as the card describes it (target spacing, intensity steps),
and builds the MONAI dictionary transforms used for augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import ndimage

from inference.training.dataset import DatasetError, TrainingCase


def class_of(case: TrainingCase, label: np.ndarray | None) -> int:
    """The case's class: its declared class_index, else 1 when it has a finding (box or mask)."""
    if case.class_index is not None:
        return int(case.class_index)
    if case.boxes:
        return 1
    return int(label is not None and bool(np.any(label)))


def centernet_targets(
    shape: Sequence[int], boxes: Sequence[Sequence[float] | np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heat (z,y,x), extent (3,z,y,x), extent mask) for voxel boxes (lo..., hi...).

    Matches ``inference.tasks.detect.decode_centernet``: channel 0 learns a Gaussian peak at
    each box centre (width a quarter of the box, at least ~1 voxel), channels 1..3 learn the
    extent hi - lo along z, y, x, supervised inside the box's inscribed ellipsoid.
    """
    shape = tuple(int(s) for s in shape)
    heat = np.zeros(shape, np.float32)
    size = np.zeros((3, *shape), np.float32)
    mask = np.zeros(shape, np.float32)
    for box in boxes:
        lo_b, hi_b = np.asarray(box[:3], float), np.asarray(box[3:], float)
        c, extent = (lo_b + hi_b) / 2.0, np.maximum(hi_b - lo_b, 1.0)
        sigma = np.maximum(extent / 4.0, 0.8)
        lo = np.maximum(np.floor(c - 3 * sigma).astype(int), 0)
        hi = np.minimum(np.ceil(c + 3 * sigma).astype(int) + 1, np.asarray(shape))
        if np.any(hi <= lo):
            continue
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        grid = np.ogrid[sl]
        d2 = sum(((g - ci) / si) ** 2 for g, ci, si in zip(grid, c, sigma, strict=True))
        heat[sl] = np.maximum(heat[sl], np.exp(-0.5 * d2))
        peak = tuple(int(np.clip(round(v), 0, m - 1)) for v, m in zip(c, shape, strict=True))
        heat[peak] = 1.0
        inside = (
            sum(((g - ci) / (e / 2.0)) ** 2 for g, ci, e in zip(grid, c, extent, strict=True))
            <= 1.0
        )
        for axis in range(3):
            size[axis][sl][inside] = extent[axis]
            size[axis][peak] = extent[axis]
        mask[sl][inside] = 1.0
        mask[peak] = 1.0
    return heat, size, mask


def _engine_view(card: dict[str, Any]) -> SimpleNamespace:
    """The few card fields ``inference.preprocess.prepare`` reads, from a card dictionary."""
    target = card.get("target_spacing")
    return SimpleNamespace(
        preprocessing=card.get("preprocessing", {}),
        target_spacing=tuple(target) if target else None,
        input_channels=int(card.get("input_channels", 1)),
    )


def boxes_to_model(boxes: Sequence[Sequence[float]], frame: Any) -> list[np.ndarray]:
    """Input-grid voxel boxes (lo..., hi...) onto the model grid of an engine ``Frame``."""
    out = []
    shape = np.asarray(frame.input_shape, float)
    for box in boxes:
        lo, hi = np.asarray(box[:3], float), np.asarray(box[3:], float)
        lo_m, hi_m = np.empty(3), np.empty(3)
        for k, (axis, flip) in enumerate(zip(frame.perm, frame.flip, strict=True)):
            a, b = lo[axis], hi[axis]
            if flip:
                a, b = shape[axis] - 1 - b, shape[axis] - 1 - a
            s = frame.scale[k]
            # align_corners=False: input index c sits at model index (c + 0.5) / s - 0.5
            lo_m[k], hi_m[k] = (a + 0.5) / s - 0.5, (b + 0.5) / s - 0.5
        out.append(np.r_[lo_m, hi_m])
    return out


def prepare_case(case: TrainingCase, card: dict[str, Any], task: str) -> dict[str, Any]:
    """Load one case onto the model grid exactly as the engine will at inference time.

    Returns {"image": (1, *model_shape) float32, target arrays..., "case_id"}.
    """
    from inference import preprocess

    image, geo = case.load_image()
    label = None
    if case.label_path is not None:
        label, _ = case.load_label()
    dims = int(card["spatial_dims"])
    if dims == 2:
        if image.shape[0] != 1:
            raise DatasetError(
                f"case {case.case_id}: a 2D model needs 2D images, got {image.shape[0]} slices"
            )
        image, label = image[0], (label[0] if label is not None else None)
    direction = np.asarray(geo.direction).reshape(3, 3)
    x, frame = preprocess.prepare(image, geo.spacing, direction, _engine_view(card))
    item: dict[str, Any] = {
        "image": x.numpy().astype(np.float32),
        "case_id": case.case_id,
        "patient_id": case.patient_id,
    }
    model_shape = tuple(frame.model_shape)
    if task == "segmentation":
        if label is None:
            raise DatasetError(f"case {case.case_id}: segmentation needs a mask.nii.gz")
        lab = preprocess.reorient(label, frame.perm, frame.flip)
        lab = preprocess.resample_labels(np.ascontiguousarray(lab), model_shape)
        item["label"] = lab[None].astype(np.float32)
    elif task == "detection":
        # Only boxes of the card's class are targets; a case without any is a negative.
        wanted = {e["index"] for e in card.get("labels", [])}
        boxes = [b for b, lab in zip(case.boxes, case.box_labels, strict=True) if lab in wanted]
        model_boxes = boxes_to_model(boxes, frame)
        heat, size, mask = centernet_targets(model_shape, model_boxes)
        item.update(heat=heat[None], size=size, size_mask=mask[None], boxes=model_boxes)
        item["centres"] = (heat >= 0.5)[None].astype(np.float32)
    elif task == "classification":
        item["class"] = class_of(case, label)
    else:
        raise ValueError(f"unknown task {task!r}")
    return item


def boxes_from_mask(label: np.ndarray) -> list[np.ndarray]:
    """One box per connected component of the label map's foreground (inclusive corners)."""
    comps, n = ndimage.label(label > 0)
    out = []
    for sl in ndimage.find_objects(comps):
        if sl is None:
            continue
        out.append(np.array([s.start for s in sl] + [s.stop - 1 for s in sl], float))
    return out


def augmentation(
    task: str,
    patch_zyx: Sequence[int] | None,
    samples: int,
    dims: int,
    intensity: bool = True,
    crop_class_ratios: Sequence[float] | None = None,
):
    """MONAI dictionary transforms: crops by label (foreground/background, or centred on
    each class with ``crop_class_ratios``), flips, and unless ``intensity`` is off, random
    intensity scale and shift (``inference.training.sampling``)."""
    from monai import transforms as mt

    def intensity_steps() -> list[Any]:
        if not intensity:
            return []
        return [
            mt.RandScaleIntensityd(["image"], factors=0.1, prob=0.5),
            mt.RandShiftIntensityd(["image"], offsets=0.05, prob=0.5),
        ]

    if task == "classification":
        keys = ["image"]
        return mt.Compose([mt.RandFlipd(keys, prob=0.5, spatial_axis=dims - 1), *intensity_steps()])
    keys = ["image", "label"] if task == "segmentation" else ["image", "heat", "size", "size_mask"]
    label_key = "label" if task == "segmentation" else "centres"
    patch = [int(p) for p in patch_zyx or ()]
    crop_keys = keys + ([label_key] if task == "detection" else [])
    if crop_class_ratios is not None and task == "segmentation":
        crop: Any = mt.RandCropByLabelClassesd(
            crop_keys,
            label_key=label_key,
            spatial_size=patch,
            ratios=[float(r) for r in crop_class_ratios],
            num_classes=len(crop_class_ratios),
            num_samples=samples,
            allow_smaller=True,
            warn=False,
        )
    else:
        crop = mt.RandCropByPosNegLabeld(
            crop_keys,
            label_key=label_key,
            spatial_size=patch,
            pos=2,
            neg=1,
            num_samples=samples,
            allow_smaller=True,
        )
    steps: list[Any] = [mt.SpatialPadd(crop_keys, spatial_size=patch), crop]
    # Extents are symmetric, so flipping the size maps along with the image stays correct.
    steps += [mt.RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(dims)]
    steps += intensity_steps()
    return mt.Compose(steps)
