"""Help > Shortcuts: the keyboard and mouse bindings, from the same table that binds them."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

#: Mouse bindings (not QActions, so listed here by hand).
MOUSE_BINDINGS: tuple[tuple[str, str], ...] = (
    ("Wheel", "Next / previous slice"),
    ("Ctrl + wheel", "Zoom at the pointer"),
    ("Right-drag", "Window (left/right = width) and level (up/down = centre)"),
    ("Middle-drag", "Pan"),
    ("Left-click / drag", "Move the crosshair (or the chosen left-button mode)"),
    (
        "Ctrl + left-drag",
        "Turn the crosshair: the other planes tilt (oblique MPR; Ctrl+Shift+X resets)",
    ),
    ("Double-click a series", "Open it"),
    ("Drop a folder on the window", "Open it"),
)

#: Keys handled by the focused slice view.
SLICE_KEYS: tuple[tuple[str, str], ...] = (
    ("Up / Right", "Next slice"),
    ("Down / Left", "Previous slice"),
    ("Page Up / Page Down", "Ten percent of the stack forward / back"),
    ("Home / End", "First / last slice"),
)


class ShortcutsDialog(QDialog):
    def __init__(self, actions: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        """``actions``: (shortcut text, description) of every QAction with a shortcut."""
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse shortcuts")
        self.resize(560, 560)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Shortcut", "Action"])
        self.tree.setRootIsDecorated(True)
        for title, rows in (
            ("Slice view", list(SLICE_KEYS)),
            ("Mouse", list(MOUSE_BINDINGS)),
            ("Commands", sorted(actions, key=lambda r: r[1])),
        ):
            group = QTreeWidgetItem([title, ""])
            group.addChildren([QTreeWidgetItem([k, d]) for k, d in rows])
            self.tree.addTopLevelItem(group)
            group.setExpanded(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)

    def shortcut_texts(self) -> list[str]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            out += [group.child(j).text(0) for j in range(group.childCount())]
        return out
