"""Typed errors for study loading: each names the file and says what a user can do about it."""

from __future__ import annotations

from pathlib import Path

from radlens_core.errors import UserError
from radlens_core.progress import Cancelled


class StudyError(UserError):
    """A file or series that cannot be shown; ``str()`` is "<file>: <reason>"."""

    def __init__(self, path: Path | str | None, reason: str) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self.reason: str = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path is not None else self.reason

    def __reduce__(self) -> tuple[type, tuple[Path | None, str]]:
        # Rebuilt from (path, reason): a decoder process sends its errors back pickled.
        return type(self), (self.path, self.reason)


class UnreadableFile(StudyError):
    """The file cannot be parsed (not DICOM, truncated, permission denied...)."""


class NotAnImage(StudyError):
    """A valid object without pixels to show (structured report, RTSTRUCT, PDF...)."""


class SeriesAssemblyError(StudyError):
    """The files of a series do not form one volume (two sizes, duplicate positions...)."""


class BadGeometry(SeriesAssemblyError):
    """A geometry attribute is zero, negative, not finite or not a plane: nothing can be
    measured, so the series is not offered (splitting it would not help)."""


class UnsupportedFormat(StudyError):
    """The pixels are stored in a way this installation cannot decode."""


class TooLarge(StudyError):
    """The header declares more pixels than this computer may hold; nothing was allocated."""


class SeriesNotFound(StudyError):
    """A folder holds no loadable series, not the one asked for, or several to choose from."""


class LoadCancelled(StudyError, Cancelled):
    """The user cancelled a scan or a load; nothing is wrong with the data.

    It is the one ``radlens_core.progress.Cancelled`` too, so code that stops any
    background job catches it by that type."""
