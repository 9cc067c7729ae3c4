"""The training loop: dataset -> split by patient -> train/validate per epoch -> model package.

Checkpoints every epoch (safetensors + JSON state, never pickle), resumes, and stops cleanly
on Ctrl-C or a ``STOP`` file in the output folder, keeping the best epoch as the package.
Every epoch re-seeds torch, numpy and the MONAI transforms from (seed, epoch), so a resumed
run follows the same trajectory as an uninterrupted one.

Progress goes two ways: ``progress`` gets the sentences ``radlens train`` prints for people,
``events`` gets one JSON-ready dict per happening (``events.py``: start, step, epoch,
checkpoint, stopped), which ``radlens train --progress-json`` prints one per line for programs.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.training import package as pkg
from inference.training.dataset import Dataset, DatasetError, load_dataset, split_by_patient
from inference.training.events import Event, EventSink, StepThrottle, epoch_event
from inference.training.model_spec import card_from_template, new_card, training_metric
from inference.training.sampling import CARD_KEY as SAMPLING_KEY
from inference.training.sampling import Sampling
from inference.training.schedule import CARD_KEY as SCHEDULE_KEY
from inference.training.steps import TaskSteps
from radlens_core.files import atomic_write_text
from radlens_core.progress import CancelCheck

STATE = "state.json"
CHECKPOINT_DIR = "checkpoint"
STOP_FILE = "STOP"
SCRATCH_LR = 1e-3
FINETUNE_LR = 1e-4


class TrainingError(RuntimeError):
    """A training run that cannot start or continue; the message says what to change."""


@dataclass
class TrainOptions:
    dataset: Path
    task: str
    out: Path
    from_model: str | None = None
    epochs: int = 10
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    val_fraction: float = 0.2
    #: optimiser steps per epoch; None = enough to see each training case about once
    steps_per_epoch: int | None = None
    #: None: the task's default (16 images for classifiers, 2 crops for the 3D tasks)
    batch_size: int | None = None
    #: None: 1e-3 from scratch, 1e-4 when fine-tuning (a trained model is near a good
    #: minimum; the from-scratch rate throws it out before the new data can help)
    lr: float | None = None
    #: new models only: (x, y, z) patch; fine-tuning keeps the parent's
    patch_size: tuple[int, ...] | None = None
    #: new models only: a model card (dict) to train from scratch with its network,
    #: spacing, preprocessing, labels and thresholds instead of the task's default card
    card: dict[str, Any] | None = field(default=None, repr=False)
    #: 3D tasks: (x, y, z) of the training crops when smaller than the card's patch (the
    #: networks are fully convolutional; inference still uses the card's patch)
    crop_size: tuple[int, ...] | None = None
    #: how samples are drawn and perturbed (intensity augmentation, whole-patient batches,
    #: class-balanced crops: ``inference.training.sampling``); None: the card's
    #: ``training.sampling``, else the defaults. The packaged card states the one used.
    sampling: Sampling | None = None
    model_id: str | None = None
    version: str = "0.1.0"
    name: str | None = None
    threads: int | None = None
    progress: Callable[[str], None] = print
    #: machine-readable progress: one dict per event (see ``inference.training.events``)
    events: EventSink | None = field(default=None, repr=False)
    #: called after every optimiser step with (epoch, step); tests use it to interrupt
    on_step: Callable[[int, int], None] | None = field(default=None, repr=False)
    #: a GUI worker's cancel flag, checked before every step like the STOP file
    cancel: CancelCheck | None = field(default=None, repr=False)


@dataclass
class TrainResult:
    package: Path
    best_metric: float
    best_epoch: int
    epochs_done: int
    stopped: str | None  # None, "stop file", "cancelled" or "interrupted"
    history: list[dict[str, float]]


def choose_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise TrainingError(f"unknown device {name!r} (auto, cpu, cuda)")
    return name


def _seed_all(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _fingerprint(ds: Dataset) -> list[str]:
    return sorted(f"{c.patient_id}/{c.case_id}" for c in ds.cases)


def _describe_data(ds: Dataset, train_ids: list[str], val_ids: list[str], seed: float) -> str:
    return (
        f"{ds.describe()}; split by patient (seed {seed}): "
        f"{len(train_ids)} training, {len(val_ids)} validation cases"
    )


def train(opts: TrainOptions) -> TrainResult:
    """Run (or resume) a training run and leave a complete model package in ``opts.out``."""
    # A stale stop request must not end this run. Removed before anything slow (or anything
    # that prints), so a stop asked for once the trainer has said a word is never lost.
    (Path(opts.out) / STOP_FILE).unlink(missing_ok=True)
    import torch

    emit: EventSink = opts.events or (lambda _event: None)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.epochs < 1:
        raise TrainingError(f"--epochs must be at least 1, got {opts.epochs}")
    device = choose_device(opts.device)
    if device == "cuda":
        # cuBLAS needs this for deterministic matmuls; harmless once CUDA is initialised.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(opts.out)
    state_path = out / CHECKPOINT_DIR / STATE
    if state_path.is_file() and not opts.resume:
        raise TrainingError(
            f"{out} already holds a training run; pass --resume to continue it or pick a new --out"
        )
    if opts.resume and not state_path.is_file():
        raise TrainingError(f"{out}: nothing to resume (no {CHECKPOINT_DIR}/{STATE})")

    ds = load_dataset(opts.dataset)
    train_cases, val_cases = split_by_patient(ds.cases, opts.val_fraction, opts.seed)
    if not train_cases:
        raise DatasetError(f"{opts.dataset}: no training cases left after the validation split")
    parent_state = None
    if opts.from_model:
        card, parent_state, parent_dir = pkg.load_parent(opts.from_model)
        if card["task"] != opts.task:
            raise TrainingError(
                f"{parent_dir}: is a {card['task']} model, cannot fine-tune it for {opts.task}"
            )
        # The child is drawn and perturbed as its parent was, unless told otherwise.
        inherited = (card.get("training") or {}).get(SAMPLING_KEY)
        card["training"] = {"parent": f"{card['id']}@{card['version']}"}
        if inherited is not None:
            card["training"][SAMPLING_KEY] = inherited
        card["id"] = opts.model_id or pkg.slug(f"{card['id']}-finetuned")
        card["name"] = opts.name or f"{card['name']} (fine-tuned)"
        card["version"] = opts.version
        card["metrics"] = {}
    elif opts.card is not None:
        card = card_from_template(opts, opts.card)
    else:
        card = new_card(opts, ds, train_cases)
    crop = tuple(int(c) for c in opts.crop_size)[::-1] if opts.crop_size else None
    sampling = opts.sampling if opts.sampling is not None else Sampling.from_card(card)
    steps = TaskSteps(card, opts.task, device, crop_zyx=crop, sampling=sampling)
    train_items = [steps.prepare(c) for c in train_cases]
    val_items = [steps.prepare(c) for c in val_cases]
    _seed_all(opts.seed)  # the initial weights are part of what the seed reproduces
    net = steps.build_network()
    if parent_state is not None:
        net.load_state_dict(parent_state)
    net.to(device)
    lr = opts.lr or (FINETUNE_LR if opts.from_model else SCRATCH_LR)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    metric_name, higher_is_better = training_metric(opts.task, bool(val_items))

    state: dict[str, Any] = {
        "task": opts.task,
        "seed": opts.seed,
        "dataset": _fingerprint(ds),
        "train_cases": [c.case_id for c in train_cases],
        "val_cases": [c.case_id for c in val_cases],
        "epoch": 0,
        "best_metric": None,
        "best_epoch": 0,
        "history": [],
        "card": card,
    }
    ckpt = out / CHECKPOINT_DIR
    if opts.resume:
        saved = json.loads(state_path.read_text(encoding="utf-8"))
        for key in ("task", "seed", "dataset"):
            if saved[key] != state[key]:
                raise TrainingError(
                    f"{out}: cannot resume, the run was started with a different {key}"
                )
        state = saved
        card = state["card"]
        net.load_state_dict(pkg.load_tensors(ckpt / "last.safetensors"))
        pkg.restore_optimizer(opt, pkg.load_tensors(ckpt / "optimizer.safetensors"), state["optim"])
        opts.progress(f"resuming {out} after epoch {state['epoch']}")
    ckpt.mkdir(parents=True, exist_ok=True)

    card["training"] = {
        **card.get("training", {}),
        "data": _describe_data(ds, state["train_cases"], state["val_cases"], opts.seed),
        "script": f"radlens train {opts.dataset} --task {opts.task} --seed {opts.seed}",
        "parent": card.get("training", {}).get("parent"),
        "seed": opts.seed,
        "validation_cases": state["val_cases"],
        SAMPLING_KEY: sampling.to_card(),
        SCHEDULE_KEY: steps.schedule,
    }
    if parent_state is not None and val_items and state["best_metric"] is None:
        _parent_is_the_bar(opts, steps, net, val_items, state, card, metric_name, out)
    stopped: str | None = None
    batch_size = opts.batch_size or steps.default_batch_size()
    # Default epoch: every training case seen about once (a 3D step crops one case, a
    # classification step takes batch_size images).
    per_step = batch_size if opts.task == "classification" else 1
    n_steps = opts.steps_per_epoch or max(1, math.ceil(len(train_items) / per_step))
    total_steps = n_steps * opts.epochs
    opts.progress(
        f"{opts.task}: {len(train_items)} training / {len(val_items)} validation cases on {device}"
        f", {n_steps} steps of {batch_size} per epoch"
    )
    emit(
        Event.start(
            opts.task, len(train_items), len(val_items), device, n_steps, batch_size,
            opts.epochs, metric_name, int(state["epoch"]),
        )
    )  # fmt: skip
    throttle = StepThrottle()
    epoch_seconds: list[float] = []
    try:
        for epoch in range(state["epoch"] + 1, opts.epochs + 1):
            t0 = time.perf_counter()
            _seed_all(opts.seed * 100_003 + epoch)
            rng = np.random.default_rng([opts.seed, epoch])
            aug = steps.augmentation(batch_size)
            aug.set_random_state(seed=(opts.seed * 7919 + epoch) % 2**32)
            net.train()
            losses = []
            for step in range(n_steps):
                if (out / STOP_FILE).exists():
                    stopped = "stop file"
                    break
                if opts.cancel is not None and opts.cancel():
                    stopped = "cancelled"
                    break
                batch = steps.batch(train_items, rng, aug, batch_size)
                factor = steps.lr_factor((epoch - 1) * n_steps + step, total_steps)
                for group in opt.param_groups:
                    group["lr"] = lr * factor
                opt.zero_grad(set_to_none=True)
                loss = steps.loss(net, batch)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach().cpu()))
                if opts.on_step:
                    opts.on_step(epoch, step)
                if throttle.due(step == n_steps - 1):
                    emit(Event.step(epoch, step + 1, n_steps, losses[-1]))
            if stopped:
                break
            metrics = steps.validate(net, val_items) if val_items else {}
            value = metrics.get(metric_name, float(np.mean(losses)))
            best = state["best_metric"]
            if math.isnan(value):  # e.g. AUC with one class in validation: never "better"
                improved = best is None
            else:
                improved = (
                    best is None
                    or math.isnan(best)
                    or (value > best if higher_is_better else value < best)
                )
            record = {"epoch": epoch, "loss": float(np.mean(losses)), **metrics}
            state["history"].append(record)
            state["epoch"] = epoch
            if improved:
                state["best_metric"], state["best_epoch"] = value, epoch
                _apply_threshold(card, metrics)
                card["metrics"] = {
                    **{k: _round(v) for k, v in metrics.items()},
                    "epoch": epoch,
                    "n_cases": len(val_items),
                    "split": "validation patients (hash split, see training.validation_cases)",
                }
                pkg.write_package(out, card, net.state_dict())
                emit(Event.checkpoint(epoch, out, best=True))
            pkg.save_tensors(ckpt / "last.safetensors", net.state_dict())
            tensors, state["optim"] = pkg.optimizer_tensors(opt)
            pkg.save_tensors(ckpt / "optimizer.safetensors", tensors)
            state["card"] = card
            atomic_write_text(state_path, json.dumps(state, indent=1))
            seconds = time.perf_counter() - t0
            epoch_seconds.append(seconds)
            opts.progress(
                f"epoch {epoch}/{opts.epochs}  loss {record['loss']:.4f}  "
                f"{metric_name} {value:.4f}  (best {state['best_metric']:.4f} "
                f"@ {state['best_epoch']})  {seconds:.1f} s"
            )
            emit(
                epoch_event(
                    epoch, opts.epochs, epoch * n_steps, record["loss"], metric_name, value,
                    state["best_metric"], state["best_epoch"], epoch_seconds,
                )
            )  # fmt: skip
    except KeyboardInterrupt:
        stopped = "interrupted"
    if stopped:
        opts.progress(f"stopped ({stopped}) after epoch {state['epoch']}; keeping the best epoch")
        emit(Event.stopped(stopped, int(state["epoch"])))
        (out / STOP_FILE).unlink(missing_ok=True)
    if not (out / "model.json").is_file():
        # Stopped before the first validation: the package holds the weights as they are.
        card["metrics"] = {}
        pkg.write_package(out, card, net.state_dict())
    pkg.write_readme(
        out, json.loads((out / "model.json").read_text(encoding="utf-8")), state["history"]
    )
    return TrainResult(
        package=out,
        best_metric=float(state["best_metric"]) if state["best_metric"] is not None else math.nan,
        best_epoch=int(state["best_epoch"]),
        epochs_done=int(state["epoch"]),
        stopped=stopped,
        history=list(state["history"]),
    )


def _parent_is_the_bar(
    opts: TrainOptions,
    steps: TaskSteps,
    net: Any,
    val_items: list[dict[str, Any]],
    state: dict[str, Any],
    card: dict[str, Any],
    metric_name: str,
    out: Path,
) -> None:
    """Score the parent on the validation patients as epoch 0 and package it.

    An epoch then has to beat the parent to replace it, so fine-tuning never hands back a
    model that is worse than the one it started from on the validation split.
    """
    metrics = steps.validate(net, val_items)
    value = metrics.get(metric_name, math.nan)
    if math.isnan(value):
        return
    state["best_metric"], state["best_epoch"] = value, 0
    _apply_threshold(card, metrics)
    card["metrics"] = {
        **{k: _round(v) for k, v in metrics.items()},
        "epoch": 0,
        "n_cases": len(val_items),
        "split": "validation patients (hash split, see training.validation_cases)",
    }
    pkg.write_package(out, card, net.state_dict())
    opts.progress(
        f"parent model on the validation cases: {metric_name} {value:.4f} "
        "(epoch 0; a fine-tuned epoch must beat it)"
    )


def _apply_threshold(card: dict[str, Any], metrics: dict[str, float]) -> None:
    """A classifier's card takes the score threshold chosen on the validation cases."""
    if "val_threshold" in metrics:
        card["thresholds"] = {
            **card.get("thresholds", {}),
            # not rounded: a rounded cut could cross a validation score it was meant to split
            "score": float(metrics["val_threshold"]),
        }


def _round(v: float) -> float:
    return float(round(v, 6)) if isinstance(v, (int, float)) and math.isfinite(v) else v
