"""The axes a 3D network sees, against RadLens's frame: axcodes, and the grid the engine hands
a network that sees other axes (numpy-free, torch-free: the preprocessing and the card use it)."""

from __future__ import annotations

from typing import Any

#: RadLens feeds a 3D network (C, z, y, x) in the LPS-aligned frame: axis 0 runs to S, axis 1
#: to P, axis 2 to L ("SPL" in MONAI's axcodes). A network trained elsewhere may expect another
#: order (a MONAI bundle with Orientationd("RAS") sees (C, x, y, z) running to R, A, S).
MODEL_AXES = "SPL"
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def check_axes(codes: Any) -> str:
    """``codes`` as three upper-case axcodes naming each of R/L, A/P, S/I once; ValueError."""
    text = str(codes).upper() if isinstance(codes, str) else ""
    lines = [{c, _OPPOSITE[c]} for c in text if c in _OPPOSITE]
    if len(text) != 3 or len(lines) != 3 or any(a == b for a in lines for b in lines if a is not b):
        raise ValueError(f"must be three axcodes naming R/L, A/P and S/I once each, got {codes!r}")
    return text


def frame_axes(codes: str) -> str:
    """The axes of the grid RadLens hands a network that sees ``codes``: RadLens's order of
    lines (S/I, A/P, L/R) with the network's own direction along each ("SAR" for "RAS").

    Flips change where a sliding window's tiles fall (MONAI's start at each axis's first
    voxel, the last one ends flush), so the grid runs the network's way and only the order of
    axes is left to the adapter; RadLens's own models get "SPL"."""
    out = []
    for own in MODEL_AXES:
        out += [c for c in check_axes(codes) if c in (own, _OPPOSITE[own])]
    return "".join(out)


def frame_flips(codes: str) -> tuple[bool, ...]:
    """Per RadLens model axis: does ``frame_axes(codes)`` run opposite to ``MODEL_AXES``?"""
    return tuple(a != b for a, b in zip(frame_axes(codes), MODEL_AXES, strict=True))


def axes_mapping(codes: str, frame: str = MODEL_AXES) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """(perm, flip): the network's axis k is axis perm[k] of the grid whose axes are
    ``frame``, flipped when flip[k] (its direction is the opposite of the grid's)."""
    perm, flip = [], []
    for c in check_axes(codes):
        for k, own in enumerate(check_axes(frame)):
            if c in (own, _OPPOSITE[own]):
                perm.append(k)
                flip.append(c != own)
    return tuple(perm), tuple(flip)
