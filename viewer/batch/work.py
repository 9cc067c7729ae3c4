"""One series analysed, in a worker process or a Ray actor: open it, pick the model its card
admits (as `radlens analyze` does), run the engine, hand back the outcome and the files.

The worker never writes into the batch folder: it returns the files' bytes and the driver
writes them, so a Ray worker on another machine needs no shared output folder, and only the
driver ever touches the manifest."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from radlens_core.progress import Cancelled
from viewer.batch.items import WorkItem
from viewer.batch.manifest import DONE, FAILED, SKIPPED, Outcome

#: A failure's reason is one sentence: long messages are cut here.
REASON_LIMIT = 400


@dataclass(frozen=True)
class Options:
    """What every worker needs to know: the model ("auto" or an id), the device preference
    and the torch threads it may use."""

    model: str = "auto"
    device: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class ItemResult:
    outcome: Outcome
    #: (file name, bytes) to write into DIR/<key>/; findings.json comes last.
    files: tuple[tuple[str, bytes], ...] = field(default=())


class _Skip(Exception):
    """The series is fine but no model is meant for it (the message says why)."""


def one_line(exc: BaseException) -> str:
    """A sentence for the manifest: the error's own message, never a traceback."""
    if isinstance(exc, MemoryError):
        return "ran out of memory while analysing this series"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, (UserError, OSError)) and not _is_known(exc):
        text = f"unexpected {type(exc).__name__}: {text}"
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _is_known(exc: BaseException) -> bool:
    from inference.card import CardError
    from inference.engine import EngineError
    from inference.weights import WeightsError

    return isinstance(exc, (EngineError, CardError, WeightsError))


class SeriesWorker:
    """Holds what a worker loads once: the usable model cards, the engine (whose network
    cache keeps each model loaded after its first series). One per process or Ray actor."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._cards: list[Any] | None = None
        self._engine: Any = None
        if options.threads:
            import torch

            torch.set_num_threads(int(options.threads))

    def cards(self) -> list[Any]:
        if self._cards is None:
            from inference import registry

            self._cards = registry.usable_models().cards
        return self._cards

    def engine(self) -> Any:
        if self._engine is None:
            from inference.engine import Engine

            self._engine = Engine(self.options.device, num_threads=self.options.threads)
        return self._engine

    # -- one series ---------------------------------------------------------------------------
    def analyse(self, item: WorkItem) -> ItemResult:
        t0 = time.perf_counter()
        model = ""
        try:
            with tempfile.TemporaryDirectory(prefix="radlens-batch-") as scratch:
                volume = open_item(item, Path(scratch))
                load_s = time.perf_counter() - t0
                modality = (volume.modality or "OT").upper()
                card = self.pick(volume, modality)
                model = f"{card.id}@{card.version}"
                t1 = time.perf_counter()
                result = self.engine().run(
                    volume.array, volume.spacing, volume.direction, modality, card
                )
                analyse_s = time.perf_counter() - t1
                files = _outputs(item, volume, modality, card, result, Path(scratch))
        except _Skip as why:
            return ItemResult(Outcome(item.key, SKIPPED, model, str(why), total_s=_since(t0)))
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one failing series never stops the batch
            return ItemResult(Outcome(item.key, FAILED, model, one_line(exc), total_s=_since(t0)))
        outcome = Outcome(item.key, DONE, model, "", load_s, analyse_s, _since(t0))
        return ItemResult(outcome, files)

    def pick(self, volume: Any, modality: str) -> Any:
        """The model for this series: the named one if its card admits it, else the best
        admitted one; _Skip with the reasons when none is meant for it."""
        from inference import registry
        from viewer.study.facts import series_facts

        facts = series_facts(volume, modality)
        cards = self.cards()
        if self.options.model != "auto":
            wanted, _, version = self.options.model.partition("@")
            named = [c for c in cards if c.id == wanted and version in ("", c.version)]
            if not named:
                have = ", ".join(f"{c.id}@{c.version}" for c in cards) or "none installed"
                raise UserError(f"no usable model package {self.options.model!r} ({have})")
            adm = registry.admission(named[0], facts)
            if not adm.admitted:
                raise _Skip(f"{named[0].id} is not meant for it: {'; '.join(adm.reasons)}")
            return named[0]
        card = registry.best_model(facts, entries=cards)
        if card is None:
            offers = registry.offer(facts, entries=cards)
            why = "; ".join(f"{a.model_id}: {'; '.join(a.reasons)}" for a in offers)
            raise _Skip(
                f"no installed model is meant for this {modality} {facts.spatial_dims}D series"
                + (f" ({why})" if why else " (no model is installed)")
            )
        return card


def open_item(item: WorkItem, scratch: Path) -> Any:
    """The item's series as a Volume (a PACS series is retrieved into ``scratch`` first)."""
    from viewer.study.records import SeriesInfo
    from viewer.study.series import load_series

    info = item.series
    if not isinstance(info, SeriesInfo):  # a PACS reference: retrieved first, then scanned
        info = info.retrieve(scratch)
    return load_series(info)


def _outputs(
    item: WorkItem, volume: Any, modality: str, card: Any, result: Any, scratch: Path
) -> tuple[tuple[str, bytes], ...]:
    from viewer.commands.analyze import findings_json
    from viewer.study.formats import write_image
    from viewer.study.volume import Volume

    data = findings_json(Path(item.source), volume, modality, card, result)
    files: list[tuple[str, bytes]] = []

    def image(name: str, array: np.ndarray) -> None:
        like = Volume(
            array.reshape(volume.shape),
            spacing=volume.spacing,
            origin=volume.origin,
            direction=volume.direction,
            modality=volume.modality,
        )
        write_image(like, scratch / name)
        files.append((name, (scratch / name).read_bytes()))
        data["files"][name.split(".")[0]] = name

    if result.label_map is not None:
        image("mask.nii.gz", result.label_map.array)
        seg = _seg(volume, result, data, scratch)
        if seg is not None:
            files.append(("seg.dcm", seg))
    if result.heat_map is not None:
        image("heatmap.nii.gz", result.heat_map.array.astype(np.float32))
    files.append(("findings.json", (json.dumps(data, indent=2) + "\n").encode()))
    return tuple(files)


def _seg(volume: Any, result: Any, data: dict[str, Any], scratch: Path) -> bytes | None:
    """The label map as DICOM-SEG (seg13's writer, where this build has it); a series that
    cannot give one (not from DICOM, empty map) says why in ``findings['failed']``."""
    try:
        from viewer.labels.ai_labels import write_analysis_seg
    except ModuleNotFoundError:  # a build without the DICOM-SEG writer: NIfTI only
        return None
    import contextlib
    import io
    from types import SimpleNamespace

    folder = scratch / "seg"
    folder.mkdir()
    with contextlib.redirect_stderr(io.StringIO()):  # the reason goes to findings, not stderr
        write_analysis_seg(
            folder, volume, result, data, SimpleNamespace(formats=("dicom-seg",), overwrite=True)
        )
    path = folder / "seg.dcm"
    return path.read_bytes() if path.is_file() else None


def _since(t0: float) -> float:
    return time.perf_counter() - t0


# -- the local process pool's side: one SeriesWorker per process ----------------------------------
_WORKER: SeriesWorker | None = None


def init_process(options: Options) -> None:
    """ProcessPoolExecutor initializer: torch threads set once, the worker built once."""
    global _WORKER
    # Ctrl-C is the driver's to handle: it stops the pool; a worker must not die mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", str(options.threads or 1))
    _WORKER = SeriesWorker(options)


def analyse_in_process(item: WorkItem) -> ItemResult:
    if _WORKER is None:
        raise RuntimeError("init_process was not called in this worker")
    return _WORKER.analyse(item)
