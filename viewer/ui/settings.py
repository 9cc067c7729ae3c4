"""Persistent settings (QSettings, organisation "RadLens"): recent folders and view choices.

When ``RADLENS_DATA_DIR`` is set (tests, portable installs) the settings live in an INI
file there, so nothing leaks into the user's real configuration.

Recent folders name patients: the settings folder is 0700 and the file 0600, set again after
every write (Qt writes a new file each time, with the umask's permissions).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from radlens_core.files import PRIVATE_FILE_MODE
from radlens_core.paths import private_dir

MAX_RECENT = 10


class Settings:
    def __init__(self) -> None:
        override = os.environ.get("RADLENS_DATA_DIR")
        if override:
            private_dir(Path(override))
            self.qs = QSettings(str(Path(override) / "settings.ini"), QSettings.Format.IniFormat)
        else:
            self.qs = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, "RadLens", "RadLens"
            )
        self.path = Path(self.qs.fileName())
        private_dir(self.path.parent)
        self._protect()

    def sync(self) -> None:
        """Write to disk now, then make the file private again."""
        self.qs.sync()
        self._protect()

    def _protect(self) -> None:
        if os.name == "posix" and self.path.is_file():
            if self.path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
                os.chmod(self.path, PRIVATE_FILE_MODE)

    # ---- recent folders ------------------------------------------------------------------
    def recent_folders(self) -> list[str]:
        value = self.qs.value("recent/folders", [])
        if isinstance(value, str):  # QSettings collapses a one-item list to a string
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add_recent(self, path: str | Path) -> list[str]:
        path = str(Path(path).resolve())
        recent = [p for p in self.recent_folders() if p != path]
        recent.insert(0, path)
        recent = recent[:MAX_RECENT]
        self.qs.setValue("recent/folders", recent)
        self.sync()
        return recent

    def clear_recent(self) -> None:
        self.qs.setValue("recent/folders", [])
        self.sync()

    # ---- simple values -------------------------------------------------------------------
    def get(self, key: str, default: object) -> object:
        value = self.qs.value(key, default)
        if isinstance(default, bool):
            return value in (True, "true", "1", 1)
        if isinstance(default, int) and not isinstance(default, bool):
            try:
                return int(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return default
        return value

    def set(self, key: str, value: object) -> None:
        self.qs.setValue(key, value)
        self.sync()  # never left for Qt to write later with the umask's permissions

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.qs.value("window/geometry"), self.qs.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qs.setValue("window/geometry", geometry)
        self.qs.setValue("window/state", state)
        self.sync()
