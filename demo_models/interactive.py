"""Train the shipped promptable demo model (radlens-ct-prompt) and write its package.

    python -m demo_models.interactive [--out resources/models] [--steps N] [--threads 2] [--quick]

Its own training loop, not the users' trainer: ``radlens train`` learns label maps from
images, and a promptable model learns from prompt rounds (clicks simulated against the truth
and the previous mask), which that trainer has no notion of. The samples are built by the
engine's own code (``inference.tasks.interactive``: patch placement, sampling, prompt
encoding), so the network is trained on exactly what it sees in use. Data: synthetic chest CT
phantoms (``phantoms.chest``), seeds 300-311; the structures are lung, the largest nodule, the
largest vessel tree and the body. Each sample is one prompt round: a first click at the
structure's centre, and in later rounds a previous mask (the truth dilated, eroded, cut by a
plane, or missing a part) with the next click at the centre of its largest error; one sample
in five is a box around the structure instead. Seeded: the same command on the same CPU gives
the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from demo_models.interactive_user import STRUCTURES, next_click, structures
from inference.tasks import interactive as task

MODEL_ID = "radlens-ct-prompt"
TRAIN_SEEDS = tuple(range(300, 312))
PATCH_XYZ = (40, 40, 40)
STEPS = (-1000, 400)  # HU window of the card's clip_scale

NETWORK: dict[str, Any] = {
    "architecture": "monai.UNet",
    "kwargs": {
        "spatial_dims": 3,
        "in_channels": 4,
        "out_channels": 1,
        "channels": [8, 16, 32, 64],
        "strides": [2, 2, 2],
        "num_res_units": 1,
    },
    "output": "sigmoid",
}
INTERACTIVE: dict[str, float] = {"min_extent_mm": 96.0, "margin": 1.3, "click_radius": 1.5}


def spec() -> task.PatchSpec:
    return task.PatchSpec.from_card({"interactive": INTERACTIVE}, PATCH_XYZ)


def _previous(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible earlier answer: the truth dilated, eroded, cut by a plane or missing a ball."""
    kind = rng.integers(4)
    if kind == 0:
        return ndimage.binary_dilation(truth, iterations=int(rng.integers(1, 4)))
    if kind == 1:
        out = ndimage.binary_erosion(truth, iterations=int(rng.integers(1, 3)))
        return out if out.any() else truth.copy()
    idx = np.argwhere(truth)
    c = idx[rng.integers(len(idx))]
    if kind == 2:
        axis = int(rng.integers(3))
        cut = np.zeros(truth.shape, bool)
        sl = [slice(None)] * 3
        sl[axis] = slice(int(c[axis]), None) if rng.random() < 0.5 else slice(0, int(c[axis]))
        cut[tuple(sl)] = True
        return truth & ~cut
    zz, yy, xx = np.ogrid[: truth.shape[0], : truth.shape[1], : truth.shape[2]]
    r = max(2.0, float(np.cbrt(truth.sum())) * rng.uniform(0.3, 0.7))
    ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
    return truth & ~ball


def one_sample(
    hu: np.ndarray, sp: tuple[float, float, float], truth: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(network input (4, *patch), target (1, *patch)) of one simulated prompt round."""
    s = spec()
    box = None
    pos: list[tuple[int, ...]] = []
    neg: list[tuple[int, ...]] = []
    prev = None
    if rng.random() < 0.2:
        idx = np.argwhere(truth)
        lo, hi = idx.min(0), idx.max(0)
        jitter = rng.integers(-2, 3, size=6)
        box = np.concatenate([lo, hi]).astype(float) + jitter
        box = np.clip(box, 0, np.tile(np.asarray(truth.shape) - 1, 2))
    else:
        first = next_click(np.zeros_like(truth), truth, sp)
        assert first is not None
        pos.append(first.zyx)
        if rng.random() < 0.7:
            prev = _previous(truth, rng)
            click = next_click(prev, truth, sp)
            if click is not None:
                (pos if click.positive else neg).append(click.zyx)
    p = np.asarray(pos, float).reshape(-1, 3)
    n = np.asarray(neg, float).reshape(-1, 3)
    patch = task.place_patch(s, hu.shape, sp, p, n, box, prev)
    img = task.normalise(task.sample(hu, patch), [_clip()])
    x = task.encode(img, patch, s, p, n, box, prev)
    y = (task.sample(truth.view(np.uint8), patch) >= 0.5).astype(np.float32)[None]
    return x, y


def _clip() -> dict[str, Any]:
    return {"op": "clip_scale", "a_min": STEPS[0], "a_max": STEPS[1], "b_min": 0.0, "b_max": 1.0}


def make_pool(
    seeds: tuple[int, ...], per_phantom: int, shape_of, log, pool_seed: int = 0
) -> list[tuple[Any, Any]]:
    """Samples of each phantom; ``pool_seed`` draws other shapes, clicks and earlier masks."""
    pool = []
    for seed in seeds:
        rng = np.random.default_rng(seed + 1000 * pool_seed)
        hu, sp, truths = structures(seed, shape_of(rng))
        for i in range(per_phantom):
            name = STRUCTURES[i % len(STRUCTURES)]
            pool.append(one_sample(hu, sp, truths[name], rng))
        log(f"phantom {seed}: {per_phantom} samples")
    return pool


def train(
    steps: int,
    per_phantom: int,
    seeds: tuple[int, ...],
    threads: int,
    log,
    resume: Path | None = None,
    pool_seed: int = 0,
) -> tuple[Any, dict]:
    import torch

    from inference.networks import build_network

    torch.manual_seed(0)
    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()

    def shape_of(rng: np.random.Generator) -> tuple[int, int, int]:
        return (int(rng.integers(40, 72)), int(rng.integers(112, 176)), int(rng.integers(112, 176)))

    pool = make_pool(seeds, per_phantom, shape_of, log, pool_seed)
    data_seconds = time.perf_counter() - t0
    xs = torch.from_numpy(np.stack([p[0] for p in pool]))
    ys = torch.from_numpy(np.stack([p[1] for p in pool]))
    net = build_network(NETWORK["architecture"], NETWORK["kwargs"])
    if resume is not None:  # continue from an earlier run's weights (a second round)
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(resume)), strict=True)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    batch = 4
    net.train()
    for step in range(steps):
        pick = torch.randint(len(pool), (batch,), generator=gen)
        x, y = xs[pick], ys[pick]
        for axis in (2, 3, 4):  # flips keep click maps and masks aligned
            if torch.rand(1, generator=gen).item() < 0.5:
                x, y = x.flip(axis), y.flip(axis)
        logits = net(x)
        prob = torch.sigmoid(logits)
        inter = (prob * y).sum((1, 2, 3, 4))
        soft_dice = 1 - (2 * inter + 1) / (prob.sum((1, 2, 3, 4)) + y.sum((1, 2, 3, 4)) + 1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + soft_dice.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps} loss {loss.item():.4f}")
    net.eval()
    info = {
        "samples": len(pool),
        "steps": steps,
        "batch_size": batch,
        "data_seconds": round(data_seconds, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "threads": threads,
    }
    return net, info


def card(info: dict[str, Any], seeds: tuple[int, ...]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "id": MODEL_ID,
        "name": "Chest CT promptable segmenter (synthetic demo)",
        "version": "1.0.0",
        "task": "interactive",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "body_part": "CHEST",
        "input_channels": 4,
        "target_spacing": None,
        "patch_size": list(PATCH_XYZ),
        "preprocessing": {"steps": [_clip()]},
        "labels": [{"index": 1, "name": "structure", "color": "#ffd54f"}],
        "inference": {"interactive": INTERACTIVE},
        "network": dict(NETWORK),
        "training": {
            "script": "python -m demo_models.interactive",
            "loop": (
                "its own loop in demo_models/interactive.py, not the users' trainer (radlens"
                " train learns label maps from images; this model learns prompt rounds)"
            ),
            "data": (
                f"synthetic chest CT phantoms (phantoms/chest.py chest_ct) seeds {seeds[0]}-"
                f"{seeds[-1]}, 40-71 x 112-175 x 112-175 voxels; structures lung, the largest"
                " nodule, the largest vessel tree, the body; one simulated prompt round per"
                " sample: a click at the structure's centre, in 7 of 10 click samples a previous"
                " mask (truth dilated, eroded, cut by a plane or missing a ball) and the next"
                " click at the centre of its largest error; 1 sample in 5 a box instead"
            ),
            "inputs": "image (HU -1000..400 -> 0..1), positive clicks (box 0.5), negative clicks, previous mask",
            "loss": "binary cross-entropy + soft Dice, AdamW, one-cycle lr 3e-3, random flips",
            "date": time.strftime("%Y-%m-%d"),
            **info,
        },
        "metrics": {},
        "intended_use": (
            "Trained on synthetic phantoms only, to demonstrate promptable segmentation in"
            " RadLens; not for diagnosis or any clinical use."
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="resources/models")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--per-phantom", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 steps on 1 phantom (tests)")
    parser.add_argument("--resume", type=Path, help="start from these safetensors weights")
    parser.add_argument("--pool-seed", type=int, default=0, help="another draw of samples")
    args = parser.parse_args(argv)
    seeds = TRAIN_SEEDS[:1] if args.quick else TRAIN_SEEDS
    steps = 2 if args.quick else args.steps
    per = 4 if args.quick else args.per_phantom

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    from inference.weights import save_package

    net, info = train(steps, per, seeds, args.threads, log, args.resume, args.pool_seed)
    if args.resume is not None:
        info["resumed_from"] = str(args.resume)
    out = Path(args.out) / MODEL_ID
    written = save_package(out, card(info, seeds), net)
    log(f"wrote {written.path} ({json.dumps(info)})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
