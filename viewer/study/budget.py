"""What loading a series will allocate, computed from its headers before anything is allocated.

The volume is (slices × rows × columns × channels) of the output type (after rescale: int16,
float32, RGB uint8...), or of the decoded type when that is wider; loading also holds, for a
moment, a float64 slice per reading thread and one decoded frame per decoder process, and a
multi-frame file whose syntax is not encapsulated (big-endian, deflated) decoded whole (an
encapsulated one is decoded frame by frame: viewer.study.decode).
Every transfer syntax counts what the header declares (NumberOfFrames, Rows, Columns), never
the file's size: a 142 KB JPEG 2000 file may declare 21.9 GiB of pixels.
"""

from __future__ import annotations

import numpy as np
import pydicom

from radlens_core.limits import refusal
from viewer.study.errors import TooLarge
from viewer.study.headers import FileHeader, frames_text
from viewer.study.layout import COLOUR_PHOTOMETRICS, output_dtype


def series_bytes(headers: list[FileHeader], threads: int = 1, workers: int = 0) -> tuple[int, int]:
    """(declared, peak) bytes of loading ``headers`` as one volume."""
    voxels = sum(h.rows * h.cols * h.frames for h in headers)
    rgb = any(h.photometric in COLOUR_PHOTOMETRICS for h in headers)
    dtype = np.dtype(np.uint8) if rgb else output_dtype(headers)[0]
    out_px = dtype.itemsize * (3 if rgb else 1)
    decoded_px = max(h.decoded_sample_bytes for h in headers)
    declared = voxels * max(out_px, decoded_px)
    whole_file = max(
        (
            h.decoded_bytes()
            for h in headers
            if h.pixel_offset is None
            and h.frames > 1
            and not pydicom.uid.UID(h.transfer_syntax).is_encapsulated
        ),
        default=0,
    )
    slices = sum(h.frames for h in headers)
    largest_slice = max(h.rows * h.cols * max(1, h.samples_per_pixel) for h in headers)
    # raw * float64(slope) + intercept: two float64 temporaries per thread while rescaling.
    rescale = min(threads, slices) * largest_slice * 16
    # Frames decoded by decoder processes wait here, one per worker, until stored.
    in_flight = min(workers, slices) * max(
        h.rows * h.cols * h.decoded_sample_bytes for h in headers
    )
    return declared, declared + whole_file + rescale + in_flight


def check_series_size(headers: list[FileHeader], threads: int = 1, workers: int = 0) -> None:
    """Raise TooLarge naming the file when loading ``headers`` would exceed the memory limit."""
    if not headers:
        return
    for h in headers:
        if h.refused is not None:
            raise TooLarge(h.path, h.refused)
    declared, peak = series_bytes(headers, threads, workers)
    first = headers[0]
    if len(headers) == 1:
        what = frames_text(
            first.frames, first.rows, first.cols, first.samples_per_pixel, first.bits_allocated
        )
    else:
        slices = sum(h.frames for h in headers)
        what = (
            f"{slices} slices of {first.cols}×{first.rows} at {first.bits_allocated} bits "
            f"in {len(headers)} files"
        )
    reason = refusal(declared, what, peak)
    if reason is not None:
        raise TooLarge(first.path, ("this series " if len(headers) > 1 else "") + reason)
