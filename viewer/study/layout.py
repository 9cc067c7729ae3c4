"""Turn the headers of one series into its geometry: slice order, spacing, origin, direction.

Shared by the folder scan (which reports the problems) and the series reader (which
allocates the volume). Slices are ordered by ImagePositionPatient projected on the slice
normal, never by file name or InstanceNumber.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.study.errors import SeriesAssemblyError
from viewer.study.headers import FileHeader, slice_normal

#: Positions closer than this (mm) along the normal are the same slice.
SAME_POSITION_MM = 1e-3
#: Relative spread of slice gaps tolerated before calling the spacing uneven.
UNEVEN_TOLERANCE = 0.01
COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")


@dataclass
class SeriesLayout:
    """Where each z index comes from, and the geometry of the assembled volume."""

    #: (index into headers, frame index) for each z.
    order: list[tuple[int, int]]
    rows: int
    cols: int
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    rgb: bool
    dtype: np.dtype
    #: Rescaled values may exceed the dtype (CT padding): clip instead of wrapping around.
    saturate: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        base = (len(self.order), self.rows, self.cols)
        return (*base, 3) if self.rgb else base


def _rescaled_range(h: FileHeader) -> tuple[float, float]:
    bits = max(1, min(h.bits_stored, h.bits_allocated))
    if h.pixel_representation == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    a, b = lo * h.slope + h.intercept, hi * h.slope + h.intercept
    return min(a, b), max(a, b)


def output_dtype(headers: list[FileHeader]) -> tuple[np.dtype, bool]:
    """(dtype, saturate): int16 when every rescaled value is an exact int16.

    Integer rescales whose declared range is wider use uint16 or int32, except CT: Hounsfield
    units always fit int16 and only padding values (e.g. -32768 - 1024) fall outside, so CT
    stays int16 and such values saturate (``saturate=True``). Fractional rescales give float32.
    """
    exact = all(float(h.slope).is_integer() and float(h.intercept).is_integer() for h in headers)
    if not exact:
        return np.dtype(np.float32), False
    lo = min(_rescaled_range(h)[0] for h in headers)
    hi = max(_rescaled_range(h)[1] for h in headers)
    if lo >= -32768 and hi <= 32767:
        return np.dtype(np.int16), False
    if all(h.modality == "CT" for h in headers):
        return np.dtype(np.int16), True
    if lo >= 0 and hi <= 65535:
        return np.dtype(np.uint16), False
    if lo >= -(2**31) and hi < 2**31:
        return np.dtype(np.int32), False
    return np.dtype(np.float32), False


def _sizes_text(counts: Counter) -> str:
    words = {2: "two", 3: "three", 4: "four"}
    n = len(counts)
    sizes = " and ".join(f"{c}×{r}" for (r, c), _ in counts.most_common())
    return f"{words.get(n, str(n))} slice sizes: {sizes}"


def plan_series(headers: list[FileHeader]) -> SeriesLayout:
    """The layout of one series; raises SeriesAssemblyError saying why it cannot be one volume."""
    if not headers:
        raise SeriesAssemblyError(None, "the series has no image files")
    first = headers[0].path
    sizes = Counter((h.rows, h.cols) for h in headers)
    if len(sizes) > 1:
        raise SeriesAssemblyError(
            first.parent,
            f"this series has slices of {_sizes_text(sizes)}; open the parts separately",
        )
    rgb_flags = {h.photometric in COLOUR_PHOTOMETRICS for h in headers}
    if len(rgb_flags) > 1:
        raise SeriesAssemblyError(first.parent, "this series mixes colour and greyscale images")
    rgb = rgb_flags.pop()
    orientations = [h.orientation for h in headers if h.orientation is not None]
    ref = orientations[0] if orientations else None
    if ref is not None and any(
        np.abs(np.asarray(o) - np.asarray(ref)).max() > 1e-3 for o in orientations
    ):
        raise SeriesAssemblyError(
            first.parent,
            "this series mixes slice orientations (a localizer or reformat among the slices); "
            "open the parts separately",
        )
    warnings: list[str] = []
    spacing_xy = headers[0].pixel_spacing
    if spacing_xy is None:
        warnings.append("no pixel spacing in the file: distances are in pixels, not mm")
        spacing_xy = (1.0, 1.0)
    if ref is not None:
        row, col = np.asarray(ref[:3], float), np.asarray(ref[3:], float)
        row /= np.linalg.norm(row) or 1.0
        col /= np.linalg.norm(col) or 1.0
    else:
        row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    normal = slice_normal(tuple(row) + tuple(col))

    frames = [(i, j, p) for i, h in enumerate(headers) for j, p in enumerate(h.positions)]
    dtype, saturate = (np.dtype(np.uint8), False) if rgb else output_dtype(headers)

    def layout(order, spacing_z, origin, zdir) -> SeriesLayout:
        direction = np.column_stack([row, col, zdir])
        return SeriesLayout(
            order=order,
            rows=headers[0].rows,
            cols=headers[0].cols,
            spacing=(float(spacing_xy[0]), float(spacing_xy[1]), float(spacing_z)),
            origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
            direction=direction,
            rgb=rgb,
            dtype=dtype,
            saturate=saturate,
            warnings=warnings,
        )

    known = [f for f in frames if f[2] is not None]
    if len(frames) == 1:
        only = frames[0][2] if frames[0][2] is not None else (0.0, 0.0, 0.0)
        return layout([(0, 0)], 1.0, only, normal)
    if not known:
        # Cine, NM or secondary captures without geometry: keep the file's own order.
        frames.sort(key=lambda f: (headers[f[0]].instance_number or 0, f[0], f[1]))
        warnings.append(
            "the slices have no ImagePositionPatient: stacked in file order, z distances unknown"
        )
        return layout([(f[0], f[1]) for f in frames], 1.0, (0.0, 0.0, 0.0), normal)
    if len(known) < len(frames):
        hdr, fi, _ = next(f for f in frames if f[2] is None)
        where = f" frame {fi + 1}" if headers[hdr].frames > 1 else ""
        raise SeriesAssemblyError(headers[hdr].path, f"ImagePositionPatient missing{where}")

    pos = np.array([f[2] for f in frames], float)
    dist = pos @ normal
    idx = np.argsort(dist, kind="stable")
    dist, pos = dist[idx], pos[idx]
    frames = [frames[i] for i in idx]
    gaps = np.diff(dist)
    dup = np.flatnonzero(gaps < SAME_POSITION_MM)
    if dup.size:
        same_uid = [
            headers[frames[i][0]].sop_instance_uid == headers[frames[i + 1][0]].sop_instance_uid
            and headers[frames[i][0]].frames == 1
            for i in dup
        ]
        if all(same_uid):
            # The same instance copied twice (e.g. a folder and its backup): keep one.
            keep = np.ones(len(frames), bool)
            keep[dup + 1] = False
            frames = [f for f, k in zip(frames, keep, strict=True) if k]
            dist, pos = dist[keep], pos[keep]
            gaps = np.diff(dist)
            warnings.append(f"{dup.size} duplicate copies of the same slice ignored")
        else:
            a, b = frames[dup[0]], frames[dup[0] + 1]
            raise SeriesAssemblyError(
                headers[a[0]].path.parent,
                f"{dup.size + 1} slices share the same position ({dist[dup[0]]:.2f} mm along the "
                f"normal), e.g. {headers[a[0]].path.name} and {headers[b[0]].path.name}: "
                "the series holds more than one volume (phases or echoes)",
            )
    order = [(f[0], f[1]) for f in frames]
    if len(order) == 1:
        return layout(order, 1.0, pos[0], normal)
    step = float(np.median(gaps))
    lo, hi = float(gaps.min()), float(gaps.max())
    missing = np.round(gaps / step).astype(int) - 1
    if (missing > 0).any():
        n_missing = int(missing[missing > 0].sum())
        at = np.flatnonzero(missing > 0)[0]
        warnings.append(
            f"about {n_missing} slice(s) missing (a gap of {gaps[at]:.2f} mm after slice {at + 1}, "
            f"usual spacing {step:.2f} mm): distances across the gap are not to scale"
        )
    elif hi - lo > max(UNEVEN_TOLERANCE * step, 0.01):
        warnings.append(f"uneven slice spacing ({lo:.3g} to {hi:.3g} mm): using {step:.3g} mm")
    # Gantry tilt: the slice centres step along a line that is not the normal.
    axis = pos[-1] - pos[0]
    axis /= np.linalg.norm(axis)
    cos = float(np.clip(axis @ normal, -1.0, 1.0))
    angle = float(np.degrees(np.arccos(cos)))
    zdir = normal
    spacing_z = step
    if angle > 0.05:
        warnings.append(
            f"gantry tilt of {angle:.1f}°: the volume is sheared; voxel positions follow the "
            "tilt, but reformatted planes are approximate"
        )
        zdir = axis
        spacing_z = step / cos
    return layout(order, spacing_z, pos[0], zdir)


def source_paths(headers: list[FileHeader], layout: SeriesLayout) -> list[Path]:
    """The file of each z index."""
    return [headers[h].path for h, _ in layout.order]


def split_parts(headers: list[FileHeader]) -> list[list[FileHeader]]:
    """Headers grouped by slice size and orientation, largest group first.

    A series that mixes them (a localizer among axial slices, a reformat stored in the same
    series) is one group per stack; a clean series is a single group.
    """
    groups: dict[tuple, list[FileHeader]] = {}
    for h in headers:
        orient = tuple(np.round(h.orientation, 3)) if h.orientation is not None else None
        groups.setdefault((h.rows, h.cols, orient), []).append(h)
    return sorted(groups.values(), key=len, reverse=True)
