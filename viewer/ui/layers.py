"""Overlay layers (label maps, heat maps, boxes): a small Qt-free model the views listen to.

The Analyze and annotation work adds layers here; every SliceView draws each visible layer
on its plane, and the Layers panel edits visibility, opacity and removal. Listeners are
plain callables ``(event, layer)`` with event in {"added", "removed", "changed"}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

LayerListener = Callable[[str, "Layer"], None]

#: Default colours for label indices 1.. (RGB), reused cyclically.
DEFAULT_LABEL_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 80, 60),
    (60, 200, 90),
    (70, 130, 240),
    (240, 200, 50),
    (200, 80, 220),
    (60, 210, 220),
    (250, 140, 40),
    (150, 220, 60),
)


@dataclass(frozen=True)
class BoxItem:
    """A box in voxel indices: covers voxels lo..hi inclusive along each of (z, y, x).

    The drawn rectangle runs from the outer edge of ``lo`` to the outer edge of ``hi``
    (index +- 0.5), so a one-voxel box outlines exactly that voxel. 2D images use z = 0.
    """

    lo_zyx: tuple[float, float, float]
    hi_zyx: tuple[float, float, float]
    label: str = ""
    score: float | None = None
    colour: tuple[int, int, int] = (255, 210, 0)

    def __post_init__(self) -> None:
        if len(self.lo_zyx) != 3 or len(self.hi_zyx) != 3:
            raise ValueError(f"box corners must be (z, y, x), got {self.lo_zyx}, {self.hi_zyx}")
        if any(h < lo for lo, h in zip(self.lo_zyx, self.hi_zyx, strict=True)):
            raise ValueError(f"box hi corner {self.hi_zyx} is below lo corner {self.lo_zyx}")


@dataclass(eq=False)
class Layer:
    """One overlay. ``kind`` is "labels" (uint8 array), "heatmap" (float [0,1]) or "boxes"."""

    name: str
    kind: str
    data: np.ndarray | list[BoxItem]
    visible: bool = True
    opacity: float = 0.5
    #: labels: index -> (r, g, b); missing indices fall back to DEFAULT_LABEL_COLOURS.
    colours: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    #: labels: draw only the boundary of each region.
    outline: bool = False
    #: heatmap: values below this are transparent.
    threshold: float = 0.2
    #: heatmap: a name understood by viewer.ui.overlays.heat_lut ("hot", "jet").
    colour_map: str = "hot"

    def __post_init__(self) -> None:
        if self.kind not in ("labels", "heatmap", "boxes"):
            raise ValueError(f"layer {self.name!r}: unknown kind {self.kind!r}")
        if self.kind == "labels":
            arr = np.asarray(self.data)
            if arr.dtype != np.uint8:
                raise ValueError(f"layer {self.name!r}: a label map must be uint8, got {arr.dtype}")
            self.data = arr
        elif self.kind == "heatmap":
            self.data = np.asarray(self.data, dtype=np.float32)
        else:
            self.data = list(self.data)  # type: ignore[arg-type]
        self.opacity = float(np.clip(self.opacity, 0.0, 1.0))

    def label_lut(self) -> np.ndarray:
        """(256, 4) uint8 RGBA table for a label map: index 0 transparent."""
        lut = np.zeros((256, 4), dtype=np.uint8)
        for i in range(1, 256):
            rgb = self.colours.get(i, DEFAULT_LABEL_COLOURS[(i - 1) % len(DEFAULT_LABEL_COLOURS)])
            lut[i, :3] = rgb
            lut[i, 3] = 255
        return lut


class LayerList:
    """Ordered layers (bottom first) with change notification."""

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self._listeners: list[LayerListener] = []

    def subscribe(self, listener: LayerListener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: LayerListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: str, layer: Layer) -> None:
        for listener in list(self._listeners):
            listener(event, layer)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers))

    def __len__(self) -> int:
        return len(self._layers)

    def names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    def get(self, name: str) -> Layer:
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}")

    def add(self, layer: Layer) -> Layer:
        """Add a layer; a layer with the same name is replaced (Analyze run twice)."""
        if layer.name in self.names():
            self.remove(layer.name)
        self._layers.append(layer)
        self._emit("added", layer)
        return layer

    def remove(self, name: str) -> None:
        layer = self.get(name)
        self._layers.remove(layer)
        self._emit("removed", layer)

    def clear(self) -> None:
        for name in self.names():
            self.remove(name)

    def update(self, name: str, **changes: object) -> Layer:
        """Change visible/opacity/outline/threshold/colour_map/data and notify listeners."""
        layer = self.get(name)
        for key, value in changes.items():
            if not hasattr(layer, key) or key in ("name", "kind"):
                raise AttributeError(f"layer {name!r} has no editable attribute {key!r}")
            setattr(layer, key, value)
        layer.opacity = float(np.clip(layer.opacity, 0.0, 1.0))
        self._emit("changed", layer)
        return layer
