"""Label classes and vector annotations (boxes, polygons, points, rulers, ROIs) in voxel space.

Every annotation is a frozen dataclass: an edit replaces one value by another, so undo/redo
and the journal only ever store whole values. Geometry is in the VOXEL index space of the
series, (z, y, x), continuous (a voxel centre is an integer index).

Polygons and ROIs lie on one slice taken along array ``axis`` (0: z, axial for an axially
acquired series; 1: y, coronal; 2: x, sagittal) at index ``z`` along that axis (the field
keeps its old name so saved labels still load). Their 2D coordinates are in the two other
array axes in increasing order: (y, x) on axis 0, (z, x) on axis 1, (z, y) on axis 2.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Union

from radlens_core.results import LabelClass, LabelError

STATUSES = ("proposed", "accepted", "rejected", "edited")
Status = Literal["proposed", "accepted", "rejected", "edited"]
_SOURCE = re.compile(r"^(user|model:[^@\s]+@[^@\s]+)$")


def annotation_class(index: int, name: str, color: str = "#ff0000") -> LabelClass:
    """A label class an annotation can use: index 1..255 (0 is a label map's background)."""
    if isinstance(index, int) and not isinstance(index, bool) and not 1 <= index <= 255:
        raise LabelError(f"label index must be 1..255 (0 is background), got {index}")
    return LabelClass(index, name, color)


DEFAULT_CLASSES = (
    LabelClass(1, "lung", "#4fc3f7"),
    LabelClass(2, "nodule", "#ff7043"),
    LabelClass(3, "lesion", "#ffd54f"),
)


@dataclass(frozen=True)
class LabelSet:
    """An immutable table of label classes; editing returns a new LabelSet (cheap to undo)."""

    classes: tuple[LabelClass, ...] = DEFAULT_CLASSES

    def __post_init__(self) -> None:
        for c in self.classes:
            annotation_class(c.index, c.name, c.color)  # annotation labels start at 1
        idx = [c.index for c in self.classes]
        if len(set(idx)) != len(idx):
            raise LabelError(f"label indices repeat: {sorted(idx)}")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise LabelError(f"label names repeat: {names}")
        object.__setattr__(self, "classes", tuple(sorted(self.classes, key=lambda c: c.index)))

    def __iter__(self) -> Iterator[LabelClass]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, index: object) -> bool:
        return any(c.index == index for c in self.classes)

    def get(self, index: int) -> LabelClass:
        for c in self.classes:
            if c.index == index:
                return c
        raise LabelError(f"no label class with index {index}")

    def by_name(self, name: str) -> LabelClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise LabelError(f"no label class named {name!r}")

    def add(self, name: str, color: str = "#ff0000", index: int | None = None) -> LabelSet:
        if index is None:
            index = max((c.index for c in self.classes), default=0) + 1
        return LabelSet((*self.classes, annotation_class(index, name, color)))

    def rename(self, index: int, name: str) -> LabelSet:
        return self._changed(index, name=name)

    def recolor(self, index: int, color: str) -> LabelSet:
        return self._changed(index, color=color)

    def _changed(self, index: int, name: str | None = None, color: str | None = None) -> LabelSet:
        return LabelSet(
            tuple(
                annotation_class(index, name or c.name, color or c.color) if c.index == index else c
                for c in self._has(index)
            )
        )

    def remove(self, index: int) -> LabelSet:
        return LabelSet(tuple(c for c in self._has(index) if c.index != index))

    def _has(self, index: int) -> tuple[LabelClass, ...]:
        self.get(index)
        return self.classes

    def to_table(self) -> dict[str, dict[str, str]]:
        """The ``label_table.json`` form: {"1": {"name": ..., "color": ...}}."""
        return {str(c.index): {"name": c.name, "color": c.color} for c in self.classes}

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> LabelSet:
        try:
            return cls(
                tuple(
                    annotation_class(int(k), str(v["name"]), str(v["color"]))
                    for k, v in table.items()
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelError(f"label table is malformed: {exc}") from exc


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Annotation:
    """Common fields. ``source`` is "user" or "model:<id>@<version>"."""

    label: int
    id: str = field(default_factory=new_id)
    source: str = "user"
    status: Status = "accepted"
    score: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise LabelError(
                f"annotation {self.id}: status must be one of {STATUSES}, got {self.status!r}"
            )
        if not _SOURCE.match(self.source):
            raise LabelError(
                f"annotation {self.id}: source must be 'user' or 'model:<id>@<version>', got {self.source!r}"
            )

    @property
    def kind(self) -> str:
        return type(self).__name__

    @property
    def from_model(self) -> bool:
        return self.source.startswith("model:")

    def points(self) -> list[tuple[float, float, float]]:
        """Characteristic points (z, y, x) for export in patient coordinates."""
        raise NotImplementedError  # every concrete kind overrides it

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind
        return d


#: the usual plane of each slice axis, for an axially acquired series
AXIS_PLANES = ("axial", "coronal", "sagittal")


def in_plane_axes(axis: int) -> tuple[int, int]:
    """The two array axes a slice along ``axis`` spans, in increasing order."""
    if axis not in (0, 1, 2):
        raise LabelError(f"a slice axis is 0, 1 or 2 (z, y, x), got {axis!r}")
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


def plane_point(axis: int, index: float, a: float, b: float) -> tuple[float, float, float]:
    """(z, y, x) of in-plane coordinates (a, b) on slice ``index`` along ``axis``."""
    out = [0.0, 0.0, 0.0]
    u, v = in_plane_axes(axis)
    out[axis], out[u], out[v] = float(index), float(a), float(b)
    return out[0], out[1], out[2]


def _floats(seq: Sequence[float], n: int, what: str) -> tuple[float, ...]:
    if len(seq) != n:
        raise LabelError(f"{what} needs {n} numbers, got {len(seq)}")
    out = tuple(float(v) for v in seq)
    if not all(math.isfinite(v) for v in out):
        raise LabelError(f"{what} has a non-finite coordinate: {out}")
    return out


@dataclass(frozen=True)
class Box(Annotation):
    """A 2D box on slice ``z`` (corners (y0, x0, y1, x1)) or, with ``z is None``, a 3D box
    with ``corners`` (z0, y0, x0, z1, y1, x1). Corners are inclusive voxel centres."""

    corners: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    z: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        n = 4 if self.z is not None else 6
        c = _floats(self.corners, n, f"box {self.id}")
        half = n // 2
        lo = tuple(min(a, b) for a, b in zip(c[:half], c[half:], strict=True))
        hi = tuple(max(a, b) for a, b in zip(c[:half], c[half:], strict=True))
        object.__setattr__(self, "corners", lo + hi)

    @property
    def is_3d(self) -> bool:
        return self.z is None

    def bounds_zyx(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(lo, hi) corners as (z, y, x) for 2D and 3D boxes alike."""
        c = self.corners
        if self.z is None:
            return (c[0], c[1], c[2]), (c[3], c[4], c[5])
        return (float(self.z), c[0], c[1]), (float(self.z), c[2], c[3])

    def points(self) -> list[tuple[float, float, float]]:
        lo, hi = self.bounds_zyx()
        return [lo, hi]


@dataclass(frozen=True)
class Polygon(Annotation):
    """A closed outline on slice ``z`` along ``axis``; vertices in the in-plane axes."""

    z: int = 0
    vertices: tuple[tuple[float, float], ...] = ()
    axis: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        in_plane_axes(self.axis)
        verts = tuple(_floats(v, 2, f"polygon {self.id} vertex") for v in self.vertices)
        if len(verts) < 3:
            raise LabelError(f"polygon {self.id} needs at least 3 vertices, got {len(verts)}")
        object.__setattr__(self, "vertices", verts)

    def points(self) -> list[tuple[float, float, float]]:
        return [plane_point(self.axis, self.z, a, b) for a, b in self.vertices]


@dataclass(frozen=True)
class Point(Annotation):
    zyx: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "zyx", _floats(self.zyx, 3, f"point {self.id}"))

    def points(self) -> list[tuple[float, float, float]]:
        return [self.zyx]  # type: ignore[list-item]


@dataclass(frozen=True)
class Ruler(Annotation):
    start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    end: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "start", _floats(self.start, 3, f"ruler {self.id} start"))
        object.__setattr__(self, "end", _floats(self.end, 3, f"ruler {self.id} end"))

    def length_mm(self, spacing_xyz: Sequence[float]) -> float:
        """Length in mm; the direction matrix is orthonormal, so spacing alone decides it."""
        d = [(a - b) * s for a, b, s in zip(self.start, self.end, spacing_xyz[::-1], strict=True)]
        return math.sqrt(sum(v * v for v in d))

    def points(self) -> list[tuple[float, float, float]]:
        return [self.start, self.end]  # type: ignore[list-item]


@dataclass(frozen=True)
class RoiRect(Annotation):
    """A rectangle ROI on slice ``z`` along ``axis``: bounds (a0, b0, a1, b1) in the in-plane
    axes ((y0, x0, y1, x1) on an axial slice), inclusive voxel centres."""

    z: int = 0
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    axis: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        in_plane_axes(self.axis)
        b = _floats(self.bounds, 4, f"ROI {self.id}")
        b = (min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3]))
        object.__setattr__(self, "bounds", b)

    def points(self) -> list[tuple[float, float, float]]:
        a0, b0, a1, b1 = self.bounds
        return [plane_point(self.axis, self.z, a0, b0), plane_point(self.axis, self.z, a1, b1)]


@dataclass(frozen=True)
class RoiEllipse(RoiRect):
    """An ellipse ROI inscribed in ``bounds`` on slice ``z`` along ``axis``."""


@dataclass(frozen=True)
class ModelMask(Annotation):
    """A model's proposed mask for one label: voxels of ``label`` in the document's model
    layer ``layer``. Accepting it copies those voxels into the user's label map."""

    layer: str = ""

    def points(self) -> list[tuple[float, float, float]]:
        return []


AnyAnnotation = Union[Box, Polygon, Point, Ruler, RoiRect, RoiEllipse, ModelMask]  # noqa: UP007
KINDS: dict[str, type[Annotation]] = {
    k.__name__: k for k in (Box, Polygon, Point, Ruler, RoiRect, RoiEllipse, ModelMask)
}


def annotation_from_dict(d: dict[str, Any]) -> Annotation:
    """Inverse of ``Annotation.to_dict``; raises LabelError naming what is wrong."""
    if not isinstance(d, dict):
        raise LabelError(f"an annotation must be a JSON object, got {type(d).__name__}")
    kind = d.get("kind")
    cls = KINDS.get(str(kind))
    if cls is None:
        raise LabelError(f"unknown annotation kind {kind!r} (known: {', '.join(KINDS)})")
    names = {f.name for f in fields(cls)}
    args = {k: v for k, v in d.items() if k in names}
    for key in ("corners", "zyx", "start", "end", "bounds"):
        if key in args:
            args[key] = tuple(args[key])
    if "vertices" in args:
        args["vertices"] = tuple(tuple(v) for v in args["vertices"])
    try:
        return cls(**args)
    except TypeError as exc:
        raise LabelError(f"annotation {d.get('id', '?')} ({kind}) is malformed: {exc}") from exc


def parse_source(source: str) -> tuple[str, str] | None:
    """("model id", "version") for a model source, None for "user"."""
    if not source.startswith("model:"):
        return None
    model_id, _, version = source[len("model:") :].partition("@")
    return model_id, version


def model_source(model_id: str, version: str) -> str:
    return f"model:{model_id}@{version}"
