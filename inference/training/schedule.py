"""The learning-rate schedule of a training run, chosen in the card's ``training.lr_schedule``.

- ``constant``: the base rate throughout (the 3D tasks' default).
- ``warmup_cosine``: linear warm-up over the first 10 % of steps, then a cosine down to 5 %
  (the classifiers' default: a small finding is a weak signal, and a constant high rate keeps
  the weights jumping between epochs so the best-epoch pick is a lottery).
- ``one_cycle``: Smith's one-cycle policy as ``torch.optim.lr_scheduler.OneCycleLR`` draws
  it (cosine up from 1/25 of the rate over the first 30 %, then cosine down to 1/250000 of
  it; the optimiser's momentum is not cycled). A high peak rate explores, the long anneal
  settles: the shipped segmenter is trained so.

Every factor is a pure function of the global step, so a resumed run gets exactly the rate an
uninterrupted one would. The trained card states the schedule used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from inference.training.cases import DatasetError

CARD_KEY = "lr_schedule"
SCHEDULES = ("constant", "warmup_cosine", "one_cycle")
#: one_cycle: OneCycleLR's defaults (pct_start, div_factor, final_div_factor)
ONE_CYCLE_RISE, ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV = 0.3, 25.0, 1e4


def default_schedule(task: str) -> str:
    return "warmup_cosine" if task == "classification" else "constant"


def schedule_from_card(card: Mapping[str, Any], task: str) -> str:
    """The schedule named in ``card["training"]["lr_schedule"]``, else the task's default."""
    name = (card.get("training") or {}).get(CARD_KEY)
    if name is None:
        return default_schedule(task)
    if name not in SCHEDULES:
        raise DatasetError(
            f"the card's training.{CARD_KEY} must be one of {', '.join(SCHEDULES)}, got {name!r}"
        )
    return str(name)


def _cos(start: float, end: float, t: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * t) + 1.0)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at global ``step`` (0-based) of ``total``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    if schedule == "constant" or total <= 1:
        return 1.0
    if schedule == "warmup_cosine":
        warm = max(1, total // 10)
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        # numpy's cosine, as when the shipped classifier was trained (bit-identical rates)
        return 0.05 + 0.95 * 0.5 * (1.0 + float(np.cos(np.pi * t)))
    first = 1.0 / ONE_CYCLE_DIV
    last = first / ONE_CYCLE_FINAL_DIV
    peak_step = ONE_CYCLE_RISE * total - 1.0
    step = min(max(step, 0), total - 1)
    if step <= peak_step:
        return _cos(first, 1.0, step / peak_step) if peak_step > 0 else 1.0
    return _cos(1.0, last, (step - peak_step) / (total - 1.0 - peak_step))
