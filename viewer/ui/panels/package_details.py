"""The Models panel's detail view of one package: everything the package says (card, licence)
as plain text; below it, as rich text, only what RadLens found in the folder itself (the
evaluation plots ``radlens eval`` writes and a link to its report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from viewer.ui.panels.model_info import SOURCE_WORDS, PlainTextView, card_text

if TYPE_CHECKING:
    from inference.card import ModelCard
    from viewer.ui.panels.models import ModelEntry

#: what each weights format means for the user
WEIGHT_WORDS = {
    "safetensors": "tensors only, nothing in it runs",
    "torch_state_dict": "a PyTorch state dict read weights-only",
    "onnx": "an ONNX graph run by onnxruntime, checked against its card before it runs",
}
#: evaluation plots shown under a card, and their width in the panel
MAX_PLOTS = 4
PLOT_WIDTH = 300


def entry_text(entry: ModelEntry) -> str:
    """The detail view as plain text: status, where the package came from, format, the card."""
    lines = [f"Status: {entry.status}"]
    if not entry.usable:
        lines.append("Refused: Analyze never offers or runs this package.")
    where = {"shipped": "shipped with RadLens", "user": "user model folder"}.get(
        entry.source, "other folder"
    )
    lines.append(f"Package: {where} — {entry.folder}")
    card = entry.card
    if card is None:
        lines.append("This package cannot be used.")
        return "\n".join([entry.folder.name, *lines])
    lines.append(f"Source format: {card.source} ({SOURCE_WORDS.get(card.source, card.source)})")
    fmt = str(card.network.get("format", ""))
    lines.append(f"Weights: {fmt} ({WEIGHT_WORDS.get(fmt, 'unknown format')})")
    lines += geometry_lines(card)
    origin = card.training.get("imported_from") or card.training.get("origin")
    if origin:
        lines.append(f"Imported from: {origin}")
    text = card_text(card) + "\n\n" + "\n".join(lines)
    if entry.licence:
        text += "\n\nLicence (from the package folder):\n" + entry.licence
    else:
        text += "\n\nLicence: the package folder has no LICENSE file."
    return text


def geometry_lines(card: ModelCard) -> list[str]:
    """How the package's network sees an image, when that is not RadLens's own way."""
    out = []
    axes = card.network.get("axes")
    if axes and axes != "SPL":
        out.append(
            f"Axes: the network sees its images in {axes} axes (as its own tools fed it);"
            " RadLens turns each image and every result back"
        )
    if card.preprocessing.get("resample") == "monai_spacingd":
        out.append(
            "Resampling: as MONAI's Spacingd (exact target spacing, first voxel kept), and"
            " back as its Invertd"
        )
    return out


class PackageDetails(QWidget):
    """The selected package: its words as plain text; the folder's evaluation plots and
    report link (files RadLens found, not text from the card) below, as rich text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = PlainTextView(self)
        self.evaluation = QTextBrowser(self)
        # file:// links (the evaluation report) open in the desktop's browser, never in here.
        self.evaluation.setOpenExternalLinks(True)
        self.evaluation.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text, 2)
        layout.addWidget(self.evaluation, 1)

    def show_entry(self, entry: ModelEntry | None) -> None:
        self.text.setPlainText(entry_text(entry) if entry is not None else "")
        extra = _evaluation_html(entry.folder) if entry is not None and entry.card else ""
        self.evaluation.setHtml(extra)
        self.evaluation.setVisible(bool(extra))

    def toPlainText(self) -> str:  # noqa: N802 (reads like the QTextBrowser it replaced)
        extra = self.evaluation.toPlainText() if self.evaluation.isVisibleTo(self) else ""
        return self.text.toPlainText() + ("\n" + extra if extra else "")

    def toHtml(self) -> str:  # noqa: N802
        return self.evaluation.toHtml()


def _evaluation_html(folder: Path) -> str:
    """The package's evaluation plots (``radlens eval`` writes them) and a link to its report."""
    parts = []
    report = folder / "report.html"
    if report.is_file():
        parts.append(
            f'<p><a style="color:#4fc3f7" href="{report.as_uri()}">Open the evaluation report</a></p>'
        )
    for png in sorted(folder.glob("*.png"))[:MAX_PLOTS]:
        parts.append(f'<p><img src="{png.as_uri()}" width="{PLOT_WIDTH}"></p>')
    return "".join(parts)
