"""SOURCE of `radlens batch`: a folder tree, or a PACS query ``pacs:NODE?Key=Value&...``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from radlens_core.errors import UserError
from viewer.batch.items import WorkItem, folder_items
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


def open_source(text: str) -> FolderSource | PacsSource:
    """The batch source SOURCE names; SourceError with a sentence when there is none."""
    if text.startswith(PACS_PREFIX):
        parse(text)  # a malformed query is refused before anything is opened
        return PacsSource(text)
    root = Path(text)
    if not root.exists():
        raise SourceError(f"{root}: no such folder")
    return FolderSource(root)
