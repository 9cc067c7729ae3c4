"""Label browser: the labels of a result's mask (nnU-Net models have up to 117) with search,
show/hide and colour per label, and each label's volume.

Bound to one ``labels`` layer of the window's ``LayerList``: hiding a label or changing its
colour edits that layer (``hidden_labels``, ``colours``), so every view redraws it the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from radlens_core.results import LabelClass
from viewer.ui.layers import Layer, LayerList, hex_colour

_INDEX_ROLE = Qt.ItemDataRole.UserRole + 1


def _swatch(rgb: tuple[int, int, int]) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


def volume_text(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if value == 0:
        return "not found"
    return f"{value:,.1f} {unit}" if value >= 0.1 else f"{value:.3f} {unit}"


class LabelBrowser(QWidget):
    """Search, show/hide, colour and volume per label of one mask layer."""

    label_colour_changed = Signal(int, object)  # index, (r, g, b)

    def __init__(self, layers: LayerList, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers = layers
        self.layer_name: str | None = None
        self.rows: dict[int, QTreeWidgetItem] = {}
        self.title = QLabel("Labels", self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search labels…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.filter)
        self.show_all = QPushButton("Show all", self)
        self.hide_all = QPushButton("Hide all", self)
        self.show_all.setToolTip("Show every label listed (the search narrows the list)")
        self.hide_all.setToolTip("Hide every label listed (the search narrows the list)")
        self.show_all.clicked.connect(lambda: self._set_listed(True))
        self.hide_all.clicked.connect(lambda: self._set_listed(False))
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Label", "Volume"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)  # 117 rows scroll smoothly
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setToolTip("Tick to show a label; double-click to change its colour")
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.itemDoubleClicked.connect(lambda item, _col: self.pick_colour(item))
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search, 1)
        top.addWidget(self.show_all)
        top.addWidget(self.hide_all)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        self.hide()

    # ---- contents -----------------------------------------------------------------------
    def set_result(
        self,
        layer: Layer | None,
        labels: Sequence[LabelClass] = (),
        volumes: Mapping[int, float] | None = None,
        unit: str = "mL",
        title: str = "",
    ) -> None:
        """List ``labels`` of the mask ``layer`` (None: nothing to browse) with their volumes."""
        self.tree.blockSignals(True)
        self.tree.clear()
        self.rows.clear()
        self.layer_name = layer.name if layer is not None else None
        if layer is None or not labels:
            self.tree.blockSignals(False)
            self.hide()
            return
        volumes = volumes or {}
        found = sum(1 for lab in labels if volumes.get(lab.index, 1.0) > 0)
        self.title.setText(f"{title or layer.name} — {len(labels)} labels, {found} found")
        for lab in sorted(labels, key=lambda x: x.index):
            rgb = layer.colours.get(lab.index) or hex_colour(lab.color)
            item = QTreeWidgetItem([lab.name, volume_text(volumes.get(lab.index), unit)])
            item.setData(0, _INDEX_ROLE, lab.index)
            item.setIcon(0, _swatch(rgb))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            shown = lab.index not in layer.hidden_labels
            item.setCheckState(0, Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setToolTip(0, f"{lab.index}: {lab.name}")
            if volumes.get(lab.index) == 0:
                item.setForeground(1, QBrush(QColor("#888888")))
            self.tree.addTopLevelItem(item)
            self.rows[lab.index] = item
        self.tree.blockSignals(False)
        self.filter(self.search.text())
        self.show()

    def _layer(self) -> Layer | None:
        if self.layer_name is None or self.layer_name not in self.layers.names():
            return None
        return self.layers.get(self.layer_name)

    # ---- search -------------------------------------------------------------------------
    def filter(self, text: str) -> None:
        """Show only the rows whose name contains ``text`` (case-insensitive)."""
        needle = text.strip().lower()
        for item in self.rows.values():
            item.setHidden(bool(needle) and needle not in item.text(0).lower())

    def listed(self) -> list[str]:
        """Names of the rows the search leaves on the list, in order."""
        return [item.text(0) for item in self.rows.values() if not item.isHidden()]

    # ---- show / hide --------------------------------------------------------------------
    def set_label_visible(self, index: int, visible: bool) -> None:
        item = self.rows[index]
        item.setCheckState(0, Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked)

    def _set_listed(self, visible: bool) -> None:
        layer = self._layer()
        if layer is None:
            return
        listed = {i for i, item in self.rows.items() if not item.isHidden()}
        hidden = set(layer.hidden_labels)
        hidden = hidden - listed if visible else hidden | listed
        self.tree.blockSignals(True)
        for i in listed:
            state = Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked
            self.rows[i].setCheckState(0, state)
        self.tree.blockSignals(False)
        self.layers.update(layer.name, hidden_labels=frozenset(hidden))

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        layer = self._layer()
        if layer is None or column != 0:
            return
        index = int(item.data(0, _INDEX_ROLE))
        shown = item.checkState(0) == Qt.CheckState.Checked
        hidden = set(layer.hidden_labels)
        (hidden.discard if shown else hidden.add)(index)
        if frozenset(hidden) != layer.hidden_labels:
            self.layers.update(layer.name, hidden_labels=frozenset(hidden))

    def hidden(self) -> set[int]:
        layer = self._layer()
        return set(layer.hidden_labels) if layer is not None else set()

    # ---- colour -------------------------------------------------------------------------
    def set_label_colour(self, index: int, rgb: tuple[int, int, int]) -> None:
        layer = self._layer()
        if layer is None:
            return
        colours = dict(layer.colours)
        colours[index] = tuple(int(c) for c in rgb)  # type: ignore[assignment]
        self.layers.update(layer.name, colours=colours)
        self.rows[index].setIcon(0, _swatch(colours[index]))
        self.label_colour_changed.emit(index, colours[index])

    def pick_colour(self, item: QTreeWidgetItem) -> None:
        """Ask for a new colour for the label of ``item`` (the desktop's colour dialog)."""
        layer = self._layer()
        if layer is None:
            return
        index = int(item.data(0, _INDEX_ROLE))
        current = layer.colours.get(index, (255, 255, 255))
        colour = QColorDialog.getColor(QColor(*current), self, f"Colour of {item.text(0)}")
        if colour.isValid():
            self.set_label_colour(index, (colour.red(), colour.green(), colour.blue()))
