"""SOURCE of `radlens batch`: a folder tree, or a PACS query ``pacs:NODE?Key=Value&...``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radlens_core.errors import UserError
from viewer.batch.items import FolderScan, WorkItem, folder_items
from viewer.batch.pacs_source import PACS_PREFIX, PacsSource, parse


class SourceError(UserError):
    """SOURCE names nothing that can be read."""


@dataclass(frozen=True)
class FolderSource:
    root: Path

    @property
    def identity(self) -> str:
        return str(self.root.resolve())

    def items(self) -> tuple[list[WorkItem], list[str]]:
        return folder_items(self.root)

    def stream(self) -> FolderScan:
        """The items as the scan finds them (the workers start before it ends)."""
        return FolderScan(self.root)


@dataclass
class Listed:
    """Items known all at once (a PACS query's answer), iterated like a ``FolderScan``."""

    items: list[WorkItem]
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[WorkItem]:
        return iter(self.items)

    def close(self) -> None:
        pass


def stream_of(source: FolderSource | PacsSource) -> FolderScan | Listed:
    """SOURCE's items as an iterable with ``notes`` (skipped files) and ``close``."""
    if isinstance(source, FolderSource):
        return source.stream()
    return Listed(*source.items())


def open_source(text: str) -> FolderSource | PacsSource:
    """The batch source SOURCE names; SourceError with a sentence when there is none."""
    if text.startswith(PACS_PREFIX):
        parse(text)  # a malformed query is refused before anything is opened
        return PacsSource(text)
    root = Path(text)
    if not root.exists():
        raise SourceError(f"{root}: no such folder")
    return FolderSource(root)
