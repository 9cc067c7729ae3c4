"""Decoding compressed frames (JPEG, JPEG 2000, JPEG-LS, RLE...), in this process or in a
pool of decoder processes.

pydicom's decoders for these syntaxes mostly hold the GIL while they decode (measured on
512×512 frames with two threads against one: pylibjpeg-openjpeg 0.8×, pyjpegls 0.9×,
pylibjpeg RLE 1.0×; only GDCM releases it, and it is the slowest for JPEG 2000), so
threads do not make a series decode faster: processes do. A worker decodes one frame at a
time and sends it back; the parent rescales it into the volume. A single-frame file is
read by the worker itself (by path, with the same regular-file and size checks); the
frames of a multi-frame file are cut from its encapsulated data once by the parent and
sent with the file's pixel description, so no process ever decodes a whole file at once.
The parent keeps at most one frame in flight per worker: a load holds the volume, one
decoded frame per worker and, for a multi-frame file, its compressed bytes.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames, get_frame

from viewer.study.codestream import frame_size
from viewer.study.dataset import read_dataset
from viewer.study.errors import StudyError, UnsupportedFormat
from viewer.study.frame_codecs import decode_codestream, decode_file_direct
from viewer.study.headers import FileHeader
from viewer.study.opening import open_regular

#: Environment variable: how many decoder processes a compressed series load may use
#: (1 decodes in the loading process itself). Default: the cores this process may run on.
WORKERS_ENV = "RADLENS_DECODE_WORKERS"
#: Fewer compressed frames than this are decoded in the loading process (starting
#: workers would cost more than it saves).
MIN_PARALLEL_FRAMES = 8
#: What pydicom's reader and decoders raise on damaged pixel data (TypeError included:
#: pydicom words a truncated file with a message that itself fails on an opened descriptor).
DECODE_ERRORS = (OSError, ValueError, EOFError, AttributeError, KeyError, IndexError, TypeError)

#: A multi-frame file's pixel description (group 0028, one frame) and one frame's bytes.
Payload = tuple[Dataset, bytes]


def decode_workers() -> int:
    """Decoder processes for one load: RADLENS_DECODE_WORKERS, else the usable cores."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        try:
            return max(1, min(64, int(value)))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A decoder's (often multi-line) message as one short line for a status bar."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_frame(h: FileHeader, data: bytes, k: int) -> None:
    size = frame_size(data, h.transfer_syntax)
    if size is not None and size[:2] != (h.rows, h.cols):
        raise UnsupportedFormat(
            h.path,
            f"frame {k + 1}'s compressed data declares {size[1]}×{size[0]} pixels but "
            f"the header says {h.cols}×{h.rows}: not decoded",
        )


def check_declared(h: FileHeader, ds: Any, frame: int | None) -> None:
    """Refuse to decode pixels that would not be what the scan measured: a header changed on
    disk since, or a compressed frame whose own codestream declares another size (decoders
    allocate what the codestream says)."""
    now = (
        int(ds.get("Rows", 0) or 0),
        int(ds.get("Columns", 0) or 0),
        int(ds.get("NumberOfFrames", 1) or 1),
        int(ds.get("SamplesPerPixel", 1) or 1),
        int(ds.get("BitsAllocated", 16) or 16),
    )
    if now != (h.rows, h.cols, h.frames, h.samples_per_pixel, h.bits_allocated):
        raise UnsupportedFormat(
            h.path, "the file changed on disk since the folder was scanned; scan it again"
        )
    if not pydicom.uid.UID(h.transfer_syntax).is_encapsulated or "PixelData" not in ds:
        return
    try:
        if frame is None:
            frames = enumerate(generate_frames(ds.PixelData, number_of_frames=h.frames))
        else:
            frames = iter([(frame, get_frame(ds.PixelData, frame, number_of_frames=h.frames))])
        for k, data in frames:
            _check_frame(h, data, k)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError):
        return  # fragments pydicom's own decoders may still sort out: let them say


#: The fastest installed lossless decoder per syntax family, measured on 512×512 CT frames
#: (ms per frame: JPEG 2000 pylibjpeg 32, pillow 35, gdcm 36; JPEG-LS pyjpegls 5.2, gdcm
#: 7.1, pylibjpeg 22; JPEG lossless gdcm 6.2, pylibjpeg 10.6). pydicom's own order is used
#: when the preferred one is not installed or fails on a frame.
PREFERRED_DECODERS = {
    **{f"1.2.840.10008.1.2.4.{n}": "pylibjpeg" for n in (90, 91)},
    **{f"1.2.840.10008.1.2.4.{n}": "pyjpegls" for n in (80, 81)},
    **{f"1.2.840.10008.1.2.4.{n}": "gdcm" for n in (57, 70)},
}


def _pixels(ds: Dataset, syntax: str, frame: int | None) -> np.ndarray:
    plugin = PREFERRED_DECODERS.get(syntax)
    if plugin is not None and plugin in _available(syntax):
        try:
            return pydicom.pixels.pixel_array(ds, index=frame, decoding_plugin=plugin)
        except (RuntimeError, ValueError, NotImplementedError):
            pass  # the other decoders may still read it; they word the damage otherwise
    return ds.pixel_array if frame is None else pydicom.pixels.pixel_array(ds, index=frame)


_AVAILABLE: dict[str, frozenset[str]] = {}


def _available(syntax: str) -> frozenset[str]:
    if syntax not in _AVAILABLE:
        from pydicom.pixels.decoders.base import get_decoder

        try:
            _AVAILABLE[syntax] = frozenset(get_decoder(syntax).available_plugins)
        except (NotImplementedError, ValueError):
            _AVAILABLE[syntax] = frozenset()
    return _AVAILABLE[syntax]


def _finish(h: FileHeader, arr: np.ndarray, ds: Dataset) -> np.ndarray:
    if h.photometric == "PALETTE COLOR":
        arr = pydicom.pixels.apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)  # 16-bit LUT entries -> 8-bit RGB
    return arr


def _decoding(h: FileHeader, exc: BaseException) -> StudyError:
    if isinstance(exc, (NotImplementedError, RuntimeError)):
        return UnsupportedFormat(
            h.path,
            f"cannot decode pixels stored as {pydicom.uid.UID(h.transfer_syntax).name} "
            f"({one_line(exc)})",
        )
    return UnsupportedFormat(h.path, f"damaged pixel data ({one_line(exc)})")


def decode_file(h: FileHeader, frame: int | None = None) -> np.ndarray:
    """Pixels of the whole file, or one frame of a multi-frame: a plain single-frame file
    straight from its codestream (viewer.study.frame_codecs), anything else through
    pydicom's handlers."""
    if frame is None and h.frames == 1 and h.encapsulated_offset is not None:
        try:
            arr = decode_file_direct(h)
        except (StudyError, OSError):
            arr = None  # pydicom's path reads it again and words what is wrong
        if arr is not None:
            return arr
    try:
        with open_regular(h.path) as fp:
            ds = read_dataset(h.path, fp, stop_before_pixels=False)
        check_declared(h, ds, frame)
        arr = _pixels(ds, h.transfer_syntax, frame)
        return _finish(h, arr, ds)
    except (NotImplementedError, RuntimeError, *DECODE_ERRORS) as exc:
        raise _decoding(h, exc) from None


def split_frames(h: FileHeader) -> tuple[Dataset, list[bytes]]:
    """A multi-frame compressed file as (its pixel description for one frame, each frame's
    compressed bytes): read once, so each frame can be decoded on its own."""
    try:
        with open_regular(h.path) as fp:
            ds = read_dataset(h.path, fp, stop_before_pixels=False)
        check_declared(h, ds, None)
        frames = list(generate_frames(ds.PixelData, number_of_frames=h.frames))
    except (NotImplementedError, RuntimeError, *DECODE_ERRORS) as exc:
        raise _decoding(h, exc) from None
    if len(frames) != h.frames:
        raise UnsupportedFormat(
            h.path, f"its pixel data holds {len(frames)} frames, the header says {h.frames}"
        )
    template = Dataset()
    for elem in ds.group_dataset(0x0028):
        template.add(elem)
    template.NumberOfFrames = 1
    template.file_meta = FileMetaDataset()
    template.file_meta.TransferSyntaxUID = h.transfer_syntax
    return template, frames


def decode_frame_bytes(h: FileHeader, k: int, template: Dataset, data: bytes) -> np.ndarray:
    """Frame ``k`` of a multi-frame file from its own compressed bytes (see split_frames)."""
    _check_frame(h, data, k)
    direct = decode_codestream(h, data)
    if direct is not None:
        return direct
    # A dataset of its own: Dataset(template) would share the template's element dict, and
    # reading threads decode frames of one file at the same time.
    ds = Dataset({elem.tag: elem for elem in template})
    ds.file_meta = template.file_meta
    ds.PixelData = encapsulate([data])
    ds["PixelData"].VR = "OB"
    try:
        return _finish(h, _pixels(ds, h.transfer_syntax, None), ds)
    except (NotImplementedError, RuntimeError, *DECODE_ERRORS) as exc:
        raise _decoding(h, exc) from None


#: CPU seconds decoder processes spent on the frames of this process's loads (a benchmark
#: adds them to the loading process's own to count the whole work).
worker_cpu_seconds = 0.0


def decode_task(
    h: FileHeader, frame: int, payload: Payload | None
) -> tuple[np.ndarray | None, StudyError | None, float]:
    """What a decoder process runs: (frame, None, cpu) or (None, the error naming the file,
    cpu), cpu being the seconds of CPU it took."""
    start = time.process_time()
    try:
        if payload is None:
            arr = decode_file(h, frame if h.frames > 1 else None)
        else:
            arr = decode_frame_bytes(h, frame, *payload)
    except StudyError as exc:
        return None, exc, time.process_time() - start
    except Exception as exc:  # noqa: BLE001 - a worker answers with a sentence, never a traceback
        error = UnsupportedFormat(h.path, f"damaged pixel data ({one_line(exc)})")
        return None, error, time.process_time() - start
    return arr, None, time.process_time() - start


_SERVER_LOCK = threading.Lock()


def _start_fork_server() -> None:
    """Start the fork server able to import this package. It is a fresh interpreter that
    gets the environment, not this process's ``sys.path`` (a script or test that put the
    package on ``sys.path`` itself would leave every worker unable to unpickle its task),
    so the folder holding ``viewer`` is put on its PYTHONPATH while it starts."""
    from multiprocessing import forkserver

    package_root = str(Path(__file__).resolve().parents[2])
    with _SERVER_LOCK:
        before = os.environ.get("PYTHONPATH")
        parts = before.split(os.pathsep) if before else []
        if package_root not in parts:
            os.environ["PYTHONPATH"] = os.pathsep.join([package_root, *parts])
        try:
            forkserver.ensure_running()
        finally:
            if before is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = before


class DecoderPool:
    """Decoder processes for one load, forked from a fork server (never from the loading
    process, which runs Qt and reading threads; forking those is unsafe)."""

    def __init__(
        self, workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()
    ) -> None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else None
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            # Workers fork from a server that has imported pydicom, numpy and the decoders.
            context.set_forkserver_preload(["viewer.study.decoder_preload"])
            _start_fork_server()
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            workers, mp_context=context, initializer=initializer, initargs=initargs
        )

    def submit(
        self, h: FileHeader, frame: int, payload: Payload | None
    ) -> Future[tuple[np.ndarray | None, StudyError | None, float]]:
        return self._executor.submit(decode_task, h, frame, payload)

    def submit_into(
        self, z: int, hi: int, frame: int, payload: Payload | None
    ) -> Future[tuple[StudyError | None, float]]:
        """Decode into slice ``z`` of the shared volume the pool was started with."""
        from viewer.study.shared_volume import decode_into

        return self._executor.submit(decode_into, z, hi, frame, payload)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def terminate(self) -> None:
        """Stop at once: queued frames are dropped and running decoders killed."""
        processes = list(getattr(self._executor, "_processes", {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        # ProcessPoolExecutor has no public way to stop a running task before Python 3.14
        # (terminate_workers); its process table is the only handle on the workers.
        for p in processes:
            p.terminate()
        for p in processes:
            p.join(1.0)
