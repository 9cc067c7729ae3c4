"""Task functions the viewer runs on worker threads: scan a folder, load a series or a file.

They only call ``viewer.study`` and report through a TaskContext, so no widget is ever
touched off the main thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from radlens_core.progress import Cancelled
from viewer.study.volume import Volume
from viewer.ui.workers import TaskContext

if TYPE_CHECKING:
    from viewer.study.scan import ScanResult, SeriesInfo

#: File suffixes opened directly as one image volume (not scanned as a DICOM folder).
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class FirstSlice:
    """Partial result: the volume (geometry final) with slice ``index`` already read."""

    volume: Volume
    index: int


@dataclass(frozen=True)
class SlicesArrived:
    """Partial result: ``count`` slices of the volume are now read."""

    count: int


@dataclass(frozen=True)
class SeriesSoFar:
    """Partial result of a scan: the series found so far (a folder of the walk is done)."""

    series: tuple[SeriesInfo, ...]


def is_image_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(IMAGE_SUFFIXES)


def scan_task(path: Path) -> Callable[[TaskContext], ScanResult]:
    """A task that scans ``path`` and returns its ScanResult; ``SeriesSoFar`` partial
    results list the series found as each folder of the walk is done."""

    def run(ctx: TaskContext) -> ScanResult:
        from viewer.study.scan import scan_folder

        def found(series: list[SeriesInfo]) -> None:
            ctx.partial(SeriesSoFar(tuple(series)))

        return scan_folder(path, progress=ctx.progress, cancel=ctx.cancelled, on_series=found)

    return run


def image_file_task(path: Path) -> Callable[[TaskContext], Volume]:
    """A task that reads one NIfTI/NRRD/MHA file into a Volume."""

    def run(ctx: TaskContext) -> Volume:
        from viewer.study.formats import read_image

        ctx.progress(0.0, f"Reading {path.name}")
        volume = read_image(path)
        ctx.progress(1.0, f"Read {path.name}")
        return volume

    return run


def series_task(info: SeriesInfo) -> Callable[[TaskContext], Volume]:
    """A task that loads one series: middle slice first (partial FirstSlice), then the rest.

    Partial ``SlicesArrived`` results follow as slices land so the views fill in live.
    """

    def run(ctx: TaskContext) -> Volume:
        from viewer.study.errors import LoadCancelled, SeriesAssemblyError
        from viewer.study.series import SeriesReader

        if not info.loadable:
            problems = "; ".join(info.problems) or "it cannot be assembled"
            where = info.files[0] if info.files else info.description or info.series_uid
            raise SeriesAssemblyError(where, problems)
        ctx.progress(0.0, f"Reading headers of {info.n_images} images")
        reader = SeriesReader(info)
        volume = reader.volume
        first = reader.slice_order()[0]
        reader.read_slice(first)
        ctx.partial(FirstSlice(volume, first))
        ctx.check()
        done = [1]

        def on_slice(_z: int) -> None:
            done[0] += 1
            # Coalesce: a repaint per slice is wasted work; the main thread redraws on each.
            if done[0] % 8 == 0:
                ctx.partial(SlicesArrived(done[0]))

        try:
            reader.read_all(progress=ctx.progress, cancel=ctx.cancelled, on_slice=on_slice)
        except LoadCancelled:
            raise Cancelled() from None
        ctx.check()
        return volume

    return run
