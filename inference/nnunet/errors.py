"""The one error type of the nnU-Net path: a sentence naming the file (and field) refused."""

from __future__ import annotations

from radlens_core.errors import UserError


class NnunetError(UserError, ValueError):
    """An nnU-Net folder, package or run that RadLens refuses; ``str()`` is the sentence."""
