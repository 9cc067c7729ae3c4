"""Training loops of the three shipped demo models (evaluation is in ``demo_eval``).

Each ``train_*`` takes a :class:`DemoConfig` (the card's geometry and how long to train) and
returns the trained network. Seeds: training phantoms use low seeds, validation (threshold
choice) 5000+, held-out test 1000+ (CT) or 10000+ (radiographs), so no evaluation phantom is
ever seen in training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from demo_models import data as pdata
from inference.networks import build_network
from inference.training.task_data import centernet_targets

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
    #: (z, y, x) of the held-out CT phantoms, run through the engine at their own resolution.
    eval_shape: tuple[int, int, int] = (96, 256, 256)
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


def train_segmentation(cfg: DemoConfig, log: Log) -> Any:
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
            (start,) = pdata.patch_starts(img.shape, cfg.train_patch_zyx, rng, 1, centres, 0.5)
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

    return net


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


def train_detection(cfg: DemoConfig, log: Log) -> Any:
    import torch

    seed_everything(1)
    rng = np.random.default_rng(1)
    net = build_network("radlens.CenterNetUNet", cfg.kwargs)
    init_heat_bias(net)
    # Volumes are kept as HU int16 and targets are made per crop: full-size target maps of
    # 40 phantoms would take gigabytes.
    data = []
    for s in cfg.train_seeds:
        # More and, on average, smaller nodules than the test phantoms: small ones are hardest.
        ct = pdata.ct_phantom(
            s, cfg.spacing_xyz, vary=True, n_nodules=(3, 8), nodule_radius_mm=(2.5, 9.0)
        )
        data.append((ct.hu, pdata.nodule_boxes(ct.nodules, ct.spacing)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1))
    net.train()
    p = cfg.train_patch_zyx
    for step in range(cfg.steps):
        xs, hs, ss, ms = [], [], [], []
        for _ in range(cfg.batch):
            hu, boxes = data[rng.integers(len(data))]
            centres = (boxes[:, :3] + boxes[:, 3:]) / 2.0
            (start,) = pdata.patch_starts(hu.shape, p, rng, 1, centres, 0.6)
            xs.append(pdata.clip_scale(pdata.crop(hu, start, p), *cfg.hu_window))
            # Boxes in crop voxels; only nodules centred in the crop get a peak.
            local = boxes - np.tile(start, 2)
            inside = np.all((centres - start >= -0.5) & (centres - start < np.asarray(p) - 0.5), 1)
            heat, size, mask = centernet_targets(p, local[inside])
            hs.append(heat)
            ss.append(size)
            ms.append(mask)
        tensors = [torch.from_numpy(np.stack(a)) for a in (xs, hs, ss, ms)]
        loss = centernet_loss(net(tensors[0][:, None]), *tensors[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log(f"detection step {step + 1}/{cfg.steps} loss {loss.item():.4f}")

    return net


# ---- classification -----------------------------------------------------------------------


def train_classification(cfg: DemoConfig, log: Log) -> Any:
    import torch
    import torch.nn.functional as F

    seed_everything(2)
    rng = np.random.default_rng(2)
    size = cfg.patch_xyz[0]
    net = build_network("monai.DenseNet", cfg.kwargs)
    # Each seed gives the same anatomy with and without a nodule (rows 2k and 2k + 1), and a
    # batch holds both of each pair, so the nodule is the only thing separating the classes.
    images, labels, _ = pdata.radiograph_set(cfg.train_seeds, size, paired=True)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1))
    net.train()
    for step in range(cfg.steps):
        pairs = rng.integers(0, len(images) // 2, max(cfg.batch // 2, 1))
        idx = np.concatenate([2 * pairs, 2 * pairs + 1])
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

    return net.eval()
