"""The memory limit on what one input may ask for: computed from its header, checked before
anything is allocated, refused with a sentence naming the file, its declared size and the limit.

The limit is a fixed share of physical memory (``DEFAULT_SHARE``), or the number of bytes in
the environment variable ``RADLENS_MAX_ALLOC_BYTES`` (plain bytes, or with a unit: "2GiB",
"512M"), or what ``set_max_alloc_bytes`` set last (``None`` goes back to the default).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from radlens_core.errors import UserError

__all__ = [
    "DEFAULT_SHARE",
    "ENV_VAR",
    "AllocationTooLarge",
    "check_allocation",
    "human_bytes",
    "max_alloc_bytes",
    "parse_bytes",
    "physical_memory_bytes",
    "refusal",
    "set_max_alloc_bytes",
]

#: Share of physical memory one input may take when nothing else is set.
DEFAULT_SHARE = 0.5
ENV_VAR = "RADLENS_MAX_ALLOC_BYTES"
#: Assumed when the system does not say how much memory it has.
FALLBACK_PHYSICAL = 8 * 2**30

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 2**10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 2**20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 2**30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 2**40,
}
_override: int | None = None


class AllocationTooLarge(ValueError, UserError):
    """An input whose header asks for more memory than the limit; nothing was allocated."""

    def __init__(self, message: str, path: Path | None, declared: int, limit: int) -> None:
        super().__init__(message)
        self.path = path
        self.declared = declared
        self.limit = limit


def physical_memory_bytes() -> int:
    """Bytes of physical memory of this machine (``FALLBACK_PHYSICAL`` when unknown)."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_PHYSICAL
    return int(pages * page) if pages > 0 and page > 0 else FALLBACK_PHYSICAL


def parse_bytes(text: str) -> int:
    """``"2GiB"``, ``"512M"``, ``"1e9"`` or ``"123"`` as a positive number of bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if m is None or m.group(2) not in _UNITS:
        raise ValueError(f"{ENV_VAR}={text!r} is not a size (write e.g. 8GiB or 8589934592)")
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise ValueError(f"{ENV_VAR}={text!r} must be more than zero")
    return value


def set_max_alloc_bytes(limit: int | None) -> None:
    """Set the limit for this process (``None``: back to the environment or the default)."""
    global _override
    if limit is not None and limit <= 0:
        raise ValueError(f"the allocation limit must be more than zero, got {limit}")
    _override = limit


def max_alloc_bytes() -> int:
    """The most bytes one input may ask for: set here, else the environment, else the share."""
    if _override is not None:
        return _override
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        try:
            return parse_bytes(text)
        except ValueError:
            pass  # a typo in the variable must not make every file unreadable: use the default
    return int(physical_memory_bytes() * DEFAULT_SHARE)


def human_bytes(n: float) -> str:
    """``23488102400`` -> ``"21.9 GiB"``; three significant digits, binary units."""
    n = float(n)
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            break
    return f"{n:.3g} {unit}" if n < 1000 else f"{n:.0f} {unit}"


def refusal(declared: int, what: str, needed: int | None = None) -> str | None:
    """The sentence refusing an input that declares ``declared`` bytes (``what`` says how,
    e.g. "700 frames of 4096×4096"), or None when it fits. ``needed`` is the peak while
    loading when it is more than the result itself (a decode buffer, a conversion)."""
    limit = max_alloc_bytes()
    peak = max(declared, needed or 0)
    if peak <= limit:
        return None
    size = human_bytes(declared)
    if peak > declared:
        size += f", {human_bytes(peak)} while loading"
    return (
        f"declares {what} ({size}), more than the {human_bytes(limit)} one image may use "
        f"on this computer; not loaded ({ENV_VAR} sets the limit)"
    )


def check_allocation(
    path: Path | str | None, declared: int, what: str, needed: int | None = None
) -> None:
    """Raise AllocationTooLarge ("<file>: declares ...") when the input does not fit."""
    reason = refusal(declared, what, needed)
    if reason is not None:
        where = Path(path) if path is not None else None
        text = f"{where}: {reason}" if where is not None else reason
        raise AllocationTooLarge(text, where, declared, max_alloc_bytes())
