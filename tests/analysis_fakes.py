"""Engine answers built from the real result records (radlens_core.results), and a fake Engine."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from inference.card import ModelCard
from phantoms.chest import NODULE
from radlens_core.progress import Cancelled
from radlens_core.results import (
    AnalysisResult,
    Box,
    Classification,
    HeatMap,
    LabelClass,
    LabelMap,
    RunInfo,
)
from tests.inference_factory import SEG_KW

__all__ = ["CARD", "Cancelled", "FakeEngine", "analysis_result", "phantom_result"]

#: A segmenter's model card (read from a dict as from model.json; its weights are never read).
CARD = ModelCard.from_dict(
    {
        "id": "fake-seg",
        "name": "Fake segmenter",
        "version": "1.0.0",
        "task": "segmentation",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "body_part": "CHEST",
        "labels": [{"index": 1, "name": "lung", "color": "#4fc3f7"}],
        "network": {
            "architecture": "monai.UNet",
            "kwargs": SEG_KW,
            "weights": "model.safetensors",
            "format": "safetensors",
        },
        "files": {"model.safetensors": "0" * 64},
        "training": {"data": "Synthetic phantoms, seeds 0-39", "script": "python -m x"},
        "metrics": {"dice_nodule": 0.81},
        "intended_use": "Demonstration only; not for diagnosis.",
    },
    "fake-seg",
)


def analysis_result(
    *,
    model_id: str = "fake-seg",
    task: str = "segmentation",
    label_map: LabelMap | None = None,
    heat_map: np.ndarray | None = None,
    boxes: Sequence[Box] = (),
    probabilities: Mapping[str, float] | None = None,
    seconds: float = 1.5,
) -> AnalysisResult:
    """An engine answer as ``inference.engine.Engine.run`` returns it (a core AnalysisResult)."""
    run = RunInfo(
        model_id=model_id,
        model_version="1.0.0",
        task=task,
        device="cpu",
        precision="float32",
        timings={"total": seconds},
        intended_use="Demonstration only; not for diagnosis.",
    )
    return AnalysisResult(
        run=run,
        label_map=label_map,
        heat_map=HeatMap(heat_map) if heat_map is not None else None,
        boxes=tuple(boxes),
        classification=Classification(dict(probabilities)) if probabilities else None,
    )


def phantom_result(ct) -> AnalysisResult:
    """What a perfect segmenter + detector would answer for a chest CT phantom."""
    labels = (LabelClass(1, "lung", "#4fc3f7"), LabelClass(2, "nodule", "#ff7043"))
    heat = (ct.labels == NODULE).astype(np.float32) * 0.9
    boxes = []
    for n in ct.nodules:
        lo, hi = n.box_zyx(ct.spacing)
        boxes.append(Box((*lo, *hi), "nodule", 0.8))
    return analysis_result(label_map=LabelMap(ct.labels.copy(), labels), heat_map=heat, boxes=boxes)


class FakeEngine:
    """Steps through ``steps`` windows, reporting progress and honouring cancel like the engine
    (raising the one ``radlens_core.progress.Cancelled``)."""

    def __init__(
        self, answer, steps: int = 5, step_s: float = 0.01, error: Exception | None = None
    ):
        self.answer, self.steps, self.step_s, self.error = answer, steps, step_s, error
        self.calls: list[tuple] = []
        self.kwargs: list[dict] = []

    def __call__(self, device: str) -> FakeEngine:
        self.device = device
        return self

    def run(
        self, image, spacing, direction, modality, card, progress, cancel, **kwargs
    ) -> AnalysisResult:
        """As ``Engine.run``; ``outside_intended_use=True`` (an override) marks the answer's
        run as the engine does."""
        self.calls.append((image.shape, tuple(spacing), modality, card))
        self.kwargs.append(dict(kwargs))
        for i in range(self.steps):
            if cancel():
                raise Cancelled("cancelled by the user")
            progress(i / self.steps, f"window {i + 1} of {self.steps}")
            time.sleep(self.step_s)
        if self.error is not None:
            raise self.error
        if kwargs.get("outside_intended_use"):
            return replace(self.answer, run=replace(self.answer.run, outside_intended_use=True))
        return self.answer
