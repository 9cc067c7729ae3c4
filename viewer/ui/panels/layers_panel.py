"""Layers panel: each overlay layer with show/hide, opacity and remove, bound to a LayerList."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from viewer.ui.layers import Layer, LayerList


class LayerRow(QWidget):
    def __init__(self, layers: LayerList, layer: Layer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers, self.name = layers, layer.name
        self.visible = QCheckBox(layer.name, self)
        tip = f"{layer.name}\n{layer.kind} layer: show or hide"
        self.visible.setToolTip(f"{tip}\n\n{layer.note}" if layer.note else tip)
        # A long model name is shortened in the middle (its ": heat map" end stays) instead
        # of widening the whole right-hand dock column over the views.
        self.visible.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.visible.setMinimumWidth(90)
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity")
        self.opacity.setMinimumWidth(50)
        self.opacity.setMaximumWidth(110)
        self.remove = QPushButton("✕", self)
        self.remove.setToolTip("Remove this layer")
        self.remove.setFixedWidth(28)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.addWidget(self.visible, 1)
        layout.addWidget(self.opacity)
        layout.addWidget(self.remove)
        self.sync(layer)
        self.visible.toggled.connect(lambda v: self.layers.update(self.name, visible=v))
        self.opacity.valueChanged.connect(lambda v: self.layers.update(self.name, opacity=v / 100))
        self.remove.clicked.connect(lambda: self.layers.remove(self.name))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        room = max(20, self.visible.width() - 26)  # the check box's indicator and gap
        elided = self.visible.fontMetrics().elidedText(
            self.name, Qt.TextElideMode.ElideMiddle, room
        )
        if elided != self.visible.text():
            self.visible.setText(elided)

    def sync(self, layer: Layer) -> None:
        for widget in (self.visible, self.opacity):
            widget.blockSignals(True)
        self.visible.setChecked(layer.visible)
        self.opacity.setValue(round(layer.opacity * 100))
        for widget in (self.visible, self.opacity):
            widget.blockSignals(False)


class LayersPanel(QWidget):
    def __init__(self, layers: LayerList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers = layers
        self.rows: dict[str, LayerRow] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self.empty = QLabel("No overlay layers yet.\nAnalyze results and label maps appear here.")
        self.empty.setWordWrap(True)
        self.empty.setObjectName("muted")
        self._layout.addWidget(self.empty)
        self._layout.addStretch(1)
        layers.subscribe(self._event)
        for layer in layers:
            self._event("added", layer)

    def _event(self, event: str, layer: Layer) -> None:
        if event == "removed":
            row = self.rows.pop(layer.name, None)
            if row is not None:
                row.setParent(None)
                row.deleteLater()
        elif layer.name in self.rows:
            self.rows[layer.name].sync(layer)
        else:
            row = LayerRow(self.layers, layer, self)
            self.rows[layer.name] = row
            # Newest on top, like layer stacks in image editors.
            self._layout.insertWidget(0, row)
        self.empty.setVisible(not self.rows)
