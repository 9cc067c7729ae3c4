"""Send files to a node (C-STORE / STOW-RS): only ever called on the user's explicit request
(the Send button, `radlens pacs send`, a batch's --send)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from radlens_core.errors import UserError
from radlens_core.progress import CancelCheck, Progress, ignore_progress, never_cancelled
from viewer.pacs.records import SendReport

if TYPE_CHECKING:
    from viewer.pacs.client import PacsClient

#: Bound on one send (files).
MAX_FILES = 100_000


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def collect_files(paths: list[Path]) -> list[Path]:
    """The DICOM Part-10 files named, folders walked; a named file that is not DICOM is an
    error (a folder's other files are skipped)."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            out.extend(p for p in sorted(path.rglob("*")) if p.is_file() and _is_dicom(p))
        elif path.is_file():
            if not _is_dicom(path):
                raise UserError(f"{path} is not a DICOM file (DICOM-SEG, SR or images) to send.")
            out.append(path)
        else:
            raise UserError(f"{path} does not exist.")
        if len(out) > MAX_FILES:
            raise UserError(f"more than {MAX_FILES} files to send at once.")
    if not out:
        raise UserError("there is no DICOM file to send in " + ", ".join(map(str, paths)) + ".")
    return out


def send(
    client: PacsClient,
    files: list[Path],
    progress: Progress = ignore_progress,
    cancel: CancelCheck = never_cancelled,
) -> SendReport:
    progress(0.0, f"Sending {len(files)} file(s) to {client.where}")
    return client.store(files, progress, cancel)
