"""AI results kept with their series: a plain record of one analysis run and its on-disk store.

The viewer never holds inference classes after a run: ``record_from_result`` copies an
engine ``radlens_core.results.AnalysisResult`` (the typed contract; this module imports
neither torch nor ``inference``) into a ``ResultRecord``, whose label table and boxes are the
core ``LabelClass`` and ``Box``. ``ResultStore`` keeps records per series (folder
``radlens_core.series.series_key(Volume.series_uid)``) under ``user_data_dir()/results/`` with
atomic writes, so results survive closing the series and restarting the app. Qt-free and
torch-free.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from radlens_core.errors import UserError
from radlens_core.files import atomic_write, atomic_write_bytes
from radlens_core.results import (
    FALLBACK_COLOURS,
    AnalysisResult,
    Box,
    Flag,
    LabelClass,
    LayerKind,
    label_name,
    total_seconds,
)
from radlens_core.series import series_key
from viewer.labels.npz_stream import Member, write_npz

__all__ = [
    "LAYER_KINDS",
    "ModelInfo",
    "ResultRecord",
    "ResultStore",
    "ResultStoreError",
    "quantise_heat",
    "record_from_result",
    "series_key",
]

#: Layer kinds a record can carry; also the names used in ``removed_layers``.
LAYER_KINDS = tuple(str(k) for k in LayerKind)


class ResultStoreError(RuntimeError, UserError):
    """A stored result could not be read or written; the message names the file."""


@dataclass
class ResultRecord:
    """One analysis run on one series, in the series' own voxel index space."""

    model_id: str
    model_name: str
    model_version: str
    task: str
    shape: tuple[int, int, int]  # (z, y, x) of the analysed volume
    device: str = "cpu"
    precision: str = "float32"
    timings: dict[str, float] = field(default_factory=dict)
    intended_use: str = ""
    warnings: list[str] = field(default_factory=list)
    label_map: np.ndarray | None = None  # uint8 (z, y, x)
    labels: list[LabelClass] = field(default_factory=list)
    heat_map: np.ndarray | None = None  # float32 in [0, 1], (z, y, x)
    boxes: list[Box] = field(default_factory=list)
    probabilities: dict[str, float] | None = None
    run_id: str = field(
        default_factory=lambda: time.strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:8]
    )
    created: float = field(default_factory=time.time)
    removed_layers: list[str] = field(default_factory=list)
    #: Run by explicit override on a series its card does not admit (DESIGN "Where it may run").
    outside_intended_use: bool = False
    #: Plausibility / out-of-distribution reasons not to trust the result as it stands.
    flags: list[Flag] = field(default_factory=list)
    ood_score: float | None = None
    ood_range: tuple[float, float] | None = None
    #: Volume per label name as the engine measured it (mL; mm² for 2D images).
    volumes_ml: dict[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """True when the result must not look like a plain finding."""
        return self.outside_intended_use or bool(self.flags)

    @property
    def total_seconds(self) -> float:
        return total_seconds(self.timings)

    def layers(self) -> list[str]:
        """Layer kinds this record can show, minus those the user removed."""
        present = []
        if self.label_map is not None:
            present.append("mask")
        if self.heat_map is not None:
            present.append("heatmap")
        if self.boxes:
            present.append("boxes")
        return [k for k in present if k not in self.removed_layers]

    def label_name(self, index: int) -> str:
        return label_name(self.labels, index)


class ModelInfo(Protocol):
    """What a record takes from the model card the run used (``inference.card.ModelCard``)."""

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Sequence[LabelClass | Mapping[str, Any]]: ...

    @property
    def intended_use(self) -> str: ...


def _label_table(entries: Sequence[LabelClass | Mapping[str, Any]]) -> list[LabelClass]:
    """The non-background rows of a label table, by index. Rows are label classes, or
    {"index", "name", "color"} mappings as a card's JSON holds them."""
    rows = [
        LabelClass(e.index, e.name, e.color)
        if not isinstance(e, Mapping)
        else LabelClass(
            int(e["index"]),
            str(e["name"]),
            str(e.get("color") or FALLBACK_COLOURS[i % len(FALLBACK_COLOURS)]),
        )
        for i, e in enumerate(entries)
    ]
    return sorted((r for r in rows if r.index != 0), key=lambda r: r.index)


def record_from_result(
    result: AnalysisResult,
    card: ModelInfo | None = None,
    shape: tuple[int, ...] | None = None,
    outside_intended_use: bool = False,
) -> ResultRecord:
    """Copy an engine ``AnalysisResult`` into a record; ``card`` (the model card the run
    used) gives the model's display name, and the label table and intended use when the
    result carries none (a detector's boxes take their colour from the card's table).
    ``outside_intended_use``: the viewer ran it by explicit override (the record is marked
    so even when the engine's answer does not say it)."""
    lm = result.label_map
    label_map = None if lm is None else np.asarray(lm.array)
    heat_map = None if result.heat_map is None else np.asarray(result.heat_map.array)
    labels = _label_table(lm.labels) if lm is not None else []
    if not labels and card is not None:
        labels = _label_table(card.labels)
    if shape is None:
        ref = label_map if label_map is not None else heat_map
        shape = tuple(ref.shape) if ref is not None else (1, 1, 1)
    shape3 = tuple(int(s) for s in shape[:3]) if len(shape) >= 3 else (1, *map(int, shape))
    if label_map is not None:
        label_map = label_map.astype(np.uint8, copy=False).reshape(shape3)
    if heat_map is not None:
        heat_map = heat_map.astype(np.float32, copy=False).reshape(shape3)
        # The engine already answers in [0, 1]; copy (300 MB for a big CT) only if it did not.
        if heat_map.size and (float(heat_map.min()) < 0.0 or float(heat_map.max()) > 1.0):
            heat_map = np.clip(heat_map, 0.0, 1.0)
    cls = result.classification
    probs = None
    if cls is not None:
        probs = {str(k): float(v) for k, v in cls.probabilities.items()}
    model_id = str(result.model_id)
    return ResultRecord(
        model_id=model_id,
        model_name=str(card.name if card is not None else "") or model_id,
        model_version=str(result.model_version),
        task=str(result.task),
        shape=shape3,  # type: ignore[arg-type]
        device=str(result.device),
        precision=str(result.precision),
        timings={str(k): float(v) for k, v in result.timings.items()},
        intended_use=str(result.intended_use or (card.intended_use if card is not None else "")),
        warnings=[str(w) for w in result.warnings],
        label_map=label_map,
        labels=labels,
        heat_map=heat_map,
        boxes=[Box(b.corners, b.label, b.score) for b in result.boxes],
        probabilities=probs,
        outside_intended_use=bool(outside_intended_use or result.run.outside_intended_use),
        flags=list(result.run.flags),
        ood_score=None if result.run.ood_score is None else float(result.run.ood_score),
        ood_range=_pair(result.run.ood_range),
        volumes_ml={} if lm is None else {str(k): float(v) for k, v in lm.volumes_ml.items()},
    )


def _pair(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, hi = value
    return (float(lo), float(hi))


# ---- persistence -----------------------------------------------------------------------


def _meta_of(rec: ResultRecord) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "run_id": rec.run_id,
        "created": rec.created,
        "model_id": rec.model_id,
        "model_name": rec.model_name,
        "model_version": rec.model_version,
        "task": rec.task,
        "shape": list(rec.shape),
        "device": rec.device,
        "precision": rec.precision,
        "timings": rec.timings,
        "intended_use": rec.intended_use,
        "warnings": rec.warnings,
        "labels": [{"index": i.index, "name": i.name, "color": i.color} for i in rec.labels],
        "boxes": [
            {"corners": list(b.corners), "label": b.label, "score": b.score} for b in rec.boxes
        ],
        "probabilities": rec.probabilities,
        "has_label_map": rec.label_map is not None,
        "has_heat_map": rec.heat_map is not None,
        "removed_layers": rec.removed_layers,
        # Added with issue 11; records stored before them read as an admitted, unflagged run.
        "outside_intended_use": rec.outside_intended_use,
        "flags": [{"code": f.code, "message": f.message} for f in rec.flags],
        "ood_score": rec.ood_score,
        "ood_range": None if rec.ood_range is None else list(rec.ood_range),
        "volumes_ml": rec.volumes_ml,
    }


def _quantised_slabs(heat: np.ndarray, slab: int) -> Iterator[np.ndarray]:
    """[0, 1] floats -> uint8 (x 255, rounded), ``slab`` slices at a time, through one small
    reused buffer: whole-array arithmetic would allocate two float temporaries of the volume's
    size, and on a 300×512×512 CT those big allocations stall the UI thread (they take the
    process's memory-map lock)."""
    slab = max(1, int(slab))
    buf = np.empty((min(slab, heat.shape[0]), *heat.shape[1:]), dtype=np.float32)
    out = np.empty(buf.shape, dtype=np.uint8)
    for z0 in range(0, heat.shape[0], slab):
        n = min(slab, heat.shape[0] - z0)
        np.multiply(heat[z0 : z0 + n], 255.0, out=buf[:n])
        np.rint(buf[:n], out=buf[:n])
        out[:n] = buf[:n]
        yield out[:n]


def quantise_heat(heat: np.ndarray, slab: int = 8) -> np.ndarray:
    """[0, 1] floats -> uint8 (x 255, rounded), a few slices at a time (see ``_quantised_slabs``)."""
    out = np.empty(heat.shape, dtype=np.uint8)
    z0 = 0
    for part in _quantised_slabs(heat, slab):
        out[z0 : z0 + len(part)] = part
        z0 += len(part)
    return out


class ResultStore:
    """Analysis records per series under ``root`` (default ``user_data_dir()/results``).

    Each run is ``<series>/<run_id>.npz`` (arrays; the heat map quantised to uint8, which is
    finer than any colour map shows) plus ``<run_id>.json`` (everything else), the JSON
    written last so a run without it is an interrupted write and is ignored.
    """

    def __init__(self, root: Path | None = None, keep_runs: int = 3) -> None:
        self.keep_runs = max(1, int(keep_runs))
        if root is None:
            from radlens_core.paths import user_data_dir  # numpy-only module, no torch

            root = user_data_dir() / "results"
        self.root = Path(root)

    def _folder(self, series_uid: str) -> Path:
        return self.root / series_key(series_uid)

    def save(self, series_uid: str, rec: ResultRecord) -> Path:
        """Persist ``rec`` for the series; returns the JSON path."""
        folder = self._folder(series_uid)
        folder.mkdir(parents=True, exist_ok=True)
        # Written a few slices at a time, the heat map quantised as it goes: the saving
        # worker never holds the interpreter lock long from the UI thread (npz_stream).
        arrays: dict[str, Member] = {}
        if rec.label_map is not None:
            arrays["label_map"] = rec.label_map
        heat = rec.heat_map
        if heat is not None:
            arrays["heat_map_u8"] = (
                heat.shape,
                np.dtype(np.uint8),
                lambda step: _quantised_slabs(heat, step),
            )
        if arrays:
            atomic_write(folder / f"{rec.run_id}.npz", lambda f: write_npz(f, arrays))
        path = self._write_meta(folder, rec)
        self._prune(series_uid, rec.model_id)
        return path

    def _prune(self, series_uid: str, model_id: str) -> None:
        """Keep the newest ``keep_runs`` runs of a model per series; older ones only cost disk."""
        runs = []
        for path in self._folder(series_uid).glob("*.json"):
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # an unreadable run is reported by load_all, never deleted here
            if meta.get("model_id") == model_id:
                runs.append((float(meta.get("created", 0.0)), str(meta.get("run_id", path.stem))))
        for _, run_id in sorted(runs, reverse=True)[self.keep_runs :]:
            self.delete(series_uid, run_id)

    def _write_meta(self, folder: Path, rec: ResultRecord) -> Path:
        path = folder / f"{rec.run_id}.json"
        data = json.dumps(_meta_of(rec), indent=1).encode("utf-8")
        atomic_write_bytes(path, data)
        return path

    def load_all(self, series_uid: str) -> list[ResultRecord]:
        """Every stored run of the series, oldest first. Unreadable runs raise ResultStoreError."""
        folder = self._folder(series_uid)
        if not folder.is_dir():
            return []
        records = [self._load(p) for p in folder.glob("*.json")]
        return sorted(records, key=lambda r: r.created)

    def latest_per_model(self, series_uid: str) -> list[ResultRecord]:
        """The newest run of each model, oldest first: what a reopened series shows."""
        latest: dict[str, ResultRecord] = {}
        for rec in self.load_all(series_uid):
            latest[rec.model_id] = rec
        return sorted(latest.values(), key=lambda r: r.created)

    def _load(self, path: Path) -> ResultRecord:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            label_map = heat_map = None
            if meta.get("has_label_map") or meta.get("has_heat_map"):
                with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
                    if "label_map" in npz:
                        label_map = npz["label_map"]
                    if "heat_map_u8" in npz:
                        heat_map = np.multiply(
                            npz["heat_map_u8"], np.float32(1 / 255), dtype=np.float32
                        )
            return ResultRecord(
                model_id=meta["model_id"],
                model_name=meta["model_name"],
                model_version=meta["model_version"],
                task=meta["task"],
                shape=tuple(meta["shape"]),  # type: ignore[arg-type]
                device=meta["device"],
                precision=meta["precision"],
                timings=meta["timings"],
                intended_use=meta["intended_use"],
                warnings=list(meta["warnings"]),
                label_map=label_map,
                labels=[LabelClass(d["index"], d["name"], d["color"]) for d in meta["labels"]],
                heat_map=heat_map,
                boxes=[Box(tuple(b["corners"]), b["label"], b["score"]) for b in meta["boxes"]],
                probabilities=meta["probabilities"],
                run_id=meta["run_id"],
                created=meta["created"],
                removed_layers=list(meta.get("removed_layers", [])),
                outside_intended_use=bool(meta.get("outside_intended_use", False)),
                flags=[Flag(str(f["code"]), str(f["message"])) for f in meta.get("flags") or []],
                ood_score=None if meta.get("ood_score") is None else float(meta["ood_score"]),
                ood_range=_pair(meta.get("ood_range")),
                volumes_ml={str(k): float(v) for k, v in (meta.get("volumes_ml") or {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ResultStoreError(f"{path}: stored analysis result is unreadable ({exc})") from exc

    def remove_layer(self, series_uid: str, rec: ResultRecord, kind: str) -> None:
        """Remember that the user removed one layer of a run; a run with none left is deleted."""
        if kind not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {kind!r} (expected one of {LAYER_KINDS})")
        if kind not in rec.removed_layers:
            rec.removed_layers.append(kind)
        folder = self._folder(series_uid)
        if not rec.layers() and rec.probabilities is None:
            self.delete(series_uid, rec.run_id)
        elif (folder / f"{rec.run_id}.json").exists():
            self._write_meta(folder, rec)

    def delete(self, series_uid: str, run_id: str) -> None:
        folder = self._folder(series_uid)
        # JSON first: without it the run no longer exists even if the npz removal fails.
        (folder / f"{run_id}.json").unlink(missing_ok=True)
        (folder / f"{run_id}.npz").unlink(missing_ok=True)
