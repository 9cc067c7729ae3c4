"""One series -> Volume, progressively (~410 lines: read_all schedules threads, decoders, cancel).

Geometry first, the middle slice next, then the rest.

Uncompressed little-endian pixels are read straight from the file into the volume at the
PixelData offset the header pass found (viewer.study.raw_pixels), on a thread pool.
Compressed frames are decoded from their codestream at the offset the header pass found
(viewer.study.frame_codecs): on this process's threads when the decoder releases the GIL,
else in decoder processes writing into a shared volume (viewer.study.decode); whatever is
not the plain case (big-endian, palette colour, deflated...) goes through pydicom.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from viewer.study import decode
from viewer.study.budget import check_series_size
from viewer.study.decode import (
    MIN_PARALLEL_FRAMES,
    DecoderPool,
    Payload,
    decode_file,
    decode_frame_bytes,
    decode_workers,
    split_frames,
)
from viewer.study.errors import (
    LoadCancelled,
    NotAnImage,
    SeriesAssemblyError,
    StudyError,
    UnsupportedFormat,
)
from viewer.study.headers import FileHeader, read_header
from viewer.study.layout import plan_series
from viewer.study.raw_pixels import needs_decoder, needs_process, raw_dtype, read_raw
from viewer.study.scan import ASSEMBLY_ERRORS, CANCEL_POLL_S, Cancel, Progress, SeriesInfo
from viewer.study.series_meta import mirror_range, volume_meta
from viewer.study.shared_volume import SharedVolume, StoreRule, init_worker, store_frame
from viewer.study.volume import Volume

#: Reading threads: file reads and numpy conversions release the GIL.
READ_THREADS = max(2, min(8, 2 * (os.cpu_count() or 2)))


def _read_headers(files: list[Path]) -> list[FileHeader]:
    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(read_header, files))


class SeriesReader:
    """Progressive loader: ``volume`` has its final geometry at once; slices fill in as read."""

    def __init__(self, info: SeriesInfo) -> None:
        self.info = info
        if info.kind == "non-image":
            raise NotAnImage(
                info.files[0] if info.files else None,
                f"{info.description or 'this object'} has no images to show",
            )
        self._lock = threading.Lock()
        #: Multi-frame files (header index -> frames' compressed bytes, or the file decoded
        #: whole when its syntax is not encapsulated), kept during read_all.
        self._decoded: dict[int, Any] = {}
        self._file_locks: dict[int, threading.Lock] = {}
        #: Per reading thread: the slice-sized buffer raw reads of another item size go to.
        self._scratch = threading.local()
        self._bulk = False
        #: The volume in shared memory when decoder processes will write into it.
        self._shared: SharedVolume | None = None
        if info.kind == "image":
            from viewer.study.formats import read_image

            self.headers: list[FileHeader] = []
            volume = info.volume_index - 1 if info.volume_count > 1 else None  # of a 4D file
            self.volume: Volume = read_image(info.files[0], volume=volume)
            self._done = np.ones(self.volume.shape[0], bool)
            return
        self.headers = list(info.headers) or _read_headers(list(info.files))
        # What the headers declare is checked before anything is allocated.
        check_series_size(self.headers, READ_THREADS, decode_workers())
        try:
            self.layout = plan_series(self.headers)
        except ASSEMBLY_ERRORS as exc:
            raise SeriesAssemblyError(
                self.headers[0].path,
                f"cannot be assembled ({type(exc).__name__}: {exc})",
            ) from None
        first = read_header(self.headers[0].path, keep=True, full=True)
        layout = self.layout
        windows = list(self.headers[0].windows)
        self._invert = self.headers[0].photometric == "MONOCHROME1"
        if self._invert:
            # MONOCHROME1 is stored white-on-black; mirror values (and windows) so that
            # higher always means brighter, like every other greyscale image.
            lo, hi = mirror_range(self.headers[0])
            windows = [(lo + hi - c, w, e) for c, w, e in windows]
        self._rule = StoreRule(
            rgb=layout.rgb,
            saturate=layout.saturate,
            mirror=sum(mirror_range(self.headers[0])) if self._invert and not layout.rgb else None,
        )
        decoded = sum(1 for hi, _ in layout.order if needs_process(self.headers[hi]))
        if min(decode_workers(), decoded) > 1 and decoded >= MIN_PARALLEL_FRAMES:
            nbytes = int(np.prod(layout.shape)) * np.dtype(layout.dtype).itemsize
            if SharedVolume.fits(nbytes):
                self._shared = SharedVolume(layout.shape, np.dtype(layout.dtype))
        self.volume = Volume(
            np.zeros(layout.shape, layout.dtype) if self._shared is None else self._shared.array,
            spacing=layout.spacing,
            origin=layout.origin,
            direction=layout.direction,
            modality=first.modality,
            # A part split from a mixed series keeps its own "#n" key for the label store.
            series_uid=info.series_uid or first.series_uid,
            description=str(first.dataset.get("SeriesDescription", "")) if first.dataset else "",
            windows=windows,
            warnings=list(layout.warnings),
            meta=volume_meta(first.dataset, self.headers, layout),
        )
        self._done = np.zeros(len(layout.order), bool)

    # ---- reading --------------------------------------------------------------------------
    def slice_order(self) -> list[int]:
        """z indices in reading order: the middle slice first, then outwards both ways."""
        n = self.volume.shape[0]
        mid = n // 2
        order = [mid]
        for k in range(1, n):
            for z in (mid + k, mid - k):
                if 0 <= z < n:
                    order.append(z)
        return order[:n]

    def is_read(self, z: int) -> bool:
        return bool(self._done[z])

    def _frame_raw(
        self, h: FileHeader, frame: int, hi: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        dtype = raw_dtype(h)
        if h.pixel_offset is not None and dtype is not None:
            return read_raw(h, frame, dtype, out, self._scratch)
        if h.frames == 1:
            return decode_file(h)
        if not self._bulk:
            # A single slice asked for (the first one on screen): decode only that frame.
            return decode_file(h, frame)
        cached = self._file_data(hi)
        if isinstance(cached, tuple):
            template, frames = cached
            return decode_frame_bytes(h, frame, template, frames[frame])
        return cached[frame]

    def _file_data(self, hi: int) -> tuple[Any, list[bytes]] | np.ndarray:
        """What the frames of multi-frame file ``hi`` are decoded from during read_all, read
        once: its frames' compressed bytes (encapsulated syntaxes: each frame is decoded on
        its own), else the whole file decoded (big-endian, deflated, palette colour)."""
        h = self.headers[hi]
        with self._lock:
            file_lock = self._file_locks.setdefault(hi, threading.Lock())
        with file_lock:  # one thread reads a multi-frame file; the others wait for it
            with self._lock:
                cached = self._decoded.get(hi)
            if cached is None:
                if pydicom.uid.UID(h.transfer_syntax).is_encapsulated:
                    cached = split_frames(h)
                else:
                    cached = decode_file(h)
                with self._lock:
                    self._decoded[hi] = cached
        return cached

    def _needs_decoder(self, z: int) -> bool:
        return needs_decoder(self.headers[self.layout.order[z][0]])

    def _needs_process(self, z: int) -> bool:
        return needs_process(self.headers[self.layout.order[z][0]])

    def _payload(self, z: int) -> Payload | None:
        """What a decoder process needs besides the header to decode slice ``z``."""
        hi, frame = self.layout.order[z]
        if self.headers[hi].frames == 1:
            return None
        cached = self._file_data(hi)
        if not isinstance(cached, tuple):
            return None  # decoded whole already: the parent has the frame
        template, frames = cached
        return template, frames[frame]

    def read_slice(self, z: int) -> None:
        """Read slice ``z`` from its file into ``volume.array`` (rescaled, inverted, RGB)."""
        if self._done[z]:
            return
        hi, frame = self.layout.order[z]
        h = self.headers[hi]
        out = self.volume.array[z]
        raw = self._frame_raw(h, frame, hi, None if self.layout.rgb else out)
        self._store(z, h, raw)

    def _store(self, z: int, h: FileHeader, raw: np.ndarray) -> None:
        """Put a frame's stored values into slice ``z``: rescaled, inverted, or RGB."""
        store_frame(self.volume.array[z], h, raw, self._rule)
        self._done[z] = True

    def read_all(
        self,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
        on_slice: Callable[[int], None] | None = None,
    ) -> Volume:
        """Read every slice not yet read (middle first); raises LoadCancelled when cancelled.

        A slice whose file cannot be decoded stays blank and is named in ``volume.warnings``;
        when no slice at all can be read, the first error is raised.

        ``on_slice(z)`` and ``progress`` are called on the calling thread as slices land.
        """
        todo = [z for z in self.slice_order() if not self._done[z]]
        n = len(self._done)
        stop = threading.Event()
        failures: list[tuple[int, StudyError]] = []
        decoded = sum(1 for z in todo if self._needs_decoder(z))
        in_processes = sum(1 for z in todo if self._needs_process(z))
        workers = min(decode_workers(), in_processes)
        # Compressed frames whose decoder holds the GIL (pylibjpeg, pyjpegls, GDCM through
        # pydicom) go to decoder processes; raw reads, frames decoded without the GIL
        # (imagecodecs) and small series stay on this process's threads.
        use_processes = workers > 1 and in_processes >= MIN_PARALLEL_FRAMES

        def work(z: int) -> tuple[int, StudyError | None]:
            if stop.is_set():
                return -1, None
            try:
                self.read_slice(z)
            except StudyError as exc:
                return z, exc
            return z, None

        def cancelled() -> LoadCancelled:
            stop.set()
            return LoadCancelled(
                self.volume.meta.get("source_files", [None])[0], "loading cancelled by the user"
            )

        def wait(future: Future) -> Any:
            """The future's result; cancel is looked at every CANCEL_POLL_S meanwhile."""
            while True:
                try:
                    return future.result(timeout=CANCEL_POLL_S)
                except FutureTimeout:
                    if cancel is not None and cancel():
                        raise cancelled() from None

        # Decoding on threads is CPU-bound: one thread per usable core, not more.
        gil_free = decoded > in_processes
        threads = ThreadPoolExecutor(
            max(1, min(READ_THREADS, decode_workers())) if gil_free else READ_THREADS
        )
        shared = self._shared if use_processes else None
        decoders = None
        if use_processes and shared is not None:
            # Headers and the volume's block go to each worker once; a task is four ints
            # (and a multi-frame file's frame bytes), its answer an error or None.
            array = self.volume.array
            start = (self.headers, shared.name, array.shape, array.dtype.str, self._rule)
            decoders = DecoderPool(workers, init_worker, start)
        elif use_processes:
            decoders = DecoderPool(workers)
        pending: deque[tuple[int, bool, Future]] = deque()
        queue = iter(todo)
        # One frame in flight per decoder process: the volume plus a frame per worker.
        # Into shared memory a queued task holds no decoded frame: two per worker keep each
        # busy while the parent answers (a worker still decodes one frame at a time).
        window = len(todo) if decoders is None else workers * (2 if shared is not None else 1)

        def submit() -> bool:
            z = next(queue, None)
            if z is None:
                return False
            if decoders is not None and not fallback and self._needs_process(z):
                hi, frame = self.layout.order[z]
                future: Future
                try:
                    if shared is not None:
                        future = decoders.submit_into(z, hi, frame, self._payload(z))
                    else:
                        future = decoders.submit(self.headers[hi], frame, self._payload(z))
                except StudyError as exc:
                    future = Future()
                    future.set_result((exc, 0.0) if shared is not None else (None, exc, 0.0))
                except BrokenProcessPool:
                    return start_failed(z)
                pending.append((z, True, future))
            else:
                pending.append((z, False, threads.submit(work, z)))
            return True

        def start_failed(z: int) -> bool:
            """Decoder processes that die before any frame came back could not start (a
            script without a ``__main__`` guard re-runs itself in them): decode here."""
            fallback.append(True)
            redo = [z] + [p[0] for p in pending if p[1]]
            kept = [p for p in pending if not p[1]]
            pending.clear()
            pending.extend(kept)
            for k in redo:
                pending.append((k, False, threads.submit(work, k)))
            return True

        fallback: list[bool] = []
        decoded_any = False
        self._bulk = True
        cancelled_now = False
        count = 0
        try:
            while len(pending) < window and submit():
                pass
            while pending:
                z, is_decoded, future = pending.popleft()
                try:
                    got = wait(future)
                except LoadCancelled:
                    cancelled_now = True
                    raise
                except BrokenProcessPool:
                    if not decoded_any:
                        start_failed(z)
                        continue
                    h = self.headers[self.layout.order[z][0]]
                    crashed = UnsupportedFormat(h.path, "the pixel decoder crashed on it")
                    got = (crashed, 0.0) if shared is not None else (None, crashed, 0.0)
                if cancel is not None and cancel():
                    cancelled_now = True
                    raise cancelled()
                submit()
                count += 1
                if is_decoded and shared is not None:
                    decoded_any = True
                    error, cpu = got
                    decode.worker_cpu_seconds += cpu
                    if error is None:
                        self._done[z] = True  # the worker wrote it into the shared volume
                elif is_decoded:
                    decoded_any = True
                    arr, error, cpu = got
                    decode.worker_cpu_seconds += cpu
                    if error is None:
                        try:
                            self._store(z, self.headers[self.layout.order[z][0]], arr)
                        except StudyError as exc:
                            error = exc
                else:
                    z, error = got
                    if z < 0:
                        continue
                if error is not None:
                    failures.append((z, error))
                elif on_slice is not None:
                    on_slice(z)
                if progress is not None:
                    done = n - len(todo) + count
                    progress(done / n, f"Loaded slice {done} of {n}")
        finally:
            stop.set()
            # Cancelled: return at once; a slice still being read finishes on its own thread,
            # decoder processes are stopped.
            threads.shutdown(wait=not cancelled_now, cancel_futures=True)
            if decoders is not None:
                if cancelled_now:
                    decoders.terminate()
                else:
                    decoders.close()
            self._bulk = False
            self._decoded.clear()
            if decoders is not None and self._shared is not None:
                # Every worker has mapped it or is gone: the name is no longer needed (and
                # a later read_all decodes the old way).
                self._shared.release()
                self._shared = None
        if failures:
            if not self._done.any():
                raise failures[0][1]
            # One broken file among many: show the rest, say which slices are blank and why.
            for z, error in sorted(failures, key=lambda item: item[0]):
                self.volume.warnings.append(f"slice {z + 1} is blank: {error}")
        return self.volume


def load_series(
    info: SeriesInfo, progress: Progress | None = None, cancel: Cancel | None = None
) -> Volume:
    """The whole series as a Volume (see SeriesReader for the progressive form)."""
    return SeriesReader(info).read_all(progress=progress, cancel=cancel)


__all__ = ["SeriesReader", "load_series", "SeriesAssemblyError"]
