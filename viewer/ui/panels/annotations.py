"""Annotations panel: the label set editor, tool settings, and the list of annotations with
accept / reject / delete for model findings. Every change goes through the Document."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.labels.model import (
    AXIS_PLANES,
    Annotation,
    Box,
    LabelError,
    ModelMask,
    Polygon,
    RoiRect,
    Ruler,
)
from viewer.ui.calibration import Calibration
from viewer.ui.panels.label_import import LabelImporter

ID_ROLE = Qt.ItemDataRole.UserRole


def describe(a: Annotation, cal: Calibration) -> str:
    """Where/how big, in a few words: 'slice 12', 'slices 4–9', '23.4 mm' (in pixels when
    the series states no spacing)."""
    if isinstance(a, Box):
        lo, hi = a.bounds_zyx()
        return f"slice {int(lo[0])}" if not a.is_3d else f"slices {int(lo[0])}–{int(hi[0])}"
    if isinstance(a, Ruler):
        return cal.ruler_text(a.start, a.end)
    if isinstance(a, ModelMask):
        return a.layer
    if isinstance(a, (Polygon, RoiRect)):
        plane = f"{AXIS_PLANES[a.axis]} " if a.axis else ""  # axial stays "slice 12"
        return f"{plane}slice {a.z}"
    pts = a.points()
    return f"slice {int(round(pts[0][0]))}" if pts else ""


def centre_of(a: Annotation) -> np.ndarray | None:
    pts = a.points()
    return np.mean(np.asarray(pts, dtype=float), axis=0) if pts else None


class AnnotationsPanel(QWidget):
    """Dock content; ``controller`` is a viewer.ui.tools.controller.AnnotationController."""

    #: an annotation was activated (double click): the window may jump to it
    annotation_activated = Signal(str)

    def __init__(self, controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctrl = controller
        layout = QVBoxLayout(self)

        classes = QGroupBox("Label classes")
        cl = QVBoxLayout(classes)
        self.class_table = QTableWidget(0, 3)
        self.class_table.setObjectName("label_classes")
        self.class_table.setHorizontalHeaderLabels(["#", "Name", "Colour"])
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setMaximumHeight(150)  # a few classes; the annotation list needs room
        self.class_table.horizontalHeader().setStretchLastSection(True)
        self.class_table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.class_table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.class_table.itemSelectionChanged.connect(self._class_selected)
        self.class_table.itemChanged.connect(self._class_item_changed)
        self.class_table.cellDoubleClicked.connect(self._class_double_clicked)
        cl.addWidget(self.class_table)
        row = QHBoxLayout()
        self.add_class_button = QPushButton("Add…")
        self.add_class_button.clicked.connect(self._ask_new_class)
        self.remove_class_button = QPushButton("Remove")
        self.remove_class_button.clicked.connect(self.remove_current_class)
        #: Import… (DICOM-SEG, RTSTRUCT, masks, annotations) and the line saying how it went
        self.importer = LabelImporter(self)
        self.import_button, self.import_status = self.importer.button, self.importer.status
        self.import_finished = self.importer.import_finished
        row.addWidget(self.add_class_button)
        row.addWidget(self.remove_class_button)
        row.addWidget(self.import_button)
        cl.addLayout(row)
        cl.addWidget(self.import_status)
        layout.addWidget(classes)

        settings = QGroupBox("Tool settings")
        form = QFormLayout(settings)
        self.brush_size = QDoubleSpinBox()
        self.brush_size.setRange(0.5, 100.0)
        self.brush_size.setSuffix(" mm")
        self.brush_size.setToolTip("Brush radius ([ and ] change it while drawing)")
        self.brush_size.valueChanged.connect(lambda v: self._set("brush_radius_mm", float(v)))
        self.brush_3d = QCheckBox("Sphere (3D) brush")
        self.brush_3d.toggled.connect(lambda v: self._set("brush_3d", bool(v)))
        self.box_3d = QCheckBox("3D boxes")
        self.box_3d.toggled.connect(lambda v: self._set("box_3d", bool(v)))
        self.hu_low, self.hu_high = QDoubleSpinBox(), QDoubleSpinBox()
        for spin in (self.hu_low, self.hu_high):
            spin.setRange(-4000.0, 40000.0)
            spin.setDecimals(0)
            spin.valueChanged.connect(self._threshold_changed)
        form.addRow("Brush radius", self.brush_size)
        form.addRow(self.brush_3d)
        form.addRow(self.box_3d)
        form.addRow("Threshold from", self.hu_low)
        form.addRow("to", self.hu_high)
        layout.addWidget(settings)

        self.tree = QTreeWidget()
        self.tree.setObjectName("annotation_list")
        self.tree.setHeaderLabels(["Kind", "Label", "Source", "Status", "Score", "Where"])
        self.tree.setRootIsDecorated(False)
        self.tree.setMinimumHeight(150)
        self.tree.itemSelectionChanged.connect(self._tree_selected)
        self.tree.itemDoubleClicked.connect(self._tree_activated)
        layout.addWidget(self.tree, 1)
        buttons = QHBoxLayout()
        self.accept_button = QPushButton("Accept (A)")
        self.accept_button.clicked.connect(self.accept_selected)
        self.reject_button = QPushButton("Reject (X)")
        self.reject_button.clicked.connect(self.reject_selected)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        self.interpolate_button = QPushButton("Fill between slices")
        self.interpolate_button.setToolTip("Interpolate the current label between drawn slices")
        self.interpolate_button.clicked.connect(lambda *_: controller.interpolate())
        self.relabel_button = QPushButton("Set label")
        self.relabel_button.setToolTip("Give the selected annotation the current label class")
        self.relabel_button.clicked.connect(self.relabel_selected)
        for b in (self.accept_button, self.reject_button, self.relabel_button, self.delete_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        layout.addWidget(self.interpolate_button)

        self._updating = False
        controller.document_opened.connect(self.reload)
        controller.document_changed.connect(self.reload)
        controller.selection_changed.connect(self._controller_selected)
        self.reload()

    def import_file(self, path) -> bool:
        """Import a label file onto the open series (see ``LabelImporter.import_file``)."""
        return self.importer.import_file(path)

    # ---- state ----------------------------------------------------------------------------
    @property
    def doc(self):
        return self.ctrl.document

    def _set(self, attr: str, value: object) -> None:
        if self.ctrl.ctx is not None and not self._updating:
            setattr(self.ctrl.ctx, attr, value)

    def _threshold_changed(self) -> None:
        self._set("threshold", (self.hu_low.value(), self.hu_high.value()))

    def reload(self) -> None:
        """Rebuild both lists from the Document (cheap: a series has tens of annotations)."""
        self._updating = True
        try:
            self._reload_classes()
            self._reload_tree()
            ctx = self.ctrl.ctx
            self.setEnabled(ctx is not None)
            if ctx is not None:
                self.brush_size.setValue(ctx.brush_radius_mm)
                self.brush_3d.setChecked(ctx.brush_3d)
                self.box_3d.setChecked(ctx.box_3d)
                self.hu_low.setValue(ctx.threshold[0])
                self.hu_high.setValue(ctx.threshold[1])
        finally:
            self._updating = False

    def _reload_classes(self) -> None:
        t = self.class_table
        t.setRowCount(0)
        if self.doc is None:
            return
        current = self.ctrl.ctx.label if self.ctrl.ctx else None
        for c in self.doc.label_set:
            r = t.rowCount()
            t.insertRow(r)
            idx = QTableWidgetItem(str(c.index))
            idx.setFlags(idx.flags() & ~Qt.ItemFlag.ItemIsEditable)
            idx.setData(ID_ROLE, c.index)
            name = QTableWidgetItem(c.name)
            swatch = QTableWidgetItem(c.color)
            swatch.setFlags(swatch.flags() & ~Qt.ItemFlag.ItemIsEditable)
            swatch.setBackground(QColor(c.color))
            t.setItem(r, 0, idx)
            t.setItem(r, 1, name)
            t.setItem(r, 2, swatch)
            if c.index == current:
                t.selectRow(r)

    def _reload_tree(self) -> None:
        self.tree.clear()
        if self.doc is None:
            return
        cal = Calibration.of(self.ctrl.state.volume)
        selected = self.ctrl.ctx.selected if self.ctrl.ctx else None
        for a in self.doc.annotations.values():
            label = (
                self.doc.label_set.get(a.label).name if a.label in self.doc.label_set else a.label
            )
            score = "" if a.score is None else f"{a.score:.2f}"
            item = QTreeWidgetItem(
                [a.kind, str(label), a.source, a.status, score, describe(a, cal)]
            )
            item.setData(0, ID_ROLE, a.id)
            if a.status == "proposed":
                for col in range(6):
                    item.setForeground(col, QColor(255, 190, 60))
            self.tree.addTopLevelItem(item)
            if a.id == selected:
                item.setSelected(True)

    # ---- label classes ----------------------------------------------------------------------
    def _class_selected(self) -> None:
        if self._updating:
            return
        rows = self.class_table.selectionModel().selectedRows()
        if rows:
            self.ctrl.set_label(int(self.class_table.item(rows[0].row(), 0).data(ID_ROLE)))

    def _class_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != 1:
            return
        index = int(self.class_table.item(item.row(), 0).data(ID_ROLE))
        self.rename_class(index, item.text())

    def _class_double_clicked(self, row: int, column: int) -> None:
        if column != 2 or self.doc is None:
            return
        index = int(self.class_table.item(row, 0).data(ID_ROLE))
        colour = QColorDialog.getColor(QColor(self.doc.label_set.get(index).color), self)
        if colour.isValid():
            self.recolor_class(index, colour.name())

    def _edit_classes(self, change) -> bool:
        if self.doc is None:
            return False
        try:
            self.doc.set_label_set(change(self.doc.label_set))
        except LabelError as exc:
            self.ctrl.message_posted.emit(str(exc))
            self.reload()  # put the table back as the document has it
            return False
        return True

    def rename_class(self, index: int, name: str) -> bool:
        return self._edit_classes(lambda s: s.rename(index, name.strip()))

    def recolor_class(self, index: int, colour: str) -> bool:
        return self._edit_classes(lambda s: s.recolor(index, colour))

    def add_class(self, name: str, colour: str = "#66bb6a") -> bool:
        return self._edit_classes(lambda s: s.add(name.strip(), colour))

    def remove_current_class(self) -> bool:
        if self.ctrl.ctx is None or self.doc is None:
            return False
        index = self.ctrl.ctx.label
        in_use = any(a.label == index for a in self.doc.annotations.values())
        if in_use or (self.doc.labelmap.array == index).any():
            self.ctrl.message_posted.emit(
                f"label {index} is still used by annotations or the mask; relabel or delete them first"
            )
            return False
        return self._edit_classes(lambda s: s.remove(index))

    def _ask_new_class(self) -> None:
        name, ok = QInputDialog.getText(self, "New label class", "Name:")
        if ok and name.strip():
            self.add_class(name)

    # ---- annotations --------------------------------------------------------------------------
    def selected_id(self) -> str | None:
        items = self.tree.selectedItems()
        return str(items[0].data(0, ID_ROLE)) if items else None

    def select_annotation(self, annotation_id: str | None) -> None:
        self.ctrl.select(annotation_id)
        self._controller_selected(annotation_id)

    def _tree_selected(self) -> None:
        if not self._updating:
            self.ctrl.select(self.selected_id())

    def _controller_selected(self, annotation_id: object) -> None:
        self._updating = True
        try:
            for i in range(self.tree.topLevelItemCount()):
                item = self.tree.topLevelItem(i)
                item.setSelected(item.data(0, ID_ROLE) == annotation_id)
        finally:
            self._updating = False

    def _tree_activated(self, item: QTreeWidgetItem) -> None:
        annotation_id = str(item.data(0, ID_ROLE))
        self.jump_to(annotation_id)
        self.annotation_activated.emit(annotation_id)

    def jump_to(self, annotation_id: str) -> None:
        """Move the cursor (all three views) to the annotation's centre."""
        if self.doc is None:
            return
        centre = centre_of(self.doc.get(annotation_id))
        if centre is not None:
            self.ctrl.state.set_cursor(centre)
        self.ctrl.select(annotation_id)

    def _status(self, status: str) -> None:
        annotation_id = self.selected_id()
        if annotation_id is None or self.doc is None:
            self.ctrl.message_posted.emit("Select an annotation first.")
            return
        self.doc.set_status(annotation_id, status)

    def accept_selected(self) -> None:
        self._status("accepted")

    def reject_selected(self) -> None:
        self._status("rejected")

    def relabel_selected(self) -> None:
        """The selected annotation takes the current label class (one undoable edit)."""
        annotation_id = self.selected_id()
        if annotation_id is None or self.doc is None or self.ctrl.ctx is None:
            self.ctrl.message_posted.emit("Select an annotation first.")
            return
        a = self.doc.get(annotation_id)
        if a.label != self.ctrl.ctx.label:
            self.doc.update(replace(a, label=self.ctrl.ctx.label))

    def delete_selected(self) -> None:
        annotation_id = self.selected_id()
        if annotation_id is not None and self.doc is not None:
            self.doc.remove(annotation_id)
            self.ctrl.select(None)
