"""Segment Editor panel: the promptable model's prompts (``prompt_section``),
click-to-segment and grow from seeds settings, and the one-shot operations on the current
label (islands, margin, hollow, smoothing, logical operators, fill holes). It only reads
settings and calls ``SegmentEditor`` or the tools; no computing here."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.labels.model import LabelError
from viewer.ui.panels.prompt_section import PromptSection
from viewer.ui.tools.segment import Operation
from viewer.ui.tools.segment_editor import BACKGROUND_NAME, SegmentEditor

ISLAND_CHOICES = (
    ("Keep the largest", "keep_largest"),
    ("Remove smaller than", "remove_small"),
    ("Split into labels", "split"),
    ("Keep the one clicked", "keep_selected"),
    ("Remove the one clicked", "remove_selected"),
)
SMOOTH_CHOICES = (
    ("Median", "median"),
    ("Opening", "opening"),
    ("Closing", "closing"),
    ("Gaussian", "gaussian"),
)
LOGICAL_CHOICES = (
    ("Union with", "union"),
    ("Subtract", "subtract"),
    ("Intersect with", "intersect"),
    ("Invert within the body", "invert"),
)
HOLLOW_CHOICES = (
    ("Inside the surface", "inside"),
    ("Outside", "outside"),
    ("Centred on it", "medial"),
)
FILL_CHOICES = (
    ("In 3D", None),
    ("Per axial slice", 0),
    ("Per coronal slice", 1),
    ("Per sagittal slice", 2),
)


def _combo(parent: QWidget, name: str, choices) -> QComboBox:
    box = QComboBox(parent)
    box.setObjectName(name)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)
    for text, data in choices:
        box.addItem(text, data)
    return box


def _spin(
    parent: QWidget, name: str, lo: float, hi: float, value: float, suffix: str, step: float = 0.5
) -> QDoubleSpinBox:
    spin = QDoubleSpinBox(parent)
    spin.setObjectName(name)
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setMaximumWidth(100)
    return spin


def _button(parent: QWidget, name: str, text: str, slot: Callable[[], None]) -> QPushButton:
    button = QPushButton(text, parent)
    button.setObjectName(name)
    button.clicked.connect(lambda *_: slot())
    return button


class SegmentEditorPanel(QWidget):
    """The Segment Editor dock's contents."""

    def __init__(
        self,
        editor: SegmentEditor,
        set_tool: Callable[[str | None], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("segment_editor_panel")
        self.editor, self.set_tool = editor, set_tool
        ctrl = editor.controller
        layout = QVBoxLayout(self)
        self.target = QLabel(self)
        self.target.setWordWrap(True)
        self.target.setObjectName("segment_target")
        layout.addWidget(self.target)
        self.prompt = PromptSection(editor, set_tool, self)
        layout.addWidget(self.prompt)

        # Click to segment
        box = QGroupBox("Click to segment", self)
        form = QFormLayout(box)
        self.tolerance = _spin(box, "seg_tolerance", 0.5, 10.0, 2.5, " σ")
        self.tolerance.setToolTip(
            "How far from the clicked voxel's neighbourhood an intensity "
            "may be, in multiples of its spread"
        )
        self.in_3d = QCheckBox("In 3D (else on the slice shown)", box)
        self.in_3d.setToolTip(
            "Click to segment and the island tool work in 3D, or on the slice shown"
        )
        self.in_3d.setObjectName("seg_3d")
        form.addRow("Tolerance", self.tolerance)
        form.addRow(self.in_3d)
        form.addRow(
            _button(
                box,
                "seg_click",
                "Click tool (K)",
                lambda: self.set_tool("click_segment"),
            )
        )
        self.tolerance.valueChanged.connect(self._settings)
        self.in_3d.toggled.connect(self._settings)
        layout.addWidget(box)

        # Grow from seeds
        box = QGroupBox("Grow from seeds", self)
        col = QVBoxLayout(box)
        col.addWidget(
            QLabel(
                "Paint strokes of the structure and of its surroundings with the "
                "brush (two labels or more); the preview follows each stroke.",
                box,
                wordWrap=True,
            )
        )
        row = QHBoxLayout()
        self.seeds_start = _button(box, "seeds_start", "Start", self._start_seeds)
        self.seeds_accept = _button(box, "seeds_accept", "Accept", editor.accept_seeds)
        self.seeds_cancel = _button(box, "seeds_cancel", "Cancel", editor.cancel_seeds)
        for b in (self.seeds_start, self.seeds_accept, self.seeds_cancel):
            row.addWidget(b)
        col.addLayout(row)
        col.addWidget(
            _button(
                box, "seeds_background", f"Add a '{BACKGROUND_NAME}' label", self._add_background
            )
        )
        layout.addWidget(box)

        # Operations on the current label
        box = QGroupBox("Operations on the current label (one undo step each)", self)
        form = QFormLayout(box)
        # Name above its controls: the row keeps the column's whole width (no side scroll).
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        self.island_mode = _combo(box, "island_mode", ISLAND_CHOICES)
        self.island_min = _spin(box, "island_min", 0.0, 1e6, 100.0, " mm³", 10.0)
        form.addRow(
            "Islands",
            self._row(
                self.island_mode,
                self.island_min,
                _button(box, "islands_apply", "Apply", self._islands),
            ),
        )
        self.margin_mm = _spin(box, "margin_mm", -50.0, 50.0, 3.0, " mm")
        self.margin_mm.setToolTip("Positive grows, negative shrinks (physical mm in 3D)")
        form.addRow(
            "Margin", self._row(self.margin_mm, _button(box, "margin_apply", "Apply", self._margin))
        )
        self.hollow_mode = _combo(box, "hollow_mode", HOLLOW_CHOICES)
        self.hollow_mm = _spin(box, "hollow_mm", 0.5, 50.0, 3.0, " mm")
        form.addRow(
            "Hollow",
            self._row(
                self.hollow_mode,
                self.hollow_mm,
                _button(box, "hollow_apply", "Apply", self._hollow),
            ),
        )
        self.smooth_method = _combo(box, "smooth_method", SMOOTH_CHOICES)
        self.smooth_mm = _spin(box, "smooth_mm", 0.5, 50.0, 3.0, " mm")
        form.addRow(
            "Smoothing",
            self._row(
                self.smooth_method,
                self.smooth_mm,
                _button(box, "smooth_apply", "Apply", self._smooth),
            ),
        )
        self.logical_op = _combo(box, "logical_op", LOGICAL_CHOICES)
        self.logical_other = QComboBox(box)
        self.logical_other.setObjectName("logical_other")
        self.logical_other.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.logical_other.setMinimumContentsLength(8)
        form.addRow(
            "Logical",
            self._row(
                self.logical_op,
                self.logical_other,
                _button(box, "logical_apply", "Apply", self._logical),
            ),
        )
        self.fill_axis = _combo(box, "fill_axis", FILL_CHOICES)
        form.addRow(
            "Fill holes", self._row(self.fill_axis, _button(box, "fill_apply", "Apply", self._fill))
        )
        layout.addWidget(box)
        layout.addStretch(1)

        ctrl.document_opened.connect(self.refresh)
        ctrl.document_changed.connect(self.refresh)
        editor.seeds_changed.connect(self.refresh)
        self.refresh()

    def _row(self, *widgets: QWidget) -> QWidget:
        holder = QWidget(self)
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        for w in widgets:
            row.addWidget(w)
        return holder

    # ---- state ------------------------------------------------------------------------------
    def refresh(self) -> None:
        ctrl = self.editor.controller
        doc, ctx = ctrl.document, ctrl.ctx
        self.setEnabled(doc is not None)
        if doc is None or ctx is None:
            self.target.setText("Open a series to segment it.")
            return
        try:
            name = doc.label_set.get(ctx.label).name
        except LabelError:
            name = "?"
        self.target.setText(f"Current label: {ctx.label} {name} (choose it in the tool bar)")
        current = self.logical_other.currentData()
        self.logical_other.clear()
        for c in doc.label_set:
            if c.index != ctx.label:
                self.logical_other.addItem(f"{c.index} {c.name}", c.index)
        i = self.logical_other.findData(current)
        if i >= 0:
            self.logical_other.setCurrentIndex(i)
        on = self.editor.seeds_on
        self.seeds_start.setEnabled(not on)
        self.seeds_accept.setEnabled(on and self.editor.preview is not None)
        self.seeds_cancel.setEnabled(on)

    def _settings(self) -> None:
        ctx = self.editor.controller.ctx
        if ctx is not None:
            ctx.tolerance = float(self.tolerance.value())
            ctx.segment_3d = self.in_3d.isChecked()

    # ---- actions ----------------------------------------------------------------------------
    def _start_seeds(self) -> None:
        self.editor.start_seeds()
        if self.editor.seeds_on:
            self.set_tool("brush")

    def _add_background(self) -> None:
        doc = self.editor.controller.document
        if doc is None:
            return
        existing = [c for c in doc.label_set if c.name.lower() == BACKGROUND_NAME]
        if existing:
            index = existing[0].index
        else:
            from viewer.labels.document import LabelSetEdit

            after = doc.label_set.add(BACKGROUND_NAME, "#9e9e9e")
            doc.apply(LabelSetEdit(doc.label_set, after, "add background label"))
            index = max(c.index for c in after)
        self.editor.controller.set_label(index)
        self.editor.controller.document_changed.emit()  # the tool bar shows it as current

    def _islands(self) -> None:
        mode = self.island_mode.currentData()
        if mode in ("keep_selected", "remove_selected"):
            ctx = self.editor.controller.ctx
            if ctx is not None:
                ctx.island_mode = mode
            self.set_tool("island")
            self.editor.message_posted.emit("Click the island to keep or remove.")
        elif mode == "split":
            self.editor.split_islands(self.island_min.value())
        else:
            self.editor.apply(Operation("islands", mode, min_mm3=self.island_min.value()))

    def _margin(self) -> None:
        self.editor.apply(Operation("margin", mm=self.margin_mm.value()))

    def _hollow(self) -> None:
        self.editor.apply(
            Operation("hollow", self.hollow_mode.currentData(), mm=self.hollow_mm.value())
        )

    def _smooth(self) -> None:
        self.editor.apply(
            Operation("smooth", self.smooth_method.currentData(), mm=self.smooth_mm.value())
        )

    def _logical(self) -> None:
        other = self.logical_other.currentData()
        self.editor.apply(
            Operation(
                "logical",
                self.logical_op.currentData(),
                other=int(other) if other is not None else 0,
            )
        )

    def _fill(self) -> None:
        self.editor.apply(Operation("fill_holes", axis=self.fill_axis.currentData()))
