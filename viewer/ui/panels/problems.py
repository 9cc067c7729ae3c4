"""Problems dialog: the files a scan skipped, each with the reason, so nothing fails silently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from viewer.study.scan import SkippedFile


def problem_rows(skipped: Sequence[SkippedFile]) -> list[tuple[str, str]]:
    """(file, reason) for each file the scan skipped."""
    return [(str(s.path), s.reason) for s in skipped]


class ProblemsDialog(QDialog):
    def __init__(self, skipped: Sequence[SkippedFile], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Problems")
        self.resize(760, 360)
        rows = problem_rows(skipped)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{len(rows)} file(s) were skipped while reading the folder:"))
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["File", "Reason"])
        self.tree.setRootIsDecorated(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for path, reason in rows:
            item = QTreeWidgetItem([path, reason])
            item.setToolTip(0, path)
            item.setToolTip(1, reason)
            self.tree.addTopLevelItem(item)
        layout.addWidget(self.tree)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
