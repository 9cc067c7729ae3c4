"""Overlay layers (label maps, heat maps, boxes): a small Qt-free model the views listen to.

The Analyze and annotation work adds layers here; every SliceView draws each visible layer
on its plane, and the Layers panel edits visibility, opacity and removal. Listeners are
plain callables ``(event, layer)`` with event in {"added", "removed", "changed"}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from radlens_core.results import AnalysisResult

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


def box_from_corners(
    corners: tuple[float, ...] | list[float],
    label: str = "",
    score: float | None = None,
    colour: tuple[int, int, int] = (255, 210, 0),
) -> BoxItem:
    """A BoxItem from inclusive voxel corners (z0, y0, x0, z1, y1, x1) or 2D (y0, x0, y1, x1).

    That is the corner convention of ``inference.results.BoxResult`` and ``viewer.labels`` boxes.
    """
    c = [float(v) for v in corners]
    if len(c) == 4:
        c = [0.0, c[0], c[1], 0.0, c[2], c[3]]
    if len(c) != 6:
        raise ValueError(f"box corners need 4 (2D) or 6 (3D) numbers, got {len(c)}")
    lo = tuple(min(a, b) for a, b in zip(c[:3], c[3:], strict=True))
    hi = tuple(max(a, b) for a, b in zip(c[:3], c[3:], strict=True))
    return BoxItem(lo, hi, label, score, colour)  # type: ignore[arg-type]


def hex_colour(text: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b); the label-table colour format of model cards."""
    t = text.lstrip("#")
    if len(t) != 6:
        raise ValueError(f"colour {text!r} is not #rrggbb")
    return int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16)


def layers_from_analysis(result: AnalysisResult, prefix: str = "AI") -> list[Layer]:
    """Layers for an engine ``AnalysisResult`` (label map, heat map, boxes)."""
    out: list[Layer] = []
    label_map = result.label_map
    if label_map is not None:
        colours = {e.index: hex_colour(e.color) for e in label_map.labels}
        out.append(Layer(f"{prefix} labels", "labels", label_map.array, colours=colours))
    if result.heat_map is not None:
        out.append(Layer(f"{prefix} heat map", "heatmap", result.heat_map.array, opacity=0.45))
    if result.boxes:
        items = [box_from_corners(b.corners, b.label, b.score) for b in result.boxes]
        out.append(Layer(f"{prefix} boxes", "boxes", items, opacity=1.0))
    return out


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
    #: labels: indices not drawn (the label browser's show/hide per label).
    hidden_labels: frozenset[int] = frozenset()
    #: Why this layer must not pass for a plain result (outside intended use, flags); its tooltip.
    note: str = ""

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
            lut[i, 3] = 0 if i in self.hidden_labels else 255
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
