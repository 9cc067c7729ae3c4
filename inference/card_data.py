"""What a model package's JSON may hold (plain data, never an expression) and the error naming
a bad field: the ground both the card and the MONAI-bundle reader stand on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radlens_core.errors import UserError


class CardError(UserError, ValueError):
    """A model package whose card is missing or wrong; the message names the path and field."""


def refuse_expressions(value: Any, where: str, path: Path) -> Any:
    """``value`` unchanged if it is plain data; CardError naming ``where`` in ``path`` if it,
    or anything inside it, is a ``$``/``@``/``%`` expression or reference (never evaluated)."""
    if isinstance(value, str) and value.startswith(("$", "@", "%")):
        raise CardError(
            f"{path}: field '{where}' is an expression ({value[:60]!r}); bundle expressions are"
            " refused, never evaluated"
        )
    if isinstance(value, dict):
        return {k: refuse_expressions(v, f"{where}.{k}", path) for k, v in value.items()}
    if isinstance(value, list):
        return [refuse_expressions(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
    return value
