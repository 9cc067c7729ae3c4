"""The base of every error whose message is a sentence a user can act on."""

from __future__ import annotations


class UserError(Exception):
    """An input, model or setting that RadLens refuses, with a sentence naming the file or
    field and what to do. The UI shows ``str(error)``; anything else is a defect, shown as a
    short apology with the details in the log, never as a traceback."""
