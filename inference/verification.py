"""Which model packages may run: each card's files checked against their SHA-256, remembered.

A ``PackageVerifier`` hashes a package's weights once and answers from memory until a file's
size or modification time changes (a rescan of the Models panel re-hashes only what changed
on disk). Qt-free; hashing big weights takes seconds, so callers run it off the UI thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from inference.card import ModelCard
from inference.weights import WeightsError, verify_files

#: (package folder, ((file name, size, mtime ns, expected SHA-256), ...))
FilesKey = tuple[str, tuple[tuple[str, int, int, str], ...]]


@dataclass(frozen=True)
class Verification:
    """A package's verdict: ``problem`` is "" when every listed file matches its hash."""

    card: ModelCard
    problem: str = ""

    @property
    def verified(self) -> bool:
        return not self.problem


def files_key(card: ModelCard) -> FilesKey | None:
    """What identifies the card's files on disk now; None when one is missing (unstat-able)."""
    try:
        stats = []
        for name, sha in sorted(card.files.items()):
            st = (Path(card.path) / name).stat()
            stats.append((name, st.st_size, st.st_mtime_ns, sha))
    except OSError:
        return None  # a missing file: let verify_files say which
    return (str(card.path), tuple(stats))


class PackageVerifier:
    """Verifies cards' files, remembering each verdict while the files stay unchanged."""

    def __init__(self) -> None:
        self._known: dict[FilesKey, str] = {}
        self._lock = threading.Lock()
        self.hashed = 0  # how many packages were actually hashed (the rest came from memory)

    def verify(self, card: ModelCard) -> Verification:
        key = files_key(card)
        with self._lock:
            if key is not None and key in self._known:
                return Verification(card, self._known[key])
        try:
            verify_files(card)
            problem = ""
        except (WeightsError, OSError) as exc:
            problem = str(exc)
        with self._lock:
            self.hashed += 1
            if key is not None:
                self._known[key] = problem
        return Verification(card, problem)

    def verify_all(self, cards: list[ModelCard]) -> list[Verification]:
        return [self.verify(card) for card in cards]
