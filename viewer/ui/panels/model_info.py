"""Model picker and model card dialog: which model Analyze runs, and what that model is.

``ModelMenu`` lists the installed models (the suitable one checked) and an "About" entry
per model; ``ModelCardDialog`` shows a card: intended use, task, inputs, labels, training
data and measured metrics.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenu, QTextBrowser, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from inference.card import ModelCard


def card_title(card: ModelCard) -> str:
    return f"{card.name or card.id or 'model'} {card.version}".strip()


def card_html(card: ModelCard) -> str:
    """The card as an HTML page for the dialog (also used as the picker's tooltip)."""
    e = html.escape
    rows: list[tuple[str, str]] = []
    rows.append(("Task", f"{card.task} ({card.spatial_dims}D)"))
    rows.append(
        (
            "For",
            f"{', '.join(card.modalities) or 'any modality'}, body part {card.body_part or 'ANY'}",
        )
    )
    if card.target_spacing:
        rows.append(("Resampled to", " × ".join(f"{s:g}" for s in card.target_spacing) + " mm"))
    label_bits = [
        f'<span style="color:{e(lab.color)}">&#9632;</span> {e(lab.name)}' for lab in card.labels
    ]
    if label_bits:
        rows.append(("Labels", ", ".join(label_bits)))
    if card.classes:
        rows.append(("Classes", e(", ".join(card.classes))))
    training = card.training
    if training.get("data"):
        rows.append(("Trained on", e(str(training["data"]))))
    if training.get("script"):
        rows.append(("Reproduce with", f"<code>{e(str(training['script']))}</code>"))
    if training.get("parent"):
        rows.append(("Fine-tuned from", e(str(training["parent"]))))
    if card.metrics:
        cells = "".join(
            f"<tr><td>{e(str(k))}</td><td>{e(_fmt(v))}</td></tr>" for k, v in card.metrics.items()
        )
        rows.append(("Measured", f"<table cellspacing=4>{cells}</table>"))
    table = "".join(f"<tr><th align=left valign=top>{k}</th><td>{v}</td></tr>" for k, v in rows)
    use = e(card.intended_use or "No intended use given.")
    return (
        f"<h3>{e(card_title(card))}</h3>"
        f'<p style="color:#ffb74d"><b>Intended use:</b> {use}</p>'
        f"<table cellspacing=6>{table}</table>"
        f"<p><small>id {e(card.id)}</small></p>"
    )


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


class ModelCardDialog(QDialog):
    def __init__(self, card: ModelCard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card — {card_title(card)}")
        self.browser = QTextBrowser(self)
        self.browser.setHtml(card_html(card))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(560, 480)


class ModelMenu(QMenu):
    """Exclusive choice among installed models, plus 'About' entries that open their cards."""

    model_chosen = Signal(object)  # card

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self._group = QActionGroup(self)
        self._group.setExclusive(True)
        self._cards: list[ModelCard] = []
        self._current: ModelCard | None = None

    def set_models(self, cards: list[ModelCard], preferred: ModelCard | None = None) -> None:
        """Show ``cards``; check ``preferred`` (the suitable model) or keep the user's choice."""
        self.clear()
        for action in self._group.actions():
            self._group.removeAction(action)
        self._cards = list(cards)
        ids = [c.id for c in self._cards]
        if preferred is not None:
            self._current = preferred
        elif self._current is None or self._current.id not in ids:
            self._current = self._cards[0] if self._cards else None
        if not self._cards:
            none = self.addAction("No models installed")
            none.setEnabled(False)
            return
        for card in self._cards:
            action = QAction(card_title(card), self, checkable=True)
            action.setToolTip(card.intended_use)
            action.setChecked(self._current is not None and card.id == self._current.id)
            action.triggered.connect(lambda _=False, c=card: self.choose(c))
            self._group.addAction(action)
            self.addAction(action)
        self.addSeparator()
        about = self.addMenu("About model")
        for card in self._cards:
            about.addAction(card_title(card)).triggered.connect(
                lambda _=False, c=card: self.show_card(c)
            )

    def current(self) -> ModelCard | None:
        return self._current

    def choose(self, card: ModelCard) -> None:
        self._current = card
        for action in self._group.actions():
            action.setChecked(action.text() == card_title(card))
        self.model_chosen.emit(card)

    def show_card(self, card: ModelCard) -> ModelCardDialog:
        dialog = ModelCardDialog(card, self.parentWidget())
        dialog.setModal(False)
        dialog.show()
        return dialog
