"""DICOM tags panel: the header of the image under the cursor, filterable by text."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget


def tag_rows(tags: Iterable[tuple[str, str, str, str]]) -> list[tuple[str, str, str]]:
    """(tag, name, value) rows from ``viewer.study.tags.dicom_tags``'s (tag, keyword, VR,
    value) rows."""
    return [(tag, keyword, value) for tag, keyword, _vr, value in tags]


class TagsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter tags…")
        self.filter.setClearButtonEnabled(True)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Tag", "Name", "Value"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self.filter.textChanged.connect(self._apply_filter)
        self.path: Path | None = None

    def show_file(self, path: Path | None) -> None:
        """Show the header of ``path`` (a DICOM file), or a one-line reason it has none."""
        if path == self.path:
            return
        self.path = path
        self.tree.clear()
        if path is None:
            self.tree.addTopLevelItem(QTreeWidgetItem(["", "", "No DICOM file for this image"]))
            return
        try:
            from viewer.study.tags import dicom_tags

            rows = tag_rows(dicom_tags(path))
        except (ImportError, OSError, ValueError) as exc:
            rows = [("", "error", f"{Path(path).name}: {exc}")]
        except Exception as exc:  # noqa: BLE001 - a broken header must not take the viewer down
            rows = [("", type(exc).__name__, f"{Path(path).name}: {exc}")]
        self.tree.addTopLevelItems([QTreeWidgetItem(list(r)) for r in rows])
        self.tree.resizeColumnToContents(0)
        # Keep the value column in sight: names are long, values are what people look for.
        self.tree.setColumnWidth(1, min(self.tree.sizeHintForColumn(1), 150))
        self._apply_filter(self.filter.text())

    def _apply_filter(self, text: str) -> None:
        needle = text.lower().strip()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            hay = " ".join(item.text(c) for c in range(3)).lower()
            item.setHidden(bool(needle) and needle not in hay)
