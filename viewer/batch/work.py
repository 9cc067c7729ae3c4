"""One series analysed, in a worker process or a Ray actor: open it, pick the model its card
admits (as `radlens analyze` does), run the engine, hand back the outcome and the files.

The worker never writes into the batch folder: it returns the files' bytes and the driver
writes them, so a Ray worker on another machine needs no shared output folder, and only the
driver ever touches the manifest."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    #: The generation of the item it answers (``WorkItem.generation``).
    generation: int = 0


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

    def warm(self) -> None:
        """Import torch and MONAI, read the model cards, build the engine and load the named
        model now (a pool worker does it while the driver still scans, so the first series
        does not wait seconds for it; with ``--model auto`` the model is loaded with the
        first series that needs it)."""
        from inference.engine import warm_up

        warm_up()
        cards = self.cards()
        engine = self.engine()
        if self.options.model != "auto":
            wanted, _, version = self.options.model.partition("@")
            for card in cards:
                if card.id == wanted and version in ("", card.version):
                    engine.load(card)
                    break

    def placement(self) -> dict[str, Any]:
        """Where this Ray actor runs as its own process sees it: the GPUs Ray gave it and
        whether torch there can use CUDA (a CPU build of torch on a GPU node cannot)."""
        import ray
        import torch

        return {
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "cuda": bool(torch.cuda.is_available()),
        }

    # -- one series ---------------------------------------------------------------------------
    def analyse(self, item: WorkItem) -> ItemResult:
        from viewer.commands.analyze_outputs import ModelNotMeant, NoModelMeant

        t0 = time.perf_counter()
        model = ""
        gen = item.generation
        try:
            with opened(item) as info:  # a PACS series stays pinned in the cache meanwhile
                volume = load_series(info)
                load_s = time.perf_counter() - t0
                modality = (volume.modality or "OT").upper()
                card = self.pick(volume, modality)
                model = f"{card.id}@{card.version}"
                t1 = time.perf_counter()
                result = self.engine().run(
                    volume.array, volume.spacing, volume.direction, modality, card
                )
                analyse_s = time.perf_counter() - t1
                # The SEG reads the source files: still pinned here.
                files = outputs(item, volume, modality, card, result)
        except ModelNotMeant as why:
            reason = f"{why.model_id} is not meant for it: {'; '.join(why.reasons)}"
            return ItemResult(
                Outcome(item.key, SKIPPED, model, reason, total_s=_since(t0)), (), gen
            )
        except NoModelMeant as why:
            outcome = Outcome(item.key, SKIPPED, model, why.one_line(), total_s=_since(t0))
            return ItemResult(outcome, (), gen)
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one failing series never stops the batch
            outcome = Outcome(item.key, FAILED, model, one_line(exc), total_s=_since(t0))
            return ItemResult(outcome, (), gen)
        outcome = Outcome(item.key, DONE, model, "", load_s, analyse_s, _since(t0))
        return ItemResult(outcome, files, gen)

    def pick(self, volume: Any, modality: str) -> Any:
        """The model for this series, as `radlens analyze` picks it (``pick_model``) among
        this worker's verified cards: the named one if its card admits the series, else the
        best admitted one (ModelNotMeant / NoModelMeant say why none)."""
        from viewer.commands.analyze_outputs import pick_model

        named = None if self.options.model == "auto" else self.options.model
        card, _ = pick_model(volume, modality, named, cards=self.cards())
        return card


def opened(item: WorkItem) -> contextlib.AbstractContextManager[Any]:
    """The item's ``SeriesInfo`` (a PACS series is retrieved into the PACS cache first and
    pinned there until the block ends)."""
    from viewer.study.records import SeriesInfo

    info = item.series
    if isinstance(info, SeriesInfo):
        return contextlib.nullcontext(info)
    return info.opened()  # a PACS reference (viewer.batch.pacs_source.PacsSeries)


def load_series(info: Any) -> Any:
    from viewer.study.series import load_series as load

    return load(info)


def outputs(
    item: WorkItem, volume: Any, modality: str, card: Any, result: Any
) -> tuple[tuple[str, bytes], ...]:
    """The series' files as `radlens analyze --format dicom-seg` writes them (the same
    functions): mask and heat map NIfTI, seg.dcm, and findings.json last. A SEG the series
    cannot give is said in ``findings['failed']``, as analyze does."""
    from viewer.commands.analyze_outputs import (
        encode_images,
        findings_bytes,
        findings_json,
        output_images,
        seg_bytes,
        seg_problems,
    )

    data = findings_json(Path(item.source), volume, modality, card, result)
    files: list[tuple[str, bytes]] = []
    for name, payload in encode_images(output_images(volume, data, result), volume).items():
        files.append((name, payload))
        data["files"][name.split(".")[0]] = name
    if result.label_map is not None:
        try:
            files.append(("seg.dcm", seg_bytes(volume, result)))
            data["files"]["seg"] = "seg.dcm"
        except seg_problems() as exc:
            data.setdefault("failed", {})["dicom-seg"] = str(exc)
    files.append(("findings.json", findings_bytes(data)))
    return tuple(files)


def _since(t0: float) -> float:
    return time.perf_counter() - t0


# -- the local process pool's side: one SeriesWorker per process ----------------------------------
_WORKER: SeriesWorker | None = None


def init_process(options: Options) -> None:
    """ProcessPoolExecutor initializer: torch threads set once, the worker built once."""
    global _WORKER
    # Ctrl-C is the driver's to handle: it stops the pool; a worker must not die mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Each worker in a session of its own, as Ray starts its workers: where Linux shares the
    # CPU between sessions (autogroup scheduling, on by default on desktops and on the shared
    # development machine), N workers in the driver's session got one session's share together
    # under load (measured: two workers took twice one worker's time per series while two Ray
    # actors did not). A worker still ends with the driver (its task pipe closes).
    with contextlib.suppress(OSError, AttributeError):
        os.setsid()
    os.environ.setdefault("OMP_NUM_THREADS", str(options.threads or 1))
    _WORKER = SeriesWorker(options)
    # torch, the cards and the engine now, while the driver scans: not on the first series.
    # A failure here (no torch, a broken package) is left to each series to report.
    with contextlib.suppress(Exception):
        _WORKER.warm()


def started() -> int:
    """A no-op task: submitting one per worker makes the pool start them all at once."""
    return os.getpid()


def analyse_in_process(item: WorkItem) -> ItemResult:
    if _WORKER is None:
        raise RuntimeError("init_process was not called in this worker")
    return _WORKER.analyse(item)
