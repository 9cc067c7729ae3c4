"""How AI result layers are drawn: outline mode for masks, threshold and colour scale for heat maps.

The Layers panel handles show/hide, opacity and removal for every layer; this strip adds
the controls only result layers need, and edits them through the same ``LayerList``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from viewer.ui.layers import Layer, LayerList
from viewer.ui.overlays import heat_lut


def colour_bar(colour_map: str, threshold: float, width: int = 90, height: int = 10) -> QPixmap:
    """The heat map's colour scale, 0 at the left, 1 at the right; below threshold is grey."""
    lut = heat_lut(colour_map)
    xs = np.linspace(0.0, 1.0, width)
    row = lut[(xs * 255).astype(int)].copy()
    row[xs < threshold] = (60, 60, 60)  # drawn transparent on the image
    rgb = np.ascontiguousarray(np.repeat(row[None], height, axis=0))
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


def short_model_name(model_name: str) -> str:
    """ "Chest CT nodule detector (synthetic demo)" -> "Chest CT nodule detector"."""
    name = model_name.strip()
    if name.endswith(")") and " (" in name:
        name = name[: name.rindex(" (")]
    return name or model_name


def row_title(layer_name: str) -> str:
    """ "<model>: heat map" -> "Heat map — <short model>"; the kind first so rows line up."""
    model, sep, kind = layer_name.rpartition(": ")
    if not sep:
        return layer_name
    return f"{kind.capitalize()} — {short_model_name(model)}"


class ElidedLabel(QLabel):
    """A one-line label cut with "…" to its width; the full text stays in ``full_text``."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.full_text = text
        # Ignored: the label takes the width it is given instead of widening the dock.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        elided = self.fontMetrics().elidedText(
            self.full_text, Qt.TextElideMode.ElideRight, max(10, self.width())
        )
        if elided != self.text():
            self.setText(elided)


class _HeatControls(QWidget):
    def __init__(self, layers: LayerList, layer: Layer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers, self.name = layers, layer.name
        self.threshold = QSlider(Qt.Orientation.Horizontal, self)
        self.threshold.setRange(0, 100)
        self.threshold.setValue(round(layer.threshold * 100))
        self.threshold.setToolTip("Heat-map threshold: values below it are not drawn")
        self.threshold.setMinimumWidth(60)
        self.value = QLabel(f"{layer.threshold:.2f}", self)
        self.bar = QLabel(self)
        self.bar.setPixmap(colour_bar(layer.colour_map, layer.threshold))
        self.bar.setToolTip("Colour scale: 0 (left) to 1 (right)")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("0", self))
        row.addWidget(self.bar)
        row.addWidget(QLabel("1", self))
        row.addWidget(self.threshold, 1)
        row.addWidget(self.value)
        self.threshold.valueChanged.connect(self._changed)

    def _changed(self, value: int) -> None:
        t = value / 100.0
        self.value.setText(f"{t:.2f}")
        layer = self.layers.update(self.name, threshold=t)
        self.bar.setPixmap(colour_bar(layer.colour_map, t))


class ResultDisplayControls(QWidget):
    """One row per result layer: 'Outline' for masks, threshold + colour scale for heat maps."""

    def __init__(self, layers: LayerList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers = layers
        # Title above its controls: two models' rows need the model name, which is too long
        # to sit beside a slider in the narrow dock.
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.column.setSpacing(2)
        self.rows: dict[str, QWidget] = {}
        self.titles: dict[str, ElidedLabel] = {}

    def set_layers(self, layers: list[Layer]) -> None:
        while self.column.count():
            item = self.column.takeAt(0)
            old = item.widget()
            if old is not None:
                old.hide()  # deleteLater waits for the event loop; do not draw it meanwhile
                old.deleteLater()
        self.rows.clear()
        self.titles.clear()
        for layer in layers:
            if layer.kind == "labels":
                box = QCheckBox("Outline only", self)
                box.setChecked(layer.outline)
                box.toggled.connect(lambda on, n=layer.name: self.layers.update(n, outline=on))
                widget: QWidget = box
            elif layer.kind == "heatmap":
                widget = _HeatControls(self.layers, layer, self)
            else:
                continue
            # With two models shown, "Heat map" alone is ambiguous: name the model, elided so
            # a long name cannot widen the dock and squeeze the image views.
            label = ElidedLabel(row_title(layer.name), self)
            label.setToolTip(layer.name)
            self.titles[layer.name] = label
            self.column.addWidget(label)
            self.column.addWidget(widget)
            self.rows[layer.name] = widget
        self.setVisible(bool(self.rows))
