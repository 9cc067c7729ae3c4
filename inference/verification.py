"""Which model packages may run: each card's files checked against their SHA-256, remembered.

A ``PackageVerifier`` hashes a package's weights once and answers from memory until a file's
size or modification time changes (a rescan of the Models panel re-hashes only what changed
on disk). Qt-free; hashing big weights takes seconds, so callers run it off the UI thread.
The classes live in ``inference.weights`` (beside ``verify_files``) so that the registry can
use them; this module is their public name.
"""

from __future__ import annotations

from inference.weights import FilesKey, PackageVerifier, Verification, files_key

__all__ = ["FilesKey", "PackageVerifier", "Verification", "files_key"]
