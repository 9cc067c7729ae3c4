"""Analyze's two questions to the user, as non-modal message boxes: "no installed model fits"
(each model and why not) and "run outside intended use?" (a confirmation before an override).
Model names and reasons come from package cards: shown as plain text."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from viewer.labels.result_findings import OUTSIDE_INTENDED_USE

RUN_ANYWAY = "Run anyway"


def _non_modal(box: QMessageBox) -> QMessageBox:
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    # No nested event loop: the study stays usable behind the message.
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.show()
    return box


def message_box(parent: QWidget, message: str) -> QMessageBox:
    """A failed or refused Analyze, said in a warning the user closes."""
    box = QMessageBox(
        QMessageBox.Icon.Warning, "Analyze", message, QMessageBox.StandardButton.Ok, parent
    )
    return _non_modal(box)


def none_fits_box(parent: QWidget, text: str) -> QMessageBox:
    """The "no installed model fits this series" message (``ModelOffer.none_fits_text``)."""
    box = QMessageBox(
        QMessageBox.Icon.Information,
        "Analyze — no model fits",
        text,
        QMessageBox.StandardButton.Ok,
        parent,
    )
    return _non_modal(box)


def override_box(
    parent: QWidget, model_name: str, reasons: Sequence[str], run: Callable[[], None]
) -> QMessageBox:
    """Ask before running a model on a series its card does not admit; ``run`` is called
    when the user chooses "Run anyway" (Cancel is the default)."""
    listed = "\n".join(f"• {r}" for r in reasons) or "• (no reason given)"
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Run outside intended use?",
        f"{model_name} was not made for this series:\n{listed}\n\n"
        "Its result may be meaningless. If you run it anyway, the result is marked "
        f"“{OUTSIDE_INTENDED_USE}” in the Findings list, the layers, the banner and the "
        "stored result.",
        QMessageBox.StandardButton.Cancel,
        parent,
    )
    accept = box.addButton(RUN_ANYWAY, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.buttonClicked.connect(lambda button: run() if button is accept else None)
    return _non_modal(box)
