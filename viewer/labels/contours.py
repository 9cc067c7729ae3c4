"""Label masks <-> planar contours, numpy only: a mask's outline traced along pixel edges
(so the even-odd fill of its contours gives back exactly the same pixels), and contours in
patient millimetres filled onto a series' slices (pixel centres inside, even-odd rule)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from viewer.labels.labelmap import polygon_mask


def trace(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed outlines (each an (n, 2) array of (row, col) corners, at half-integers) of a
    2D boolean mask, holes included; collinear corners dropped."""
    m = np.pad(np.asarray(mask2d, dtype=bool), 1)
    nxt: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def add(starts: np.ndarray, dr0: int, dc0: int, dr1: int, dc1: int) -> None:
        for r, c in starts.tolist():
            nxt.setdefault((r + dr0, c + dc0), []).append((r + dr1, c + dc1))

    inside = m[1:-1, 1:-1]
    # each pixel's edges against the outside, clockwise (row down, column right): interior
    # edges never appear, so every corner has as many edges in as out
    add(np.argwhere(inside & ~m[:-2, 1:-1]) + 1, 0, 0, 0, 1)  # top: left -> right
    add(np.argwhere(inside & ~m[1:-1, 2:]) + 1, 0, 1, 1, 1)  # right: top -> bottom
    add(np.argwhere(inside & ~m[2:, 1:-1]) + 1, 1, 1, 1, 0)  # bottom: right -> left
    add(np.argwhere(inside & ~m[1:-1, :-2]) + 1, 1, 0, 0, 0)  # left: bottom -> top
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        here = start
        while True:
            ends = nxt[here]
            there = ends.pop()
            if not ends:
                del nxt[here]
            if there == start:
                break
            loop.append(there)
            here = there
        pts = np.asarray(loop, dtype=float) - 1.5  # corner (i, j) of the padded grid
        loops.append(_drop_collinear(pts))
    return loops


def _drop_collinear(pts: np.ndarray) -> np.ndarray:
    prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
    cross = (pts - prev)[:, 0] * (nxt - pts)[:, 1] - (pts - prev)[:, 1] * (nxt - pts)[:, 0]
    keep = cross != 0
    return pts[keep] if keep.sum() >= 3 else pts


def fill(shape_yx: Sequence[int], contours_yx: Sequence[np.ndarray]) -> np.ndarray:
    """The even-odd fill of several contours of one slice (holes and islands by parity)."""
    out = np.zeros(tuple(int(s) for s in shape_yx), dtype=bool)
    for c in contours_yx:
        if len(c) >= 3:
            out ^= polygon_mask(shape_yx, [tuple(p) for p in np.asarray(c, float)])
    return out
