"""Turn the headers of one series into its geometry: slice order, spacing, origin, direction.

Shared by the folder scan (which reports the problems) and the series reader (which
allocates the volume). Slices are ordered by ImagePositionPatient projected on the slice
normal, never by file name or InstanceNumber.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.study.errors import BadGeometry, SeriesAssemblyError
from viewer.study.headers import FileHeader, slice_normal

#: Positions closer than this (mm) along the normal are the same slice.
SAME_POSITION_MM = 1e-3
#: Relative spread of slice gaps tolerated before calling the spacing uneven.
UNEVEN_TOLERANCE = 0.01
#: A gap within this fraction of a whole number of slice spacings is that many slices.
MULTIPLE_TOLERANCE = 0.1
#: Coordinates and spacings beyond this (mm, one kilometre) are not measurements.
MAX_MM = 1e6
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


#: The warning a series without PixelSpacing/ImagerPixelSpacing carries (viewer.study.facts reads it).
NO_PIXEL_SPACING = "no pixel spacing in the file: distances are in pixels, not mm"


def rescaled_range(h: FileHeader) -> tuple[float, float]:
    """The lowest and highest value the modality transform can give (stored range mapped)."""
    if h.modality_lut is not None:
        return float(min(h.modality_lut[1])), float(max(h.modality_lut[1]))
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
    # Slices share their pixel description: each distinct one is mapped once.
    ranges = {
        rescaled_range(h)
        for h in {
            (h.bits_stored, h.bits_allocated, h.pixel_representation, h.slope, h.intercept): h
            for h in headers
            if h.modality_lut is None
        }.values()
    } | {rescaled_range(h) for h in headers if h.modality_lut is not None}
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
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


def _which(h: FileHeader) -> str:
    """ "slice 3 (file IM0003.dcm)": how a problem names the file it is in."""
    if h.instance_number is not None:
        return f"slice {h.instance_number} (file {h.path.name})"
    return f"file {h.path.name}"


def _values(values: tuple[float, ...]) -> str:
    return "\\".join(f"{v:g}" for v in values)


def _bad_measure(values: tuple[float, ...], positive: bool) -> bool:
    return any(not math.isfinite(v) or abs(v) > MAX_MM or (positive and v <= 0) for v in values)


def _orientation_problem(orientation: tuple[float, ...]) -> str | None:
    """What is wrong with an ImageOrientationPatient ("... (no plane: ...)"), or None."""
    o = np.asarray(orientation, float)
    if not np.isfinite(o).all():
        return _values(orientation)
    row, col = o[:3], o[3:]
    if (
        np.linalg.norm(row) < 1e-3
        or np.linalg.norm(col) < 1e-3
        or np.linalg.norm(np.cross(row, col)) < 1e-3 * np.linalg.norm(row) * np.linalg.norm(col)
    ):
        return f"{_values(orientation)} (no plane: a zero or repeated direction)"
    return None


def geometry_problems(headers: list[FileHeader]) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the geometry attributes themselves, each naming the file and
    the attribute: zero, negative or non-finite PixelSpacing, positions or orientation are
    errors (nothing can be measured); an absurd SliceThickness, which the layout does not
    use when there are positions, is a warning."""
    errors: list[str] = []
    warnings: list[str] = []
    # The slices of a series nearly always share one orientation: each distinct one is
    # judged once (a 10,000-file scan spent most of its grouping time in np.cross here).
    judged: dict[tuple[float, ...], str | None] = {}
    for h in headers:
        if h.pixel_spacing is not None and _bad_measure(h.pixel_spacing, positive=True):
            # Stored as (x, y); the file writes row spacing first.
            written = _values(h.pixel_spacing[::-1])
            errors.append(f"{_which(h)}: PixelSpacing is {written}")
        if h.orientation is not None:
            if h.orientation not in judged:
                judged[h.orientation] = _orientation_problem(h.orientation)
            why = judged[h.orientation]
            if why is not None:
                errors.append(f"{_which(h)}: ImageOrientationPatient is {why}")
        for k, p in enumerate(h.positions):
            if p is not None and _bad_measure(p, positive=False):
                frame = f" frame {k + 1}" if h.frames > 1 else ""
                errors.append(f"{_which(h)}{frame}: ImagePositionPatient is {_values(p)}")
                break
        t = h.slice_thickness
        if t is not None and (not math.isfinite(t) or t <= 0 or t > MAX_MM):
            warnings.append(f"{_which(h)}: SliceThickness is {t:g} (ignored)")
    return errors, warnings


def _geometry_error(headers: list[FileHeader], errors: list[str]) -> BadGeometry:
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return BadGeometry(
        headers[0].path.parent,
        f"{errors[0]}{more}: the series has no usable geometry and cannot be measured",
    )


def _step(gaps: np.ndarray) -> tuple[float, np.ndarray] | None:
    """(slice spacing, slices missing in each gap) when every gap is a whole number of one
    spacing (the most common gap, the smaller on a tie); None when the gaps are uneven."""
    ordered = np.sort(gaps)
    # Cluster gaps equal within the tolerance; the largest cluster is the slice spacing.
    best_count, best = 0, float(ordered[0])
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] - ordered[i] <= max(
            UNEVEN_TOLERANCE * ordered[i], 0.01
        ):
            j += 1
        if j - i + 1 > best_count:
            best_count, best = j - i + 1, float(np.median(ordered[i : j + 1]))
        i = j + 1
    ratio = gaps / best
    k = np.round(ratio)
    if (k < 1).any() or (np.abs(ratio - k) > MULTIPLE_TOLERANCE).any():
        return None
    missing = (k - 1).astype(np.int64)
    if int(missing.sum()) > 4 * len(gaps) + 16:
        return None  # not a few lost files: a jump in the positions
    return float(np.sum(gaps) / np.sum(k)), missing


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
    errors, warnings = geometry_problems(headers)
    if errors:
        raise _geometry_error(headers, errors)
    orientations = [h.orientation for h in headers if h.orientation is not None]
    ref = orientations[0] if orientations else None
    if ref is not None and (
        np.abs(np.asarray(orientations, float) - np.asarray(ref, float)).max() > 1e-3
    ):
        raise SeriesAssemblyError(
            first.parent,
            "this series mixes slice orientations (a localizer or reformat among the slices); "
            "open the parts separately",
        )
    spacing_xy = headers[0].pixel_spacing
    if spacing_xy is None:
        warnings.append(NO_PIXEL_SPACING)
        spacing_xy = (1.0, 1.0)
    if ref is not None:
        row, col = np.asarray(ref[:3], float), np.asarray(ref[3:], float)
        row /= np.linalg.norm(row) or 1.0
        col /= np.linalg.norm(col) or 1.0
    else:
        row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    normal = slice_normal(tuple(row) + tuple(col))

    # A multi-frame file split into volumes contributes only the frames of this volume.
    frames = [
        (i, j, h.positions[j])
        for i, h in enumerate(headers)
        for j in h.selected_frames
        if j < len(h.positions)
    ]
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
        if len(headers) > 1 or headers[0].patient_orientation:
            # A cine (one multi-frame file without patient orientation) is frames in time,
            # not slices: nothing to warn about.
            warnings.append(
                "the slices have no ImagePositionPatient: stacked in file order, "
                "z distances unknown"
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
            warnings.append(
                f"{dup.size} duplicate cop{'y' if dup.size == 1 else 'ies'} ignored "
                "(the same SOP Instance UID stored more than once)"
            )
        else:
            a, b = frames[dup[0]], frames[dup[0] + 1]
            raise SeriesAssemblyError(
                headers[a[0]].path.parent,
                f"{dup.size + 1} slices share the same position ({dist[dup[0]]:.2f} mm along the "
                f"normal), e.g. {headers[a[0]].path.name} and {headers[b[0]].path.name}: "
                "they are not one volume",
            )
    order = [(f[0], f[1]) for f in frames]
    if len(order) == 1:
        return layout(order, 1.0, pos[0], normal)
    lo, hi = float(gaps.min()), float(gaps.max())
    found = _step(gaps)
    if found is not None and (found[1] > 0).any():
        step, missing = found
        warnings.append(_missing_text(dist, missing, step))
    elif found is not None and hi - lo <= max(UNEVEN_TOLERANCE * found[0], 0.01):
        step = found[0]
    else:
        step = float(np.median(gaps))
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


def _missing_text(dist: np.ndarray, missing: np.ndarray, step: float) -> str:
    """ "1 slice missing between z=5.00 and z=10.00 mm (slice spacing 2.50 mm): ..." """
    at = np.flatnonzero(missing > 0)
    parts = []
    for i in at[:3]:
        n = int(missing[i])
        parts.append(
            f"{n} slice{'s' if n != 1 else ''} missing between z={dist[i]:.2f} and "
            f"z={dist[i + 1]:.2f} mm"
        )
    if len(at) > 3:
        parts.append(f"{int(missing[at[3:]].sum())} more in {len(at) - 3} other gaps")
    return (
        "; ".join(parts) + f" (slice spacing {step:.3g} mm): the volume has no voxels there, so "
        "distances across a gap are not to scale"
    )


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
