"""The Segment Editor's "Prompt" section: which promptable model the Prompt tool runs, whether
clicks and scribbles mark the structure or background, what a drag draws (a box or a
scribble), the prompts given so far, Reset prompts. It only sets ``ToolContext`` fields and
calls the tool; the model runs in the tool's job."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QWidget,
)

from viewer.ui.tools.prompt import PromptTool
from viewer.ui.tools.segment_editor import SegmentEditor


class PromptSection(QGroupBox):
    """Prompt settings of the open series (they live on its ToolContext)."""

    def __init__(
        self,
        editor: SegmentEditor,
        set_tool: Callable[[str | None], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Prompt (promptable AI)", parent)
        self.setObjectName("prompt_section")
        self.editor = editor
        form = QFormLayout(self)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.model = QComboBox(self)
        self.model.setObjectName("prompt_model")
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(12)
        self.model.setToolTip("The promptable model the Prompt tool runs")
        form.addRow("Model", self.model)
        # Two exclusive pairs: each pair has its own holder (radio groups are per parent).
        self.positive = self._radio("prompt_positive", "Structure (+)", True)
        self.negative = self._radio("prompt_negative", "Not it (−)", False)
        self.negative.setToolTip("Clicks and scribbles mark background (Shift swaps them)")
        form.addRow("Clicks mark", _row(self, self.positive, self.negative))
        self.box = self._radio("prompt_drag_box", "Box", True)
        self.scribble = self._radio("prompt_drag_scribble", "Scribble", False)
        self.scribble.setToolTip("A drag draws a stroke along the structure (Ctrl swaps)")
        form.addRow("A drag draws", _row(self, self.box, self.scribble))
        self.state = QLabel("", self)
        self.state.setWordWrap(True)
        self.state.setObjectName("prompt_state")
        form.addRow(self.state)
        tool_button = QPushButton("Prompt tool (Shift+P)", self)
        tool_button.setObjectName("prompt_tool")
        tool_button.clicked.connect(lambda *_: set_tool("prompt"))
        self.reset_button = QPushButton("Reset prompts", self)
        self.reset_button.setObjectName("prompt_reset")
        self.reset_button.setToolTip("Forget the prompts (the mask stays): start a new structure")
        self.reset_button.clicked.connect(lambda *_: self.reset())
        form.addRow(_row(self, tool_button, self.reset_button))
        for w in (self.positive, self.negative, self.box, self.scribble):
            w.toggled.connect(lambda *_: self.apply())
        self.model.currentIndexChanged.connect(lambda *_: self.apply())
        editor.controller.document_opened.connect(self.apply)
        editor.operation_finished.connect(lambda *_: self.show_state())
        self.fill_models()
        self.apply()

    def _radio(self, name: str, text: str, checked: bool) -> QRadioButton:
        button = QRadioButton(text, self)
        button.setObjectName(name)
        button.setChecked(checked)
        return button

    def fill_models(self) -> None:
        """The installed promptable models (cards read, not hashed: the run verifies)."""
        from inference.registry import list_models

        current = self.model.currentData()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItem("Automatic (your own before the demo)", "")
        for card in list_models():
            if card.task == "interactive":
                self.model.addItem(f"{card.name} ({card.id})", card.id)
        self.model.setCurrentIndex(max(self.model.findData(current), 0))
        self.model.blockSignals(False)

    def tool(self) -> PromptTool | None:
        tool = (self.editor.controller.tools or {}).get("prompt")
        return tool if isinstance(tool, PromptTool) else None

    def apply(self) -> None:
        """The settings onto the open series' ToolContext (a new series gets a new one)."""
        ctx = self.editor.controller.ctx
        if ctx is not None:
            ctx.prompt_negative = self.negative.isChecked()
            ctx.prompt_drag = "scribble" if self.scribble.isChecked() else "box"
            ctx.prompt_model = str(self.model.currentData() or "")
        self.show_state()

    def show_state(self) -> None:
        tool = self.tool()
        state = tool.state if tool is not None else None
        text = state.describe() if state is not None else "no prompts yet"
        self.state.setText(f"Current label: {text}. Shift swaps + and − for one prompt.")

    def reset(self) -> None:
        tool = self.tool()
        if tool is not None:
            tool.reset()
        self.show_state()
        self.editor.message_posted.emit("Prompts reset: the next prompt starts a new structure.")


def _row(parent: QWidget, *widgets: QWidget) -> QWidget:
    holder = QWidget(parent)
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        row.addWidget(w)
    return holder
