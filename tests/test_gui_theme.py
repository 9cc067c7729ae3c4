"""The dark theme draws disabled controls differently from enabled ones."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QPushButton, QWidget

from radlens_core.paths import resources_dir

pytestmark = pytest.mark.gui


def _pixels(widget: QWidget) -> np.ndarray:
    image = widget.grab().toImage()
    ptr = image.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=image.sizeInBytes())
    return arr.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width(), :3]


@pytest.mark.parametrize(
    "make", [lambda: QPushButton("Analyze"), lambda: QLineEdit("12.5"), QComboBox]
)
def test_disabled_control_looks_different_from_enabled(qtbot, make):
    holder = QWidget()
    qtbot.addWidget(holder)
    # Styled on a holder, not the application: other tests keep the default look.
    holder.setStyleSheet((resources_dir() / "theme" / "dark.qss").read_text(encoding="utf-8"))
    enabled, disabled = make(), make()
    if isinstance(enabled, QComboBox):
        enabled.addItem("radlens-ct-chest-seg")
        disabled.addItem("radlens-ct-chest-seg")
    disabled.setEnabled(False)
    row = QHBoxLayout(holder)
    row.addWidget(enabled)
    row.addWidget(disabled)
    holder.show()
    qtbot.waitExposed(holder)
    on, off = _pixels(enabled).astype(float), _pixels(disabled).astype(float)
    assert on.shape == off.shape
    # The brightest pixels are the text: dimmed when disabled.
    assert np.percentile(off.mean(axis=2), 99) < np.percentile(on.mean(axis=2), 99) - 40
