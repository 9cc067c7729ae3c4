"""Analysis results as plain dataclasses + numpy, in the input's own voxel index space."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.card import LabelEntry


@dataclass
class LabelMapResult:
    array: np.ndarray  # uint8, same shape as the input
    labels: list[LabelEntry]
    #: label name -> volume in mL (area in mm^2 for 2D images)
    volumes_ml: dict[str, float] = field(default_factory=dict)


@dataclass
class HeatMapResult:
    array: np.ndarray  # float32 in [0, 1], same shape as the input
    name: str


@dataclass(frozen=True)
class BoxResult:
    #: inclusive voxel corners (z0, y0, x0, z1, y1, x1) or (y0, x0, y1, x1) of the input grid
    corners: tuple[float, ...]
    label: str
    score: float

    @property
    def center(self) -> tuple[float, ...]:
        d = len(self.corners) // 2
        return tuple((self.corners[i] + self.corners[i + d]) / 2.0 for i in range(d))


@dataclass
class ClassificationResult:
    probabilities: dict[str, float]

    @property
    def top(self) -> tuple[str, float]:
        name = max(self.probabilities, key=self.probabilities.__getitem__)
        return name, self.probabilities[name]


@dataclass
class AnalysisResult:
    model_id: str
    model_version: str
    task: str
    device: str
    precision: str
    timings: dict[str, float] = field(default_factory=dict)
    label_map: LabelMapResult | None = None
    heat_map: HeatMapResult | None = None
    boxes: list[BoxResult] = field(default_factory=list)
    classification: ClassificationResult | None = None
    intended_use: str = ""
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description without the arrays (the CLI adds geometry on top)."""
        out: dict[str, Any] = {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "task": self.task,
            "device": self.device,
            "precision": self.precision,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "intended_use": self.intended_use,
            "warnings": list(self.warnings),
        }
        if self.label_map is not None:
            out["volumes_ml"] = {k: round(v, 3) for k, v in self.label_map.volumes_ml.items()}
        if self.classification is not None:
            out["probabilities"] = {
                k: round(v, 5) for k, v in self.classification.probabilities.items()
            }
        out["boxes"] = [
            {
                "corners_voxel": [round(c, 2) for c in b.corners],
                "label": b.label,
                "score": round(b.score, 4),
            }
            for b in self.boxes
        ]
        return out
