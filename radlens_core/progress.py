"""The one cancellation exception and the callback types every background job uses."""

from __future__ import annotations

from collections.abc import Callable

#: progress(fraction in [0, 1], sentence a user can read)
Progress = Callable[[float, str], None]
#: cancel() -> True once the user asked to stop
CancelCheck = Callable[[], bool]


class Cancelled(Exception):
    """The user (or the caller's cancel check) stopped the job; no partial result exists."""


def never_cancelled() -> bool:
    return False


def ignore_progress(fraction: float, sentence: str) -> None:
    """A progress callback for callers that do not show progress."""
