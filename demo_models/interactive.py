"""Train the shipped promptable model radlens-ct-prompt (~400 lines: one loop and its card).

    python -m demo_models.interactive [--out resources/models] [--steps N] [--threads 2] [--quick]

Its own training loop, not the users' trainer: ``radlens train`` learns label maps from
images, and a promptable model learns from prompt rounds (clicks simulated against the truth
and the previous mask), which that trainer has no notion of. The samples are built by the
engine's own code (``inference.tasks.interactive``: patch placement, sampling, prompt
encoding), so the network is trained on exactly what it sees in use. Data: synthetic chest CT
phantoms (``phantoms.chest``), seeds 300-311; the structures are lung, the largest nodule, the
largest vessel tree and the body (``demo_models.interactive_user``, the truth the quality
benchmarks use too). Training is iterative, as in RITM, SAM and nnInteractive: a first
prompt (a click at the structure's centre, or a box), then 0..4 answers of the network being
trained, each followed by the simulated user's next click at the centre of its largest error;
the step learns from the last state, its own previous answer as the previous-mask input.
Seeded: the same command on the same CPU gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
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
#: most answers the simulated user sees before the step it learns from
MAX_ROUNDS = 4

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
#: how the engine places and uses the patch; "focus" acts at inference only (a click keeps
#: only what it asked for, connected to it), training never reads it
INTERACTIVE: dict[str, Any] = {
    "min_extent_mm": 64.0,
    "margin": 1.3,
    "click_radius": 1.5,
    "zoom_out": 3,
    "focus": True,
}


#: the training phantoms' (z, y, x) shapes, drawn in [lo, hi): "low" (the first releases:
#: 2-3 mm pixels, where the thinnest vessels are lost to partial volume) or "high" (1.25-1.75
#: mm pixels, near a chest CT's and the quality benchmark's 1.37 mm)
PHANTOM_SIZES = {
    "low": ((40, 112, 112), (72, 176, 176)),
    "high": ((80, 200, 200), (111, 281, 281)),
}


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


#: a patch's geometry as the trainer places it: "whole" around the structure (what the engine
#: places once a previous mask exists), "click" the first click's patch (min_extent_mm around
#: a voxel of the structure: a large one goes on beyond it)
PLACEMENTS = ("whole", "whole", "whole", "click", "click")


@dataclass
class Sample:
    """One patch of one structure: the normalised image and the truth on the model grid, and
    the model grid's spacing (mm per voxel, z y x) the simulated user measures in."""

    image: np.ndarray
    truth: np.ndarray
    spacing: tuple[float, float, float]


def one_sample(
    hu: np.ndarray, sp: tuple[float, float, float], truth: np.ndarray, rng: np.random.Generator
) -> Sample:
    """A patch placed as the engine places one (``task.place_patch``), sampled as the engine
    samples it (``task.sample``, ``task.normalise``)."""
    s = spec()
    idx = np.argwhere(truth)
    kind = PLACEMENTS[int(rng.integers(len(PLACEMENTS)))]
    if kind == "whole":
        lo, hi = idx.min(0).astype(float), idx.max(0).astype(float)
        shift = (hi - lo + 1) * rng.uniform(-0.1, 0.1, 3)
        corners = np.stack([lo + shift, hi + shift])
        zoom = float(rng.uniform(0.8, 1.3))
    else:
        corners = idx[int(rng.integers(len(idx)))][None].astype(float)
        zoom = 1.0
    none = np.zeros((0, 3))
    patch = task.place_patch(s, hu.shape, sp, corners, none, None, None, zoom)
    img = task.normalise(task.sample(hu, patch), [_clip()])
    y = task.sample(truth.view(np.uint8), patch) >= 0.5
    step = tuple(float(v) for v in patch.step * np.asarray(sp))
    return Sample(img, y, step)  # type: ignore[arg-type]


GRID = task.Patch(np.zeros(3), np.ones(3), PATCH_XYZ[::-1])  # the model grid itself


@dataclass
class Round:
    """The prompts of one simulated interaction on a sample, in model-grid voxels."""

    positive: list[tuple[int, int, int]]
    negative: list[tuple[int, int, int]]
    box: np.ndarray | None
    previous: np.ndarray  # bool, the model grid

    def encode(self, image: np.ndarray) -> np.ndarray:
        """The network input: ``task.encode``'s channels on the model grid itself."""
        s = spec()
        pos = np.asarray(self.positive, float).reshape(-1, 3)
        neg = np.asarray(self.negative, float).reshape(-1, 3)
        pmap = task.click_map(pos, GRID, s.click_radius)
        task.box_map(self.box, GRID, pmap)
        nmap = task.click_map(neg, GRID, s.click_radius)
        return np.stack([image, pmap, nmap, self.previous.astype(np.float32)])

    def add_click(self, pred: np.ndarray, truth: np.ndarray, spacing) -> None:
        click = next_click(pred, truth, spacing)
        if click is not None:
            (self.positive if click.positive else self.negative).append(click.zyx)
        self.previous = pred


def first_round(sample: Sample, rng: np.random.Generator) -> Round:
    """The user's first prompt: a box around the structure (1 in 5, jittered by up to two
    voxels), else a click at its centre; 1 in 5 click rounds start from an earlier mask that
    came from elsewhere (the truth dilated, eroded, cut or missing a ball) with the next click
    at the centre of its largest error."""
    truth = sample.truth
    empty = np.zeros(truth.shape, bool)
    if not truth.any():  # a patch beside the structure: the user clicked nothing there
        return Round([], [], None, empty)
    if rng.random() < 0.2:
        idx = np.argwhere(truth)
        box = np.concatenate([idx.min(0), idx.max(0)]).astype(float) + rng.integers(-2, 3, 6)
        box = np.clip(box, 0, np.tile(np.asarray(truth.shape) - 1, 2))
        return Round([], [], box, empty)
    r = Round([], [], None, empty)
    r.add_click(empty, truth, sample.spacing)
    if rng.random() < 0.2:
        r.add_click(_previous(truth, rng), truth, sample.spacing)
    return r


def simulate(net: Any, samples: list[Sample], rounds: list[Round], n: int) -> None:
    """``n`` rounds of the simulated user with the network being trained (no gradient): each
    round runs it on the prompts so far and its previous answer, then clicks at the centre
    of the largest error of its new answer (iterative training, as RITM and nnInteractive)."""
    import torch

    for _ in range(n):
        x = torch.from_numpy(
            np.stack([r.encode(s.image) for s, r in zip(samples, rounds, strict=True)])
        )
        with torch.no_grad():
            pred = (net(x)[:, 0] > 0).numpy()
        for s, r, p in zip(samples, rounds, pred, strict=True):
            if r.positive or r.box is not None:
                r.add_click(p, s.truth, s.spacing)


def _clip() -> dict[str, Any]:
    return {"op": "clip_scale", "a_min": STEPS[0], "a_max": STEPS[1], "b_min": 0.0, "b_max": 1.0}


def make_pool(
    seeds: tuple[int, ...], per_phantom: int, shape_of, log, pool_seed: int = 0
) -> list[Sample]:
    """Patches of each phantom's structures; ``pool_seed`` draws other shapes and placements."""
    pool = []
    for seed in seeds:
        rng = np.random.default_rng(seed + 1000 * pool_seed)
        hu, sp, truths = structures(seed, shape_of(rng))
        for i in range(per_phantom):
            pool.append(one_sample(hu, sp, truths[STRUCTURES[i % len(STRUCTURES)]], rng))
        log(f"phantom {seed}: {per_phantom} patches")
    return pool


def train(
    steps: int,
    per_phantom: int,
    seeds: tuple[int, ...],
    threads: int,
    log,
    resume: Path | None = None,
    pool_seed: int = 0,
    max_rounds: int = MAX_ROUNDS,
    lr: float = 3e-3,
    sizes: str = "low",
    batch: int = 4,
    checkpoint: Path | None = None,
) -> tuple[Any, dict]:
    """Iterative training: each step takes a batch of patches, gives each a first prompt,
    lets the network answer 0..``max_rounds`` times with the simulated user clicking after
    each answer, and learns from the last state (prompts so far + its own previous answer)."""
    import torch

    from inference.networks import build_network

    torch.manual_seed(0)
    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()

    lo, hi = PHANTOM_SIZES[sizes]

    def shape_of(rng: np.random.Generator) -> tuple[int, int, int]:
        return tuple(int(rng.integers(a, b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]

    pool = make_pool(seeds, per_phantom, shape_of, log, pool_seed)
    data_seconds = time.perf_counter() - t0
    net = build_network(NETWORK["architecture"], NETWORK["kwargs"])
    if resume is not None:  # continue from an earlier run's weights
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(resume)), strict=True)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    rng = np.random.default_rng(7 + pool_seed)
    gen = torch.Generator().manual_seed(0)
    shown = 0.0
    for step in range(steps):
        samples = [pool[int(i)] for i in rng.integers(len(pool), size=batch)]
        rounds = [first_round(s, rng) for s in samples]
        net.eval()
        simulate(net, samples, rounds, int(rng.integers(0, max_rounds + 1)))
        net.train()
        x = torch.from_numpy(
            np.stack([r.encode(s.image) for s, r in zip(samples, rounds, strict=True)])
        )
        y = torch.from_numpy(np.stack([s.truth[None] for s in samples]).astype(np.float32))
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
        shown = loss.item() if step == 0 else 0.95 * shown + 0.05 * loss.item()
        if step % 25 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps} loss {shown:.4f} ({time.perf_counter() - t0:.0f} s)")
        if checkpoint is not None and (step + 1) % 100 == 0:  # a long run's weights so far
            from safetensors.torch import save_file

            checkpoint.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
            save_file(state, str(checkpoint / f"step{step + 1:05d}.safetensors"))
    net.eval()
    info = {
        "samples": len(pool),
        "steps": steps,
        "batch_size": batch,
        "max_rounds": max_rounds,
        "lr": lr,
        "phantom_sizes": f"{lo[0]}-{hi[0] - 1} x {lo[1]}-{hi[1] - 1} x {lo[2]}-{hi[2] - 1}",
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
                f"{seeds[-1]}, {info['phantom_sizes']} voxels; structures lung, the largest"
                " nodule, the largest vessel tree (aorta excluded), the body; patches placed"
                " around the structure or around one of its voxels (the first click's patch)"
            ),
            "rounds": (
                "iterative: a first prompt (1 in 5 a box, else a click at the structure's"
                " centre; 1 in 5 click rounds from an earlier mask made elsewhere: the truth"
                " dilated, eroded, cut or missing a ball), then 0..max_rounds answers of the"
                " network being trained (no gradient), each followed by the next click at the"
                " centre of its largest error; the step learns from the last state"
            ),
            "inputs": "image (HU -1000..400 -> 0..1), positive clicks (box 0.5), negative clicks, previous mask",
            "loss": "binary cross-entropy + soft Dice, AdamW, one-cycle lr, random flips",
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
    parser.add_argument("--per-phantom", type=int, default=32)
    parser.add_argument("--max-rounds", type=int, default=MAX_ROUNDS)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 steps on 1 phantom (tests)")
    parser.add_argument("--resume", type=Path, help="start from these safetensors weights")
    parser.add_argument("--seeds", type=int, help="only the first N training phantoms")
    parser.add_argument("--pool-seed", type=int, default=0, help="another draw of samples")
    parser.add_argument("--sizes", choices=tuple(PHANTOM_SIZES), default="low")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--checkpoint", type=Path, help="write the weights every 100 steps here")
    args = parser.parse_args(argv)
    seeds = TRAIN_SEEDS[:1] if args.quick else TRAIN_SEEDS[: args.seeds or None]
    steps = 2 if args.quick else args.steps
    per = 4 if args.quick else args.per_phantom

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    from inference.weights import save_package

    net, info = train(
        steps, per, seeds, args.threads, log, args.resume, args.pool_seed, args.max_rounds,
        args.lr, args.sizes, max(1, args.batch), args.checkpoint,
    )  # fmt: skip
    if args.resume is not None:
        info["resumed_from"] = str(args.resume)
    out = Path(args.out) / MODEL_ID
    written = save_package(out, card(info, seeds), net)
    log(f"wrote {written.path} ({json.dumps(info)})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
