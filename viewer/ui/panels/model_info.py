"""Model picker and model card dialog: which model Analyze runs, and what that model is.

``ModelMenu`` lists the models offered for the open series (``viewer.ui.model_offer``):
admitted ones to choose from (the best one checked), the others disabled with the reason in
their tooltip and, apart, under "Run outside intended use", where choosing one asks for a
confirmation first. ``ModelCardDialog`` shows a card as plain text (card text comes from a
package someone else wrote: never rich text, never a live link).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMenu,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from viewer.ui.model_offer import ModelOffer, admitted_offer

if TYPE_CHECKING:
    from inference.card import ModelCard

#: Where a card's format comes from, in words (``ModelCard.source``).
SOURCE_WORDS = {
    "radlens": "RadLens package",
    "monai_bundle": "MONAI bundle",
    "nnunet_v2": "nnU-Net v2 model",
    "onnx": "ONNX model",
}


def card_title(card: ModelCard) -> str:
    return f"{card.name or card.id or 'model'} {card.version}".strip()


def card_text(card: ModelCard) -> str:
    """The card as plain text: intended use, task, inputs, format, labels, training, metrics."""
    rows: list[tuple[str, str]] = [
        ("Task", f"{card.task} ({card.spatial_dims}D)"),
        (
            "For",
            f"{', '.join(card.modalities) or 'any modality'}, body part {card.body_part or 'ANY'}",
        ),
        ("Format", f"{card.source} ({SOURCE_WORDS.get(card.source, card.source)})"),
    ]
    if card.target_spacing:
        rows.append(("Resampled to", " × ".join(f"{s:g}" for s in card.target_spacing) + " mm"))
    if card.labels:
        rows.append(
            (
                f"Labels ({len(card.labels)})",
                ", ".join(f"{lab.index} {lab.name}" for lab in card.labels),
            )
        )
    if card.classes:
        rows.append(("Classes", ", ".join(card.classes)))
    training = card.training
    if training.get("data"):
        rows.append(("Trained on", str(training["data"])))
    if training.get("script"):
        rows.append(("Reproduce with", str(training["script"])))
    if training.get("parent"):
        rows.append(("Fine-tuned from", str(training["parent"])))
    lines = [card_title(card), f"Intended use: {card.intended_use or 'No intended use given.'}", ""]
    lines += [f"{k}: {v}" for k, v in rows]
    if card.metrics:
        lines.append("Measured:")
        lines += [f"    {k}: {_fmt(v)}" for k, v in card.metrics.items()]
    lines += ["", f"id {card.id}"]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def plain_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """A selectable, word-wrapped label that shows ``text`` as plain text, links inert."""
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setOpenExternalLinks(False)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    label.setText(text)
    return label


class PlainTextView(QScrollArea):
    """Scrollable plain text (a card can list 117 labels); ``toPlainText()`` reads it back."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = plain_label("", self)
        self.label.setContentsMargins(6, 6, 6, 6)
        self.setWidget(self.label)
        self.setWidgetResizable(True)

    def setPlainText(self, text: str) -> None:  # noqa: N802 (Qt naming, like QTextEdit)
        self.label.setText(text)

    def toPlainText(self) -> str:  # noqa: N802
        return self.label.text()


class ModelCardDialog(QDialog):
    def __init__(self, card: ModelCard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card — {card_title(card)}")
        self.browser = PlainTextView(self)
        self.browser.setPlainText(card_text(card))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(560, 480)


class ModelMenu(QMenu):
    """Exclusive choice among the admitted models; the others disabled with their reason and,
    apart, offered for an explicit override; 'About' entries that open the cards."""

    model_chosen = Signal(object)  # card
    override_requested = Signal(object)  # card: run outside intended use (asks first)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.setToolTipsVisible(True)  # a disabled model's tooltip says why it does not fit
        self._group = QActionGroup(self)
        self._group.setExclusive(True)
        self._offer = ModelOffer()
        self._current: ModelCard | None = None
        self.override_menu: QMenu | None = None

    @property
    def offer(self) -> ModelOffer:
        return self._offer

    def set_models(self, cards: list[ModelCard], preferred: ModelCard | None = None) -> None:
        """Offer ``cards`` as all fitting (a caller that chose them itself)."""
        self.set_offer(admitted_offer(cards), preferred)

    def set_offer(self, offer: ModelOffer, preferred: ModelCard | None = None) -> None:
        """Show ``offer``; check ``preferred``, else keep the user's choice while it is still
        admitted, else the offer's best. Nothing is checked when no model fits."""
        self.clear()
        for action in self._group.actions():
            self._group.removeAction(action)
        self._offer = offer
        admitted_ids = [c.id for c in offer.admitted()]
        if preferred is not None:
            self._current = preferred
        elif self._current is None or self._current.id not in admitted_ids:
            self._current = offer.best
        if not offer.choices:
            none = self.addAction("No models installed")
            none.setEnabled(False)
            self.override_menu = None
            return
        for card in offer.admitted():
            action = QAction(card_title(card), self, checkable=True)
            action.setToolTip(card.intended_use)
            action.setChecked(self._current is not None and card.id == self._current.id)
            action.triggered.connect(lambda _=False, c=card: self.choose(c))
            self._group.addAction(action)
            self.addAction(action)
        refused = offer.refused()
        if refused and not offer.admitted():
            note = self.addAction("No installed model fits this series")
            note.setEnabled(False)
        for choice in refused:
            action = self.addAction(f"{card_title(choice.card)} — does not fit")
            action.setEnabled(False)
            action.setToolTip("Does not fit this series: " + "; ".join(choice.reasons))
            action.setData(choice.card.id)
        self.addSeparator()
        self.override_menu = None
        if refused:
            self.override_menu = self.addMenu("Run outside intended use…")
            self.override_menu.setToolTipsVisible(True)
            for choice in refused:
                act = self.override_menu.addAction(card_title(choice.card) + "…")
                act.setToolTip("; ".join(choice.reasons))
                act.triggered.connect(
                    lambda _=False, c=choice.card: self.override_requested.emit(c)
                )
        about = self.addMenu("About model")
        for choice in offer.choices:
            about.addAction(card_title(choice.card)).triggered.connect(
                lambda _=False, c=choice.card: self.show_card(c)
            )

    def refused_actions(self) -> list[QAction]:
        """The disabled entries of models that do not fit (their tooltip says why)."""
        return [a for a in self.actions() if a.data() is not None and not a.isEnabled()]

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
