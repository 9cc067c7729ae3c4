"""Model picker and model card dialog: which model Analyze runs, and what that model is.

``ModelMenu`` lists the installed models (the suitable one checked) and an "About" entry
per model; ``ModelCardDialog`` shows a card: intended use, task, inputs, labels, training
data and measured metrics. Cards are read by attribute or key, whatever class they are.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenu, QTextBrowser, QVBoxLayout, QWidget


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _plain(value: Any) -> Any:
    """Pydantic models and dataclasses as dicts, so nested card parts print as data."""
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return value


def card_title(card: Any) -> str:
    return f"{_get(card, 'name') or _get(card, 'id', 'model')} {_get(card, 'version', '')}".strip()


def card_html(card: Any) -> str:
    """The card as an HTML page for the dialog (also used as the picker's tooltip)."""
    e = html.escape
    rows: list[tuple[str, str]] = []
    modalities = _get(card, "modalities") or []
    rows.append(("Task", f"{_get(card, 'task', '?')} ({_get(card, 'spatial_dims', '?')}D)"))
    rows.append(
        (
            "For",
            f"{', '.join(map(str, modalities)) or 'any modality'}, "
            f"body part {_get(card, 'body_part', 'ANY')}",
        )
    )
    if _get(card, "target_spacing"):
        rows.append(
            ("Resampled to", " × ".join(f"{s:g}" for s in _get(card, "target_spacing")) + " mm")
        )
    label_bits = []
    for lab in _get(card, "labels") or []:
        colour = _get(lab, "color", "#888888")
        label_bits.append(
            f'<span style="color:{e(str(colour))}">&#9632;</span> {e(str(_get(lab, "name", "")))}'
        )
    if label_bits:
        rows.append(("Labels", ", ".join(label_bits)))
    classes = _get(card, "classes")
    if classes:
        rows.append(("Classes", e(", ".join(map(str, classes)))))
    training = _plain(_get(card, "training")) or {}
    if _get(training, "data"):
        rows.append(("Trained on", e(str(_get(training, "data")))))
    if _get(training, "script"):
        rows.append(("Reproduce with", f"<code>{e(str(_get(training, 'script')))}</code>"))
    if _get(training, "parent"):
        rows.append(("Fine-tuned from", e(str(_get(training, "parent")))))
    metrics = _plain(_get(card, "metrics")) or {}
    if metrics:
        cells = "".join(
            f"<tr><td>{e(str(k))}</td><td>{e(_fmt(v))}</td></tr>" for k, v in dict(metrics).items()
        )
        rows.append(("Measured", f"<table cellspacing=4>{cells}</table>"))
    table = "".join(f"<tr><th align=left valign=top>{k}</th><td>{v}</td></tr>" for k, v in rows)
    use = e(str(_get(card, "intended_use", "") or "No intended use given."))
    return (
        f"<h3>{e(card_title(card))}</h3>"
        f'<p style="color:#ffb74d"><b>Intended use:</b> {use}</p>'
        f"<table cellspacing=6>{table}</table>"
        f"<p><small>id {e(str(_get(card, 'id', '')))}</small></p>"
    )


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


class ModelCardDialog(QDialog):
    def __init__(self, card: Any, parent: QWidget | None = None) -> None:
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
        self._cards: list[Any] = []
        self._current: Any = None

    def set_models(self, cards: list[Any], preferred: Any = None) -> None:
        """Show ``cards``; check ``preferred`` (the suitable model) or keep the user's choice."""
        self.clear()
        for action in self._group.actions():
            self._group.removeAction(action)
        self._cards = list(cards)
        ids = [_get(c, "id") for c in self._cards]
        if preferred is not None:
            self._current = preferred
        elif self._current is None or _get(self._current, "id") not in ids:
            self._current = self._cards[0] if self._cards else None
        if not self._cards:
            none = self.addAction("No models installed")
            none.setEnabled(False)
            return
        for card in self._cards:
            action = QAction(card_title(card), self, checkable=True)
            action.setToolTip(str(_get(card, "intended_use", "")))
            action.setChecked(_get(card, "id") == _get(self._current, "id"))
            action.triggered.connect(lambda _=False, c=card: self.choose(c))
            self._group.addAction(action)
            self.addAction(action)
        self.addSeparator()
        about = self.addMenu("About model")
        for card in self._cards:
            about.addAction(card_title(card)).triggered.connect(
                lambda _=False, c=card: self.show_card(c)
            )

    def current(self) -> Any:
        return self._current

    def choose(self, card: Any) -> None:
        self._current = card
        for action in self._group.actions():
            action.setChecked(action.text() == card_title(card))
        self.model_chosen.emit(card)

    def show_card(self, card: Any) -> ModelCardDialog:
        dialog = ModelCardDialog(card, self.parentWidget())
        dialog.setModal(False)
        dialog.show()
        return dialog
