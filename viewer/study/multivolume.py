"""One DICOM series -> its volumes: exact duplicates collapsed, phases, echoes, b-values and
other repeated acquisitions of the same positions split by the attribute that separates them.

Headers only, except where two frames at one position agree on every attribute: then the
pixels decide (``FramePixels``: each frame decoded once, a bounded number of bytes in all)
whether they are copies of one image (the same image stored in several transfer syntaxes)
or a repeat nothing labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np

from viewer.study.frame_pixels import FramePixels  # noqa: F401 - importable from here too
from viewer.study.headers import FileHeader, slice_normal

#: Positions closer than this (mm) along the normal are the same slice (as in the layout).
SAME_POSITION_MM = 1e-3
#: At most this many frame comparisons per series (FramePixels also bounds the bytes
#: decoded; each frame is decoded once).
MAX_PIXEL_COMPARISONS = 4096
#: The attributes that may tell volumes apart, most telling first.
SEPARATORS = (
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "EchoNumbers",
    "EchoTime",
    "DiffusionBValue",
    "AcquisitionNumber",
    "TriggerTime",
    "StackID",
)
#: Separators that make the volumes a time series (playable one after the other).
TEMPORAL = frozenset(
    {"TemporalPositionIdentifier", "TemporalPositionIndex", "TriggerTime", "AcquisitionNumber"}
)

#: Whether frame ``fa`` of ``a`` and frame ``fb`` of ``b`` hold identical pixels; None when
#: they could not be compared (a decoder failed).
SamePixels = Callable[[FileHeader, int, FileHeader, int], "bool | None"]


@dataclass
class VolumePart:
    """One volume of a series: its headers (multi-frame ones restricted to its frames)."""

    headers: list[FileHeader]
    index: int  # 1-based
    count: int
    #: What tells this volume apart, in words ("echo 2, TE 30 ms"); None for a single volume.
    label: str | None = None
    #: Whether the series' volumes follow one another in time (playable).
    temporal: bool = False


@dataclass
class VolumeSplit:
    volumes: list[VolumePart]
    #: Sentences about what was done ("2 duplicate copies ignored (…)"), shown as problems.
    notes: list[str] = field(default_factory=list)
    #: Why the series cannot be shown as volumes (frames share a position, nothing separates
    #: them, and their pixels differ); None when it can.
    refusal: str | None = None
    duplicates: int = 0


@dataclass(frozen=True)
class _Frame:
    header: int  # index into the de-duplicated headers
    frame: int  # frame index in its file
    attrs: dict[str, Any]


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _describe(common: dict[str, Any], varying: set[str]) -> str:
    """Words for the attributes that differ between the volumes and are constant in this one."""
    parts = []
    if "EchoNumbers" in varying and "EchoNumbers" in common:
        parts.append(f"echo {_number(common['EchoNumbers'])}")
    if "EchoTime" in varying and "EchoTime" in common:
        parts.append(f"TE {_number(common['EchoTime'])} ms")
    if "DiffusionBValue" in varying and "DiffusionBValue" in common:
        parts.append(f"b = {_number(common['DiffusionBValue'])} s/mm²")
    for name in ("TemporalPositionIdentifier", "TemporalPositionIndex"):
        if name in varying and name in common:
            parts.append(f"time point {_number(common[name])}")
            break
    if "TriggerTime" in varying and "TriggerTime" in common:
        parts.append(f"trigger delay {_number(common['TriggerTime'])} ms")
    if "AcquisitionNumber" in varying and "AcquisitionNumber" in common:
        parts.append(f"acquisition {_number(common['AcquisitionNumber'])}")
    if "StackID" in varying and "StackID" in common:
        parts.append(f"stack {_number(common['StackID'])}")
    if not parts:
        for name in sorted(varying):
            if name.startswith("DimensionIndexValues[") and name in common:
                dim = name[len("DimensionIndexValues[") : -1]
                parts.append(f"dimension {dim} index {_number(common[name])}")
    return ", ".join(parts)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, float) else (1, str(value))


def _unique_by_sop(headers: list[FileHeader]) -> tuple[list[FileHeader], int]:
    """Headers without exact copies (one SOP Instance UID stored twice at the same place);
    the copies dropped. A reused UID on another position is not a copy (a careless
    anonymiser): both stay."""
    seen: set[tuple[str, int, tuple]] = set()
    kept, dropped = [], 0
    for h in headers:
        key = (h.sop_instance_uid, h.frames, h.positions)
        if h.sop_instance_uid and key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(h)
    return kept, dropped


def _position_groups(headers: list[FileHeader], frames: list[_Frame]) -> list[list[int]] | None:
    """Frame indices grouped by position along the slice normal; None without positions."""
    orientation = next((h.orientation for h in headers if h.orientation is not None), None)
    normal = slice_normal(orientation)
    dist = []
    for fr in frames:
        positions = headers[fr.header].positions
        pos = positions[fr.frame] if fr.frame < len(positions) else None
        if pos is None:
            return None
        dist.append(float(np.asarray(pos, float) @ normal))
    order = np.argsort(np.asarray(dist), kind="stable")
    groups: list[list[int]] = []
    last = None
    for i in order:
        if last is None or dist[i] - last >= SAME_POSITION_MM:
            groups.append([])
        groups[-1].append(int(i))
        last = dist[i]
    return groups


def _separator(frames: list[_Frame], groups: list[list[int]]) -> tuple[str, ...] | None:
    """The attribute (or pair) whose values differ within every position and take as many
    values as the largest position has frames: it labels each frame's volume."""
    size = max(len(g) for g in groups)
    present = set().union(*(fr.attrs.keys() for fr in frames))
    extra = sorted(n for n in present if n.startswith("DimensionIndexValues["))
    names = [n for n in SEPARATORS if n in present] + extra

    def works(keys: tuple[str, ...]) -> bool:
        values = [tuple(fr.attrs.get(k) for k in keys) for fr in frames]
        if any(None in v for v in values) or len(set(values)) != size:
            return False
        return all(len({values[i] for i in g}) == len(g) for g in groups)

    for name in names:
        if works((name,)):
            return (name,)
    for pair in combinations(names, 2):
        if works(pair):
            return pair
    return None


def split_volumes(
    headers: list[FileHeader],
    same_pixels: SamePixels | None = None,
    max_comparisons: int = MAX_PIXEL_COMPARISONS,
) -> VolumeSplit:
    """The volumes of one stack (one size, one orientation) of a series."""
    headers, sop_copies = _unique_by_sop(headers)
    notes = []
    if sop_copies:
        notes.append(
            f"{sop_copies} duplicate cop{'y' if sop_copies == 1 else 'ies'} ignored "
            "(the same SOP Instance UID stored more than once)"
        )
    frames = [
        _Frame(
            i,
            f,
            dict(h.frame_attributes[f]) if f < len(h.frame_attributes) else {},
        )
        for i, h in enumerate(headers)
        for f in h.selected_frames
    ]
    single = VolumeSplit([VolumePart(headers, 1, 1)], notes, duplicates=sop_copies)
    groups = _position_groups(headers, frames) if frames else None
    if groups is None or max(len(g) for g in groups) == 1:
        return single

    # Frames that share a position and agree on every attribute: copies when their pixels
    # are identical (one image stored in several transfer syntaxes), else a repeat.
    dropped: set[int] = set()
    budget = max_comparisons if same_pixels is not None else 0
    unknown = False
    for g in groups:
        kept: list[int] = []
        for i in g:
            fi = frames[i]
            copy = False
            for k in kept:
                fk = frames[k]
                if fk.attrs != fi.attrs:
                    continue
                if budget <= 0:
                    unknown = True
                    continue
                budget -= 1
                same = same_pixels(  # type: ignore[misc]
                    headers[fk.header], fk.frame, headers[fi.header], fi.frame
                )
                if same is None:
                    unknown = True
                elif same:
                    copy = True
                    break
            if copy:
                dropped.add(i)
            else:
                kept.append(i)
    if dropped:
        n = len(dropped)
        notes.append(
            f"{n} duplicate cop{'y' if n == 1 else 'ies'} ignored (the same position and "
            "identical pixels, e.g. one image stored in several transfer syntaxes)"
        )
    duplicates = sop_copies + len(dropped)
    keep_index = [i for i in range(len(frames)) if i not in dropped]
    renumber = {old: new for new, old in enumerate(keep_index)}
    frames = [frames[i] for i in keep_index]
    groups = [[renumber[i] for i in g if i in renumber] for g in groups]
    groups = [g for g in groups if g]
    if max(len(g) for g in groups) == 1:
        kept_headers = _restrict(headers, frames, None)
        return VolumeSplit([VolumePart(kept_headers, 1, 1)], notes, duplicates=duplicates)

    keys = _separator(frames, groups)
    if keys is not None:
        values = [tuple(fr.attrs[k] for k in keys) for fr in frames]
        distinct = sorted(set(values), key=lambda v: tuple(_sort_key(x) for x in v))
        members = [[i for i, v in enumerate(values) if v == d] for d in distinct]
        temporal = keys[0] in TEMPORAL
    else:
        sizes = {len(g) for g in groups}
        if len(sizes) != 1 or unknown:
            big = max(groups, key=len)
            a, b = frames[big[0]], frames[big[1]]
            return VolumeSplit(
                [],
                notes,
                refusal=(
                    f"{len(big)} slices share the same position, e.g. "
                    f"{headers[a.header].path.name} and {headers[b.header].path.name}, with "
                    "different pixels, and no attribute (temporal position, echo, b-value, "
                    "acquisition, trigger time) tells them apart"
                    + (
                        " (not every copy could be compared: too many or undecodable)"
                        if unknown
                        else ""
                    )
                    + ": not loaded"
                ),
                duplicates=duplicates,
            )

        # Every position repeated the same number of times and nothing says why: the k-th
        # acquisition of each position (file order) is volume k.
        def order(i: int) -> tuple[int, str, int]:
            fr = frames[i]
            h = headers[fr.header]
            return (h.instance_number or 0, h.path.name, fr.frame)

        ranked = [sorted(g, key=order) for g in groups]
        members = [[g[k] for g in ranked] for k in range(sizes.pop())]
        notes.append(
            "its positions repeat with no attribute telling the repeats apart: split in "
            "instance order"
        )
        temporal = True
    varying = {
        name
        for name in set().union(*(fr.attrs.keys() for fr in frames))
        if len({_hashable(fr.attrs.get(name)) for fr in frames}) > 1
    }
    volumes = []
    count = len(members)
    for k, idx in enumerate(members):
        chosen = [frames[i] for i in idx]
        common = {
            name: value
            for name, value in chosen[0].attrs.items()
            if all(fr.attrs.get(name) == value for fr in chosen)
        }
        label = _describe(common, varying) or f"volume {k + 1}"
        volumes.append(
            VolumePart(
                _restrict(headers, chosen, label, (k + 1, count)), k + 1, count, label, temporal
            )
        )
    return VolumeSplit(volumes, notes, duplicates=duplicates)


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, float, int)) or value is None else str(value)


def _restrict(
    headers: list[FileHeader],
    frames: list[_Frame],
    label: str | None,
    position: tuple[int, int] = (1, 1),
) -> list[FileHeader]:
    """The headers holding ``frames``, each multi-frame one limited to its frames there."""
    by_header: dict[int, list[int]] = {}
    for fr in frames:
        by_header.setdefault(fr.header, []).append(fr.frame)
    out = []
    for i, h in enumerate(headers):
        if i not in by_header:
            continue
        chosen = tuple(sorted(by_header[i]))
        whole = chosen == tuple(range(h.frames))
        if whole and label is None:
            out.append(h)
        else:
            out.append(
                replace(
                    h,
                    frame_numbers=None if whole else chosen,
                    volume_label=label,
                    volume_index=position[0],
                    volume_count=position[1],
                )
            )
    return out
