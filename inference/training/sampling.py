"""How a training run draws and perturbs its samples: one record, stated on the card.

The defaults suit most data, but not all of it:

- ``intensity``: random intensity scale (+-10 %) and shift (+-0.05) per sample. A subtle
  finding (a small blob a few per cent brighter than its surroundings) drowns in it: the
  network cannot tell the finding from the augmentation. Off for such classifiers.
- ``group_by_patient`` (classification): a batch is made of whole patients, every case of
  each drawn patient together (e.g. one anatomy imaged with and without a finding), so the
  finding is the only thing that separates the classes within the batch.
- ``crop_class_ratios`` (segmentation): training crops are centred on each label class
  (0 = background, 1, 2, ...) with these relative weights, instead of "foreground or not".
  A small structure (a nodule) beside a large one (a lung) is otherwise almost never centred
  and its Dice collapses to 0.

The record is read from the template card's ``training.sampling`` (``radlens train --card``)
unless the caller gives one, and the trained card states the one used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.training.cases import DatasetError

CARD_KEY = "sampling"


@dataclass(frozen=True)
class Sampling:
    intensity: bool = True
    group_by_patient: bool = False
    crop_class_ratios: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        ratios = self.crop_class_ratios
        if ratios is not None:
            if len(ratios) < 2 or any(not math.isfinite(r) or r < 0 for r in ratios):
                raise DatasetError(
                    f"crop class ratios need two or more weights >= 0 (background first), "
                    f"got {list(ratios)}"
                )
            if not any(r > 0 for r in ratios):
                raise DatasetError("crop class ratios: at least one weight must be above 0")

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> Sampling:
        """The record in ``card["training"]["sampling"]``, defaults where absent."""
        raw = (card.get("training") or {}).get(CARD_KEY) or {}
        if not isinstance(raw, Mapping):
            raise DatasetError(f"the card's training.{CARD_KEY} must be a mapping, got {raw!r}")
        unknown = sorted(set(raw) - {"intensity", "group_by_patient", "crop_class_ratios"})
        if unknown:
            raise DatasetError(f"the card's training.{CARD_KEY} has unknown keys: {unknown}")
        ratios = raw.get("crop_class_ratios")
        return cls(
            intensity=bool(raw.get("intensity", True)),
            group_by_patient=bool(raw.get("group_by_patient", False)),
            crop_class_ratios=tuple(float(r) for r in ratios) if ratios is not None else None,
        )

    def to_card(self) -> dict[str, Any]:
        return {
            "intensity": self.intensity,
            "group_by_patient": self.group_by_patient,
            "crop_class_ratios": list(self.crop_class_ratios) if self.crop_class_ratios else None,
        }


def patient_groups(patients: Sequence[str]) -> list[np.ndarray]:
    """Indices of the items of each patient, patients in first-seen order."""
    order: dict[str, list[int]] = {}
    for i, p in enumerate(patients):
        order.setdefault(p, []).append(i)
    return [np.asarray(v) for v in order.values()]


def grouped_picks(patients: Sequence[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` item indices made of whole patients: patients are drawn without replacement
    (reshuffled once all are used) and all their items taken together; the last patient
    drawn is cut to fill exactly ``n``."""
    groups = patient_groups(patients)
    picks: list[int] = []
    while len(picks) < n:
        for g in rng.permutation(len(groups)):
            picks.extend(int(i) for i in groups[g])
            if len(picks) >= n:
                break
    return np.asarray(picks[:n])
