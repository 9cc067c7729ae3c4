"""Start the viewer: QApplication, dark theme, main window on screen, then open what was asked.

Nothing here imports torch or the inference engine before the window is up; once it is up
and idle, ``warm_up_engine`` imports them in the background for the first Analyze.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from viewer.ui.main_window import MainWindow
from viewer.ui.theme import apply_dark_theme


def create_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
        apply_dark_theme(app)
    app.setOrganizationName("RadLens")
    app.setApplicationName("RadLens")
    return app  # type: ignore[return-value]


#: How long after the window is shown the engine's imports start in the background, and
#: how often to look again while a folder is still being scanned or a series loaded.
WARM_UP_DELAY_MS = 1500
WARM_UP_RETRY_MS = 1000


def open_window(
    path: str | Path | None = None, demo: bool = False, warm_up: bool = True
) -> MainWindow:
    """Show a main window now; open ``path`` or the demo once the event loop runs. With
    ``warm_up``, torch and the engine are imported in the background once the window is
    idle (never before it is on screen)."""
    window = MainWindow()
    window.show()
    if demo:
        QTimer.singleShot(0, window.open_demo)
    elif path:
        # Started on a folder: its first series is shown while the rest is still scanned.
        QTimer.singleShot(0, lambda: window.open_path(path, open_first=True))
    if warm_up:
        QTimer.singleShot(WARM_UP_DELAY_MS, window, lambda: _warm_up_when_idle(window))
    return window


def _warm_up_when_idle(window: MainWindow) -> None:
    """Start the engine warm-up once no scan or load is running (their first slices come
    first). The thread runs a little below the UI thread's priority (viewer/engine_warm_up.py
    says how far and why: lower still, it waits for a core while holding the interpreter
    lock and stalls the UI thread; at the same priority it takes the UI's share of the CPU)."""
    if window.tasks:
        QTimer.singleShot(WARM_UP_RETRY_MS, window, lambda: _warm_up_when_idle(window))
        return
    from viewer.ui.analysis import warm_up_engine  # imports nothing heavy itself

    warm_up_engine()


def _install_excepthook(window: MainWindow) -> None:
    """An unexpected error in a slot is printed and shown; the window keeps running."""
    previous = sys.excepthook

    def hook(kind, exc, tb) -> None:  # type: ignore[no-untyped-def]
        previous(kind, exc, tb)
        if isinstance(exc, Exception):
            window.show_error(f"Unexpected error: {exc or kind.__name__}")

    sys.excepthook = hook


def run_viewer(path: str | Path | None = None, demo: bool = False) -> int:
    app = create_app()
    window = open_window(path, demo)
    _install_excepthook(window)
    code = app.exec()
    del window
    return int(code)
