"""Which files a scan reads: the folder walk (links out of the folder skipped) and the
files a DICOMDIR references (entries that leave its folder ignored, never opened)."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom

from viewer.study.errors import StudyError
from viewer.study.headers import HEADER_ERRORS
from viewer.study.opening import not_regular, open_regular
from viewer.study.records import Cancel, SkippedFile

#: Data files that belong to a header file beside them (not reported as junk).
COMPANION_SUFFIXES = (".raw", ".zraw", ".img")


def walk(root: Path, cancel: Cancel | None, skipped: list[SkippedFile]) -> tuple[list[Path], bool]:
    if not root.is_dir():
        why = not_regular(root)
        if why is not None:
            raise StudyError(root, why)
        return [root], False
    files: list[Path] = []

    def unreadable(err: OSError) -> None:
        skipped.append(
            SkippedFile(Path(err.filename or root), f"cannot list this folder ({err.strerror})")
        )

    real_root = root.resolve()
    # os.walk's order and rules (top-down, folders sorted, links to folders not followed)
    # from os.scandir's entries, which know a link without a system call per file.
    stack = [str(root)]
    while stack:
        if cancel is not None and cancel():
            return files, True
        dirpath = stack.pop()
        try:
            with os.scandir(dirpath) as it:
                entries = list(it)
        except OSError as err:
            unreadable(err)
            continue
        subdirs, names = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    subdirs.append(entry.name)
            else:
                names.append((entry.name, entry.is_symlink()))
        for name, is_link in sorted(names):
            f = Path(dirpath) / name
            if is_link and not _resolves_inside(f, real_root):
                # Nothing outside the opened folder is read, also not through a link.
                skipped.append(
                    SkippedFile(f, "a link to a file outside the opened folder: skipped")
                )
                continue
            files.append(f)
        stack.extend(os.path.join(dirpath, d) for d in sorted(subdirs, reverse=True))
    return files, False


def _resolves_inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):
        return False


def _outside(path: Path, parts: list[str], folder: Path) -> str | None:
    """Why a DICOMDIR entry is not followed: it leaves the DICOMDIR's folder (``..``, an
    absolute path, or a link that resolves elsewhere). None for an entry inside it."""
    if any(p in ("..", "") or p.startswith(("/", "\\")) or ":" in p for p in parts):
        return "a DICOMDIR entry that leaves the opened folder: ignored, not opened"
    try:
        real = path.resolve()
        inside = real.is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return "a DICOMDIR entry that cannot be resolved (a link loop?): ignored"
    if not inside:
        return "a DICOMDIR entry that links outside the opened folder: ignored, not opened"
    return None


def _dicomdir_files(
    path: Path, skipped: list[SkippedFile], cancel: Cancel | None = None
) -> list[Path]:
    """Files a DICOMDIR references, in its order: missing ones and ones outside its folder
    are listed as skipped with the reason (and never opened)."""
    try:
        with open_regular(path) as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
    except StudyError as exc:
        skipped.append(SkippedFile(path, exc.reason))
        return []
    except (pydicom.errors.InvalidDicomError, *HEADER_ERRORS) as exc:
        skipped.append(SkippedFile(path, f"unreadable DICOMDIR ({exc})"))
        return []
    out = []
    try:
        records = list(ds.get("DirectoryRecordSequence", []))
    except HEADER_ERRORS as exc:
        skipped.append(SkippedFile(path, f"unreadable DICOMDIR records ({exc})"))
        return []
    for rec in records:
        if cancel is not None and cancel():
            break
        try:
            ref = rec.get("ReferencedFileID")
        except HEADER_ERRORS:
            continue
        if not ref:
            continue
        parts = [str(ref)] if isinstance(ref, str) else [str(p) for p in ref]
        target = path.parent.joinpath(*parts)
        why = _outside(target, parts, path.parent)
        if why is not None:
            skipped.append(SkippedFile(target, f"{why} ({'/'.join(parts)})"))
            continue
        if not target.exists():
            # Media written on Windows may differ in case from the DICOMDIR entry.
            lower = path.parent.joinpath(*[p.lower() for p in parts])
            if lower.exists() and _outside(lower, parts, path.parent) is None:
                target = lower
        if target.exists():
            out.append(target)
        else:
            skipped.append(SkippedFile(target, "listed in the DICOMDIR but missing from the disk"))
    return out


def scan_order(
    files: list[Path], skipped: list[SkippedFile], cancel: Cancel | None = None
) -> list[Path]:
    """Files to read, each once: a DICOMDIR's references first, then the rest of the walk.

    The DICOMDIR itself and the data files beside .mhd/.nhdr headers are not read.
    """
    ordered: list[Path] = []
    for f in files:
        if f.name.upper() == "DICOMDIR":
            ordered.extend(_dicomdir_files(f, skipped, cancel))
    header_names = {f.with_suffix("").name for f in files if f.suffix.lower() in (".mhd", ".nhdr")}
    for f in files:
        if f.name.upper() == "DICOMDIR":
            continue
        if f.suffix.lower() in COMPANION_SUFFIXES and f.with_suffix("").name in header_names:
            continue
        ordered.append(f)
    return list(dict.fromkeys(ordered))
