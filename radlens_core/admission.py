"""Which models may run on a series: the facts of a series, and a card's answer with reasons."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeriesFacts:
    """What a model card is checked against (DESIGN.md "Where it may run").

    ``has_spacing`` is False when the image carries no calibrated pixel spacing (a model that
    needs millimetres must not run on it); ``body_part`` is "" when the image states none."""

    modality: str
    spatial_dims: int  # 2 for a single image, 3 for a volume
    shape: tuple[int, int, int]  # (z, y, x)
    body_part: str = ""
    has_spacing: bool = True
    channels: int = 1

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        object.__setattr__(self, "modality", str(self.modality).upper())
        object.__setattr__(self, "body_part", str(self.body_part or "").upper())
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))


@dataclass(frozen=True)
class Admission:
    """A model's answer for one series: admitted when ``reasons`` is empty; otherwise each
    reason is a sentence ("made for CT, this series is CR")."""

    model_id: str
    model_name: str
    reasons: tuple[str, ...] = ()

    @property
    def admitted(self) -> bool:
        return not self.reasons
