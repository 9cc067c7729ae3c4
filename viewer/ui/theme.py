"""The dark theme: Fusion style, a dark palette, and the shipped QSS; plus icon lookup."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication


def _resources() -> Path:
    # radlens_core.paths is Qt- and torch-free; it knows the repo and installed layouts.
    from radlens_core.paths import resources_dir

    return resources_dir()


def icon(name: str) -> QIcon:
    """A shipped icon (resources/icons/<name>.svg); an empty icon if it is missing."""
    path = _resources() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#15191e",
        QPalette.ColorRole.WindowText: "#d8dde6",
        QPalette.ColorRole.Base: "#11151a",
        QPalette.ColorRole.AlternateBase: "#161b21",
        QPalette.ColorRole.Text: "#d8dde6",
        QPalette.ColorRole.Button: "#252c35",
        QPalette.ColorRole.ButtonText: "#d8dde6",
        QPalette.ColorRole.Highlight: "#2f4a66",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#1f252d",
        QPalette.ColorRole.ToolTipText: "#d8dde6",
        QPalette.ColorRole.PlaceholderText: "#6b7583",
    }
    for role, colour in colours.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5a626d"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#5a626d"))
    app.setPalette(pal)
    qss = _resources() / "theme" / "dark.qss"
    if qss.is_file():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))
