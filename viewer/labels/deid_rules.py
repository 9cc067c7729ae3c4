"""What the de-identifier does to each attribute: PS3.15 Table E.1-1 resolved for RadLens's options.

RadLens applies the Basic Application Level Confidentiality Profile with two options:
Retain Longitudinal Temporal Information with Modified Dates (the table's "C" for dates and
times: dates move back by a per-patient number of whole days, so times of day are unchanged)
and Retain Safe Private (the private attributes of ``deid_profile.SAFE_PRIVATE``).

The table's combined actions are resolved to the most private one that keeps the objects
RadLens reads and writes valid:
- ``X/Z``, ``X/D``, ``X/Z/D``: removed (X), unless ``required`` names the attribute;
- ``Z/D``: zero length (Z); Patient ID gets the pseudonym (a consistent dummy, D);
- ``X/Z/U*``: the sequence stays, every UID inside is remapped (U) and its items are
  de-identified like the top level.
Attributes outside the table are kept (K), except: person names (PN) become zero length,
UIDs outside the DICOM root are remapped, dates are shifted like the table's dates, and
private attributes are removed unless safe.
"""

from __future__ import annotations

from typing import Any

from viewer.labels.deid_profile import PROFILE_TABLE, SAFE_PRIVATE

#: The option codes (CID 7050) written into DeidentificationMethodCodeSequence.
METHOD_CODES: tuple[tuple[str, str], ...] = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113111", "Retain Safe Private Option"),
)

#: Final actions: X remove, Z zero length, D dummy value, U remap UIDs, C shift dates,
#: K keep, S keep the sequence and de-identify its items (the "U*" branch).
FINAL_ACTIONS = ("X", "Z", "D", "U", "C", "K", "S")


#: What the dates option cleans: dates shift by whole days, times of day stay. Its other rows
#: (binary timestamps, the time zone) keep their basic action.
TEMPORAL_VRS = ("DA", "DT", "TM")


def resolve(basic: str, dates_option: str, required: str | None = None, vr: str = "DA") -> str:
    """The one action RadLens takes for a table row (see the module docstring)."""
    if dates_option == "C" and vr in TEMPORAL_VRS:
        return "C"
    if basic in ("X", "Z", "D", "U", "K", "C"):
        return basic
    if basic == "X/Z/U*":
        return "S"
    choices = basic.split("/")
    if required is not None and required in choices:
        return required
    return choices[0]  # X for X/Z, X/D, X/Z/D; Z for Z/D


def _parse_tag(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None  # repeating groups and the private row are matched by rule, not by tag


#: tag -> (basic action, dates option action, name), the rows with a fixed tag.
TABLE: dict[int, tuple[str, str, str]] = {
    tag: (basic, option, name)
    for text, basic, option, name in PROFILE_TABLE
    if (tag := _parse_tag(text)) is not None
}


def repeating_group_action(tag: int) -> str | None:
    """Curve data (50xx,xxxx) and overlay data/comments (60xx,3000 / 60xx,4000): removed."""
    group, element = tag >> 16, tag & 0xFFFF
    if group & 0xFF00 == 0x5000 and group & 1 == 0:
        return "X"
    if group & 0xFF00 == 0x6000 and group & 1 == 0 and element in (0x3000, 0x4000):
        return "X"
    return None


SAFE_PRIVATE_KEYS = frozenset((creator, group, low) for creator, group, low, _ in SAFE_PRIVATE)


def is_safe_private(creator: str, tag: int) -> bool:
    return (creator.strip(), tag >> 16, tag & 0xFF) in SAFE_PRIVATE_KEYS


#: Dummy values (action D) by VR: recognisably not a person, an institution or a date.
_TEXT_DUMMY = "ANONYMIZED"
DUMMY: dict[str, Any] = {
    "PN": "ANONYMOUS",
    "LO": _TEXT_DUMMY,
    "SH": _TEXT_DUMMY,
    "LT": _TEXT_DUMMY,
    "ST": _TEXT_DUMMY,
    "UT": _TEXT_DUMMY,
    "UC": _TEXT_DUMMY,
    "CS": _TEXT_DUMMY,
    "AE": _TEXT_DUMMY,
    "UR": "urn:radlens:anonymized",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "US": 0,
    "UL": 0,
    "SS": 0,
    "SL": 0,
    "SV": 0,
    "UV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
}


def dummy(vr: str) -> Any:
    """A non-empty value of this VR that identifies nobody (OB, OW, UN...: two zero bytes)."""
    return DUMMY.get(vr, b"\x00\x00")
