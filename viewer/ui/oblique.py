"""Oblique MPR: the three linked planes as frames in the patient (LPS) that the user rotates
about the crosshair, and the slices resampled along a rotated frame. Qt-free.

Each plane keeps a rotation applied to its orthogonal frame (screen-right, screen-down and
slice normal, from ``viewer.ui.planes.Plane``). Rotating in one view turns the *other* two
planes about that view's line of sight, as 3D Slicer and RadiAnt do: the view itself keeps its
image and only its crosshair lines tilt, while the other views resample oblique slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from radlens_core.grid import Grid
from viewer.study.volume import orientation_letters
from viewer.ui.planes import PLANES, Plane
from viewer.ui.slab import Slab

#: the largest oblique image edge in pixels (keeps each resampling to a few tens of ms)
MAX_EDGE_PX = 1024
#: what an oblique slice shows outside the volume: below any window's low level, so black
#: whatever the window (a float32 that stays finite through pyqtgraph's level scaling)
OUTSIDE = -1.0e30
#: the most parallel slices an oblique slab resamples (a thicker slab steps further apart)
MAX_OBLIQUE_SLAB = 16


def rotation_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation by ``angle`` radians about unit-normalised ``axis`` (right-handed)."""
    k = np.asarray(axis, dtype=float)
    k = k / np.linalg.norm(k)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * (kx @ kx)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cross product of two 3-vectors (np.cross costs ~50 us; this runs per redraw)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


@dataclass(frozen=True)
class Frame:
    """A plane's screen-right, screen-down and slice-normal unit vectors in LPS."""

    right: np.ndarray
    down: np.ndarray
    normal: np.ndarray

    @classmethod
    def of(cls, plane: Plane, rotation: np.ndarray | None = None) -> Frame:
        r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
        return cls(
            r @ np.asarray(plane.right), r @ np.asarray(plane.down), r @ np.asarray(plane.normal)
        )

    @cached_property
    def sight(self) -> np.ndarray:
        """The direction the viewer looks into the screen (right x down)."""
        return _cross(self.right, self.down)

    def edge_letters(self) -> dict[str, str]:
        return {
            "top": orientation_letters(-self.down),
            "bottom": orientation_letters(self.down),
            "left": orientation_letters(-self.right),
            "right": orientation_letters(self.right),
        }

    def line_angle(self, other_normal: np.ndarray) -> float | None:
        """Screen angle (degrees; x right, y down) of the line where a plane with
        ``other_normal`` cuts this one, None when the planes are parallel."""
        d = _cross(self.sight, np.asarray(other_normal, dtype=float))
        x, y = float(d @ self.right), float(d @ self.down)
        if np.hypot(x, y) < 1e-9:
            return None
        return float(np.degrees(np.arctan2(y, x)))


class ObliqueFrames:
    """The rotation of each linked plane; identity everywhere is the orthogonal MPR."""

    def __init__(self) -> None:
        self.rotations: dict[str, np.ndarray] = {p: np.eye(3) for p in PLANES}
        #: whether each plane is turned, kept with the rotations (asked on every redraw)
        self._oblique = dict.fromkeys(PLANES, False)
        self._frames: dict[tuple[str, int], Frame] = {}

    def reset(self) -> None:
        self.rotations = {p: np.eye(3) for p in PLANES}
        self._oblique = dict.fromkeys(PLANES, False)
        self._frames.clear()

    def is_oblique(self, plane: str) -> bool:
        return self._oblique[plane]

    @property
    def any_oblique(self) -> bool:
        return any(self._oblique.values())

    def frame(self, plane: Plane) -> Frame:
        key = (plane.name, id(plane))
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = Frame.of(plane, self.rotations[plane.name])
        return frame

    def rotate(self, about: Plane, angle: float) -> None:
        """Turn every plane but ``about`` by ``angle`` radians about ``about``'s line of sight
        (positive: clockwise on that view's screen, as the mouse turns)."""
        turn = rotation_matrix(self.frame(about).sight, angle)
        for name in PLANES:
            if name != about.name:
                self.rotations[name] = turn @ self.rotations[name]
                self._oblique[name] = not np.allclose(self.rotations[name], np.eye(3), atol=1e-9)
        self._frames.clear()


@dataclass(frozen=True)
class ObliqueSlice:
    """Where an oblique plane's pixels lie: scene (x, y) mm from the image's top-left corner,
    and depth ``t`` mm along the normal, both measured from the volume's centre ``centre``."""

    frame: Frame
    grid: Grid
    centre: np.ndarray
    x0: float
    y0: float
    t0: float
    t1: float
    pixel_mm: float
    rows: int
    cols: int

    @classmethod
    def build(cls, grid: Grid, frame: Frame, max_edge_px: int = MAX_EDGE_PX) -> ObliqueSlice:
        """The plane's image is a square as wide as the volume's diagonal, centred on the
        volume's centre: it holds the whole cut at any angle, and its scene stays put while
        the plane turns (no jump of zoom or pan during a Ctrl+drag)."""
        nz, ny, nx = grid.shape
        corners = np.array(
            [
                [z, y, x]
                for z in (-0.5, nz - 0.5)
                for y in (-0.5, ny - 0.5)
                for x in (-0.5, nx - 0.5)
            ]
        )
        lps = grid.index_to_patient(corners)
        centre = grid.index_to_patient(np.array([(nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2]))
        t = (lps - centre) @ frame.normal
        half = float(np.max(np.linalg.norm(lps - centre, axis=1)))
        pixel = max(float(min(grid.spacing)), 2 * half / max_edge_px)
        edge = max(1, int(np.ceil(2 * half / pixel)))
        edge += 1 - edge % 2  # odd: a pixel centre sits on the volume's centre
        start = -edge * pixel / 2
        return cls(
            frame, grid, centre, start, start, float(t.min()), float(t.max()), pixel, edge, edge
        )

    # ---- mapping -------------------------------------------------------------------------
    @property
    def width_mm(self) -> float:
        return self.cols * self.pixel_mm

    @property
    def height_mm(self) -> float:
        return self.rows * self.pixel_mm

    def patient_of(self, x: float, y: float, t: float) -> np.ndarray:
        """LPS mm of scene point (x, y) at depth ``t``."""
        f = self.frame
        return self.centre + (self.x0 + x) * f.right + (self.y0 + y) * f.down + t * f.normal

    def scene_of(self, lps: np.ndarray) -> tuple[float, float, float]:
        """(x, y, t) of an LPS point: scene mm and depth along the normal."""
        rel = np.asarray(lps, dtype=float) - self.centre
        f = self.frame
        return float(rel @ f.right - self.x0), float(rel @ f.down - self.y0), float(rel @ f.normal)

    def depth_of(self, lps: np.ndarray) -> float:
        return float((np.asarray(lps, dtype=float) - self.centre) @ self.frame.normal)

    # ---- resampling ----------------------------------------------------------------------
    def _index_coords(
        self, t: float, window: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """(3, rows, cols) continuous (z, y, x) voxel indices of the pixel centres at ``t``,
        of the whole image or of ``window`` (row0, row1, col0, col1)."""
        r0, r1, c0, c1 = window if window is not None else (0, self.rows, 0, self.cols)
        g = self.grid
        origin_idx = g.patient_to_index(self.patient_of(0.0, 0.0, t))
        step_r = g.patient_to_index(self.patient_of(0.0, self.pixel_mm, t)) - origin_idx
        step_c = g.patient_to_index(self.patient_of(self.pixel_mm, 0.0, t)) - origin_idx
        rows = (np.arange(r0, r1) + 0.5)[:, None]
        cols = (np.arange(c0, c1) + 0.5)[None, :]
        return np.stack(
            [origin_idx[k] + rows * step_r[k] + cols * step_c[k] for k in range(3)], axis=0
        )

    def footprint(self, t0: float, t1: float) -> tuple[int, int, int, int] | None:
        """(row0, row1, col0, col1) pixels where the volume meets the planes at depths
        t0..t1 (the rest of the image is background and need not be resampled), or None."""
        nz, ny, nx = self.grid.shape
        lo_hi = [(-0.5, n - 0.5) for n in (nz, ny, nx)]
        corners = np.array([[z, y, x] for z in lo_hi[0] for y in lo_hi[1] for x in lo_hi[2]])
        lps = self.grid.index_to_patient(corners)
        depth = (lps - self.centre) @ self.frame.normal
        points = [lps[i] for i in range(8) if t0 <= depth[i] <= t1]
        for i in range(8):
            for j in range(i + 1, 8):
                if np.count_nonzero(corners[i] != corners[j]) != 1:
                    continue  # not an edge of the box
                for t in (t0, t1):
                    da, db = depth[i] - t, depth[j] - t
                    if da * db <= 0 and da != db:
                        points.append(lps[i] + (da / (da - db)) * (lps[j] - lps[i]))
        if not points:
            return None
        rel = np.asarray(points) - self.centre
        x = (rel @ self.frame.right - self.x0) / self.pixel_mm
        y = (rel @ self.frame.down - self.y0) / self.pixel_mm
        r0, r1 = int(np.floor(y.min())) - 1, int(np.ceil(y.max())) + 1
        c0, c1 = int(np.floor(x.min())) - 1, int(np.ceil(x.max())) + 1
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, self.rows), min(c1, self.cols)
        return (r0, r1, c0, c1) if r1 > r0 and c1 > c0 else None

    def sample(
        self, array: np.ndarray, t: float, order: int = 1, background: float = 0.0
    ) -> np.ndarray:
        """The (rows, cols) image of ``array`` (z, y, x) on this plane at depth ``t``; outside
        the volume the image takes ``background`` (the view passes ``OUTSIDE``, black in any
        window)."""
        return self._sample(array, t, (0.0,), "mip", order, background)

    @staticmethod
    def _sample_at(
        array: np.ndarray, coords: np.ndarray, order: int, background: float
    ) -> np.ndarray:
        if array.ndim != 3:
            raise ValueError("oblique slices are resampled from scalar volumes only")
        return ndimage.map_coordinates(
            array,
            coords,
            order=order,
            mode="constant",
            cval=background,
            output=np.float32 if order > 0 else array.dtype,
        )

    def slab_offsets(self, slab: Slab) -> np.ndarray:
        """Depths (mm, about the slab's centre) of the parallel slices a slab reduces: one
        finest voxel spacing apart, at most ``MAX_OBLIQUE_SLAB`` of them (each is a full
        resampling)."""
        step = max(self.slice_step(), slab.thickness_mm / MAX_OBLIQUE_SLAB)
        n = slab.count(step)
        return (np.arange(n) - (n - 1) / 2.0) * step

    def sample_slab(
        self, array: np.ndarray, t: float, slab: Slab, order: int = 1, background: float = 0.0
    ) -> np.ndarray:
        """The slab ``slab`` around depth ``t``: parallel oblique slices (``slab_offsets``)
        reduced by the slab's mode."""
        if not slab.active:
            return self.sample(array, t, order, background)
        return self._sample(array, t, tuple(self.slab_offsets(slab)), slab.mode, order, background)

    def _sample(
        self,
        array: np.ndarray,
        t: float,
        offsets: tuple[float, ...],
        mode: str,
        order: int,
        background: float,
    ) -> np.ndarray:
        """Resample the planes at ``t + offsets`` where they meet the volume, reduce them by
        ``mode``, and place the result in a background image."""
        dtype = np.float32 if order > 0 else array.dtype
        full = np.full((self.rows, self.cols), background, dtype=dtype)
        window = self.footprint(t + min(offsets), t + max(offsets))
        if window is None:
            return full
        coords = self._index_coords(t, window)
        # Moving along the normal shifts every pixel by the same step in index space.
        shift = self.grid.patient_to_index(self.frame.normal) - self.grid.patient_to_index(
            np.zeros(3)
        )
        out: np.ndarray | None = None
        for offset in offsets:
            moved = coords + (offset * shift)[:, None, None] if offset else coords
            image = self._sample_at(array, moved, order, background)
            if out is None:
                out = image.astype(np.float64) if mode == "mean" else image
            elif mode == "mip":
                np.maximum(out, image, out=out)
            elif mode == "minip":
                np.minimum(out, image, out=out)
            else:
                out += image
        assert out is not None
        if mode == "mean":
            out = out / len(offsets)
        r0, r1, c0, c1 = window
        full[r0:r1, c0:c1] = out
        return full

    def slice_step(self) -> float:
        """Millimetres one wheel step moves along the normal (the finest voxel spacing)."""
        return float(min(self.grid.spacing))
