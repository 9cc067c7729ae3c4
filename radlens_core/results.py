"""The result contract between engine and viewer: typed, frozen records in the input's voxels.

The engine answers in the input's own voxel index space (DESIGN.md "The contract"):
``LabelMap`` (uint8, same shape, with its label table), ``HeatMap`` (float in [0, 1], same
shape), ``Box`` (inclusive voxel corners, label, score), ``Classification`` (label ->
probability), and ``RunInfo`` (which model ran where, how long). ``AnalysisResult`` holds one
run. Both sides import these; nobody reads results by attribute name on ``Any``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from radlens_core.errors import UserError

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class _StrEnum(str, Enum):
    """A str-valued enum that prints and formats as its value on every Python version."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Task(_StrEnum):
    SEGMENTATION = "segmentation"
    DETECTION = "detection"
    CLASSIFICATION = "classification"
    #: a promptable model: clicks, a box or a scribble (and the previous mask) -> one mask
    INTERACTIVE = "interactive"


class LayerKind(_StrEnum):
    """The overlay layers a result can show (also the names kept in ``removed_layers``)."""

    MASK = "mask"
    HEATMAP = "heatmap"
    BOXES = "boxes"


class ReviewStatus(_StrEnum):
    """What a person said about an annotation or an AI proposal."""

    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EDITED = "edited"


class LabelError(ValueError, UserError):
    """A label class, annotation or label file that does not make sense."""


@dataclass(frozen=True)
class LabelClass:
    """One row of a label table: voxel value, name, display colour ("#rrggbb").

    Index 0 is background in a label map; classifiers' class tables may use it."""

    index: int
    name: str
    color: str = "#ff0000"

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)):
            raise LabelError(f"label index must be an integer, got {self.index!r}")
        object.__setattr__(self, "index", int(self.index))
        if not 0 <= self.index <= 255:
            raise LabelError(f"label index must be 0..255, got {self.index}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise LabelError(f"label {self.index} needs a name")
        if not isinstance(self.color, str) or not _COLOR.match(self.color):
            raise LabelError(
                f"label {self.name!r}: colour must look like #rrggbb, got {self.color!r}"
            )


#: Colours for labels whose source gives none, cycled by position.
FALLBACK_COLOURS = ("#4fc3f7", "#ff7043", "#aed581", "#ba68c8", "#ffd54f", "#4db6ac")


def label_name(labels: Sequence[LabelClass], index: int) -> str:
    for entry in labels:
        if entry.index == index:
            return entry.name
    return f"label {index}"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in voxel indices: inclusive corners (z0, y0, x0, z1, y1, x1) for
    volumes, (y0, x0, y1, x1) for 2D images; ``score`` in [0, 1]."""

    corners: tuple[float, ...]
    label: str
    score: float

    def __post_init__(self) -> None:
        corners = tuple(float(c) for c in self.corners)
        if len(corners) not in (4, 6):
            raise ValueError(f"a box has 4 (2D) or 6 (3D) corner values, got {len(corners)}")
        if not all(np.isfinite(corners)):
            raise ValueError(f"box corners must be finite, got {corners}")
        d = len(corners) // 2
        if any(corners[i] > corners[i + d] for i in range(d)):
            raise ValueError(f"box corners must be (lo..., hi...), got {corners}")
        object.__setattr__(self, "corners", corners)
        object.__setattr__(self, "label", str(self.label))
        object.__setattr__(self, "score", float(self.score))

    @property
    def ndim(self) -> int:
        return len(self.corners) // 2

    @property
    def lo(self) -> tuple[float, ...]:
        return self.corners[: self.ndim]

    @property
    def hi(self) -> tuple[float, ...]:
        return self.corners[self.ndim :]

    @property
    def center(self) -> tuple[float, ...]:
        d = self.ndim
        return tuple((self.corners[i] + self.corners[i + d]) / 2.0 for i in range(d))

    def corners_zyx(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(lo, hi) as 3D (z, y, x) corners; a 2D box lies on slice 0."""
        c = self.corners
        if len(c) == 4:
            return (0.0, c[0], c[1]), (0.0, c[2], c[3])
        return (c[0], c[1], c[2]), (c[3], c[4], c[5])


@dataclass(frozen=True, eq=False)
class LabelMap:
    """uint8 labels on the input grid, the table naming them, and each label's volume
    (mL for volumes, mm^2 for 2D images)."""

    array: np.ndarray
    labels: tuple[LabelClass, ...]
    volumes_ml: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))

    def label_name(self, index: int) -> str:
        return label_name(self.labels, index)


@dataclass(frozen=True, eq=False)
class HeatMap:
    """float32 in [0, 1] on the input grid (Grad-CAM, or a segmenter's probabilities)."""

    array: np.ndarray
    name: str = "heat map"


@dataclass(frozen=True)
class Classification:
    probabilities: Mapping[str, float]

    @property
    def top(self) -> tuple[str, float]:
        name = max(self.probabilities, key=self.probabilities.__getitem__)
        return name, float(self.probabilities[name])


def total_seconds(timings: Mapping[str, float]) -> float:
    """A run's wall time: its "total" timing, else the sum of its stages."""
    return float(timings.get("total", sum(v for k, v in timings.items() if k != "total")))


@dataclass(frozen=True)
class Flag:
    """A reason not to trust a result as it stands: ``code`` for programs (e.g.
    "volume_out_of_range", "too_many_findings", "out_of_distribution",
    "outside_intended_use"), ``message`` a sentence for the user."""

    code: str
    message: str


@dataclass(frozen=True)
class RunInfo:
    """Which model ran, where, in what precision, how long each stage took; whether it ran
    outside the card's intended use (an explicit override), its plausibility flags, and its
    out-of-distribution score with the range the card measured on its validation data."""

    model_id: str
    model_version: str
    task: Task
    device: str = "cpu"
    precision: str = "float32"
    timings: Mapping[str, float] = field(default_factory=dict)
    intended_use: str = ""
    warnings: tuple[str, ...] = ()
    model_name: str = ""
    outside_intended_use: bool = False
    flags: tuple[Flag, ...] = ()
    ood_score: float | None = None
    ood_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "flags", tuple(self.flags))

    @property
    def flagged(self) -> bool:
        return self.outside_intended_use or bool(self.flags)

    @property
    def total_seconds(self) -> float:
        return total_seconds(self.timings)


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """One analysis run: its metadata and whatever layers the task produced."""

    run: RunInfo
    label_map: LabelMap | None = None
    heat_map: HeatMap | None = None
    boxes: tuple[Box, ...] = ()
    classification: Classification | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", tuple(self.boxes))

    # The run's fields, read through the result (the most common use).
    @property
    def model_id(self) -> str:
        return self.run.model_id

    @property
    def model_version(self) -> str:
        return self.run.model_version

    @property
    def model_name(self) -> str:
        return self.run.model_name or self.run.model_id

    @property
    def task(self) -> Task:
        return self.run.task

    @property
    def device(self) -> str:
        return self.run.device

    @property
    def precision(self) -> str:
        return self.run.precision

    @property
    def timings(self) -> Mapping[str, float]:
        return self.run.timings

    @property
    def intended_use(self) -> str:
        return self.run.intended_use

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.run.warnings

    @property
    def flags(self) -> tuple[Flag, ...]:
        return self.run.flags

    def layers(self) -> list[LayerKind]:
        present = []
        if self.label_map is not None:
            present.append(LayerKind.MASK)
        if self.heat_map is not None:
            present.append(LayerKind.HEATMAP)
        if self.boxes:
            present.append(LayerKind.BOXES)
        return present

    def summary(self) -> dict[str, Any]:
        """JSON-ready description without the arrays (the CLI adds geometry on top)."""
        out: dict[str, Any] = {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "task": str(self.task),
            "device": self.device,
            "precision": self.precision,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "intended_use": self.intended_use,
            "warnings": list(self.warnings),
            "outside_intended_use": self.run.outside_intended_use,
            "flags": [{"code": f.code, "message": f.message} for f in self.run.flags],
            "ood_score": None if self.run.ood_score is None else round(self.run.ood_score, 4),
            "ood_range": None if self.run.ood_range is None else list(self.run.ood_range),
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
