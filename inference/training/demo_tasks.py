"""Training loops of the three shipped demo models, each followed by its held-out evaluation.

Each ``train_*`` takes a :class:`DemoConfig` (the card's geometry and how long to train) and
returns the trained network plus its held-out metrics. Seeds: training phantoms use low
seeds, validation (threshold choice) 5000+, held-out test 1000+ (CT) or 10000+ (radiographs),
so no test phantom is ever seen in training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.networks import build_network
from inference.phantoms import LUNG, NODULE
from inference.training import demo_eval as ev
from inference.training import phantom_data as pdata

Log = Callable[[str], None]


@dataclass
class DemoConfig:
    spacing_xyz: tuple[float, float, float] | None
    patch_xyz: tuple[int, ...]
    kwargs: dict[str, Any]
    steps: int
    batch: int
    lr: float
    train_seeds: list[int]
    test_seeds: list[int]
    val_seeds: list[int] = field(default_factory=list)
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    #: Training crop (x, y, z) when smaller than the inference patch (cheaper steps; the
    #: networks are fully convolutional).
    train_patch_xyz: tuple[int, ...] | None = None

    @property
    def patch_zyx(self) -> tuple[int, ...]:
        return tuple(self.patch_xyz[::-1])

    @property
    def train_patch_zyx(self) -> tuple[int, ...]:
        return tuple((self.train_patch_xyz or self.patch_xyz)[::-1])


def seed_everything(seed: int) -> None:
    """Seed torch and make cheap-to-determinise algorithms deterministic."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _ct_input(ct, cfg: DemoConfig) -> np.ndarray:
    return pdata.clip_scale(ct.hu, *cfg.hu_window)


# ---- segmentation -------------------------------------------------------------------------


def train_segmentation(cfg: DemoConfig, log: Log) -> tuple[Any, dict[str, Any]]:
    import torch
    from monai.losses import DiceCELoss

    seed_everything(0)
    rng = np.random.default_rng(0)
    net = build_network("monai.UNet", cfg.kwargs)
    data = []
    for s in cfg.train_seeds:
        ct = pdata.ct_phantom(s, cfg.spacing_xyz, vary=True, n_nodules=(2, 6))
        data.append((_ct_input(ct, cfg), ct.labels, [n.center_zyx for n in ct.nodules]))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1))
    net.train()
    for step in range(cfg.steps):
        xs, ys = [], []
        for _ in range(cfg.batch):
            img, lab, centres = data[rng.integers(len(data))]
            (start,) = pdata.patch_starts(img.shape, cfg.train_patch_zyx, rng, 1, centres, 0.4)
            xs.append(pdata.crop(img, start, cfg.train_patch_zyx))
            ys.append(pdata.crop(lab, start, cfg.train_patch_zyx))
        x = torch.from_numpy(np.stack(xs))[:, None]
        y = torch.from_numpy(np.stack(ys).astype(np.int64))[:, None]
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"segmentation step {step + 1}/{cfg.steps} loss {loss.item():.4f}")

    lung, nodule = [], []
    for s in cfg.test_seeds:
        ct = pdata.ct_phantom(s, cfg.spacing_xyz, vary=False)
        pred = ev.sliding_window(net, _ct_input(ct, cfg), cfg.patch_zyx).argmax(0)
        lung.append(ev.dice(pred == LUNG, ct.labels == LUNG))
        nodule.append(ev.dice(pred == NODULE, ct.labels == NODULE))
    metrics = {
        "dice_lung": round(float(np.mean(lung)), 4),
        "dice_lung_min": round(float(np.min(lung)), 4),
        "dice_nodule": round(float(np.mean(nodule)), 4),
        "dice_nodule_min": round(float(np.min(nodule)), 4),
        "n_cases": len(cfg.test_seeds),
        "split": _seed_range("held-out chest CT phantoms, seeds", cfg.test_seeds),
    }
    log(f"segmentation held-out: {metrics}")
    return net, metrics


# ---- detection ----------------------------------------------------------------------------


def centernet_loss(out, heat, size, mask, size_weight: float = 0.1):
    """CenterNet penalty-reduced focal loss on the heat-map logit + masked L1 on box sizes."""
    import torch
    import torch.nn.functional as F

    logit = out[:, 0]
    pos = heat.eq(1.0).float()
    pos_term = F.logsigmoid(logit) * (1 - torch.sigmoid(logit)) ** 2 * pos
    neg_term = F.logsigmoid(-logit) * torch.sigmoid(logit) ** 2 * (1 - heat) ** 4 * (1 - pos)
    focal = -(pos_term.sum() + neg_term.sum()) / pos.sum().clamp(min=1.0)
    l1 = ((out[:, 1:] - size).abs() * mask[:, None]).sum() / (3 * mask.sum()).clamp(min=1.0)
    return focal + size_weight * l1


def init_heat_bias(net, prior: float = 0.01) -> None:
    """Start the centre heat-map at a low probability everywhere (CenterNet's prior), so the
    first steps are not spent unlearning a 50 % guess on millions of background voxels."""
    import math

    import torch

    last = [m for m in net.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    with torch.no_grad():
        last[-1].bias[0] = math.log(prior / (1 - prior))


def _detect_volume(net, ct, cfg: DemoConfig):
    out = ev.sliding_window(net, _ct_input(ct, cfg), cfg.patch_zyx)
    return ev.decode_centernet(out, score_threshold=0.05, nms_iou=0.1)


def _detection_results(net, seeds: list[int], cfg: DemoConfig):
    results = []
    for s in seeds:
        ct = pdata.ct_phantom(s, cfg.spacing_xyz, vary=False)
        boxes, scores = _detect_volume(net, ct, cfg)
        truth = pdata.nodule_boxes(ct.nodules, cfg.spacing_xyz)
        hits, n_true = ev.match_detections(boxes, scores, truth)
        results.append((scores, hits, n_true))
    return results


def train_detection(cfg: DemoConfig, log: Log) -> tuple[Any, dict[str, Any]]:
    import torch

    seed_everything(1)
    rng = np.random.default_rng(1)
    net = build_network("radlens.CenterNetUNet", cfg.kwargs)
    init_heat_bias(net)
    data = []
    for s in cfg.train_seeds:
        ct = pdata.ct_phantom(s, cfg.spacing_xyz, vary=True, n_nodules=(2, 6))
        t = pdata.centernet_targets(ct.hu.shape, ct.nodules, cfg.spacing_xyz)
        data.append((_ct_input(ct, cfg), t, [n.center_zyx for n in ct.nodules]))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1))
    net.train()
    p = cfg.train_patch_zyx
    for step in range(cfg.steps):
        xs, hs, ss, ms = [], [], [], []
        for _ in range(cfg.batch):
            img, t, centres = data[rng.integers(len(data))]
            (start,) = pdata.patch_starts(img.shape, p, rng, 1, centres, 0.6)
            xs.append(pdata.crop(img, start, p))
            hs.append(pdata.crop(t.heat, start, p))
            ss.append(np.stack([pdata.crop(c, start, p) for c in t.size]))
            ms.append(pdata.crop(t.size_mask, start, p))
        tensors = [torch.from_numpy(np.stack(a)) for a in (xs, hs, ss, ms)]
        loss = centernet_loss(net(tensors[0][:, None]), *tensors[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"detection step {step + 1}/{cfg.steps} loss {loss.item():.4f}")

    # The decision threshold is chosen on validation phantoms, never on the test set.
    val = _detection_results(net, cfg.val_seeds, cfg)
    _, threshold = ev.sensitivity_at_fp(val, 0.5)
    threshold = float(np.clip(threshold, 0.1, 0.9))
    test = _detection_results(net, cfg.test_seeds, cfg)
    sens_1fp, _ = ev.sensitivity_at_fp(test, 1.0)
    n_true = sum(n for _, _, n in test)
    tp = sum(int((h & (s >= threshold)).sum()) for s, h, _ in test)
    fp = sum(int((~h & (s >= threshold)).sum()) for s, h, _ in test)
    metrics = {
        "sensitivity_at_1fp_per_volume": round(sens_1fp, 4),
        "sensitivity_at_threshold": round(tp / max(n_true, 1), 4),
        "fp_per_volume_at_threshold": round(fp / max(len(test), 1), 4),
        "score_threshold": round(threshold, 4),
        "n_nodules": n_true,
        "n_cases": len(cfg.test_seeds),
        "hit_rule": "predicted box centre inside the true box, or IoU > 0.1",
        "split": _seed_range("held-out chest CT phantoms, seeds", cfg.test_seeds)
        + "; threshold chosen on "
        + _seed_range("validation seeds", cfg.val_seeds),
    }
    log(f"detection held-out: {metrics}")
    return net, metrics


# ---- classification -----------------------------------------------------------------------


def train_classification(cfg: DemoConfig, log: Log) -> tuple[Any, dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    seed_everything(2)
    rng = np.random.default_rng(2)
    size = cfg.patch_xyz[0]
    net = build_network("monai.DenseNet", cfg.kwargs)
    images, labels, _ = pdata.radiograph_set(cfg.train_seeds, size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1))
    net.train()
    for step in range(cfg.steps):
        idx = rng.integers(0, len(images), cfg.batch)
        x = images[idx].copy()
        flip = rng.random(len(idx)) < 0.5  # a nodule may sit in either lung
        x[flip] = x[flip][:, :, ::-1]
        x = torch.from_numpy(x)[:, None]
        loss = F.cross_entropy(net(x), torch.from_numpy(labels[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"classification step {step + 1}/{cfg.steps} loss {loss.item():.4f}")

    net.eval()
    test_x, test_y, _ = pdata.radiograph_set(cfg.test_seeds, size)
    with torch.no_grad():
        prob = torch.cat(
            [
                torch.softmax(net(torch.from_numpy(test_x[i : i + 64])[:, None]), dim=1)[:, 1]
                for i in range(0, len(test_x), 64)
            ]
        ).numpy()
    pred = prob >= 0.5
    metrics = {
        "auc": round(ev.roc_auc(prob, test_y), 4),
        "accuracy_at_0.5": round(float((pred == test_y.astype(bool)).mean()), 4),
        "sensitivity_at_0.5": round(float(pred[test_y == 1].mean()), 4)
        if (test_y == 1).any()
        else None,
        "specificity_at_0.5": round(float((~pred[test_y == 0]).mean()), 4)
        if (test_y == 0).any()
        else None,
        "n_cases": len(cfg.test_seeds),
        "n_nodule": int(test_y.sum()),
        "split": _seed_range("held-out radiograph phantoms, seeds", cfg.test_seeds),
    }
    log(f"classification held-out: {metrics}")
    return net, metrics


def _seed_range(what: str, seeds: list[int]) -> str:
    if not seeds:
        return f"{what}: none"
    return f"{what} {min(seeds)}-{max(seeds)}" if len(seeds) > 1 else f"{what} {seeds[0]}"
