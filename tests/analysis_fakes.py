"""Stand-ins for the engine's AnalysisResult and Engine, shared by the analysis tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from phantoms.chest import NODULE


# Stand-ins with the engine's AnalysisResult attribute names (inference.results).
@dataclass
class _Label:
    index: int
    name: str
    color: str


@dataclass
class _LabelMap:
    array: np.ndarray
    labels: list


@dataclass
class _Heat:
    array: np.ndarray


@dataclass
class _Box:
    corners: tuple
    label: str
    score: float


@dataclass
class _Cls:
    probabilities: dict


@dataclass
class _Result:
    model_id: str = "fake-seg"
    model_version: str = "1.0.0"
    task: str = "segmentation"
    device: str = "cpu"
    precision: str = "float32"
    timings: dict = field(default_factory=lambda: {"total": 1.5})
    label_map: object = None
    heat_map: object = None
    boxes: list = field(default_factory=list)
    classification: object = None
    intended_use: str = "Demonstration only; not for diagnosis."
    warnings: list = field(default_factory=list)


def phantom_result(ct) -> _Result:
    """What a perfect segmenter + detector would answer for a chest CT phantom."""
    labels = [_Label(1, "lung", "#4fc3f7"), _Label(2, "nodule", "#ff7043")]
    heat = (ct.labels == NODULE).astype(np.float32) * 0.9
    boxes = []
    for n in ct.nodules:
        lo, hi = n.box_zyx(ct.spacing)
        boxes.append(_Box((*lo, *hi), "nodule", 0.8))
    return _Result(label_map=_LabelMap(ct.labels.copy(), labels), heat_map=_Heat(heat), boxes=boxes)


class Cancelled(Exception):
    """Named like inference.engine.Cancelled, which the bridge recognises by name."""


class FakeEngine:
    """Steps through ``steps`` windows, reporting progress and honouring cancel like the engine."""

    def __init__(
        self, answer, steps: int = 5, step_s: float = 0.01, error: Exception | None = None
    ):
        self.answer, self.steps, self.step_s, self.error = answer, steps, step_s, error
        self.calls: list[tuple] = []

    def __call__(self, device: str) -> FakeEngine:
        self.device = device
        return self

    def run(self, image, spacing, direction, modality, card, progress, cancel):
        self.calls.append((image.shape, tuple(spacing), modality, card))
        for i in range(self.steps):
            if cancel():
                raise Cancelled("cancelled by the user")
            progress(i / self.steps, f"window {i + 1} of {self.steps}")
            time.sleep(self.step_s)
        if self.error is not None:
            raise self.error
        return self.answer
