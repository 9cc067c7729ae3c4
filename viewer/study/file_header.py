"""The FileHeader record: one DICOM file's header facts (no pixels), and the sizes it declares."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset


@dataclass(frozen=True)
class FileHeader:
    """Header facts of one DICOM file; positions are per frame (one entry for single-frame)."""

    path: Path
    study_uid: str
    series_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    modality: str
    instance_number: int | None
    rows: int
    cols: int
    frames: int
    samples_per_pixel: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    transfer_syntax: str
    #: Byte offset of the PixelData value for uncompressed little-endian files, else None.
    pixel_offset: int | None
    #: (x, y) column/row spacing in mm, or None when the file gives none.
    pixel_spacing: tuple[float, float] | None
    #: Row and column direction cosines (6 values), or None.
    orientation: tuple[float, ...] | None
    #: ImagePositionPatient per frame; None entries where a frame has none.
    positions: tuple[tuple[float, float, float] | None, ...]
    slope: float = 1.0
    intercept: float = 0.0
    windows: tuple[tuple[float, float, str], ...] = ()
    #: SliceThickness in mm as written (may be absurd: checked by the layout), or None.
    slice_thickness: float | None = None
    #: Why this file is refused before any pixel is read (it declares more memory than the
    #: limit); its per-frame positions are then not expanded. None for a usable header.
    refused: str | None = None
    #: Modality LUT Sequence as (first stored value mapped, output value per stored value
    #: from there); it replaces slope and intercept. None when the file has none.
    modality_lut: tuple[int, tuple[int, ...]] | None = field(
        default=None, compare=False, repr=False
    )
    #: Where ``pixel_spacing`` comes from: "patient" (PixelSpacing), "detector"
    #: (ImagerPixelSpacing), "ultrasound" (SequenceOfUltrasoundRegions) or "none".
    spacing_source: str = "patient"
    #: False for images without patient orientation (US, SC, OT, XC, ophthalmic, or no
    #: ImageOrientationPatient): their rows and columns point nowhere in the patient.
    patient_orientation: bool = True
    #: Time between frames of a cine (FrameTime, or the mean of FrameTimeVector), in ms.
    frame_time_ms: float | None = None
    #: Per frame, the attributes that may tell volumes of one series apart (echo, b-value,
    #: temporal position...), as sorted (name, value) pairs; see ``volume_attributes``.
    frame_attributes: tuple[tuple[tuple[str, Any], ...], ...] = field(
        default=(), compare=False, repr=False
    )
    #: The frames of the file this header stands for when a multi-frame file is split into
    #: volumes (indices into its frames); None means every frame.
    frame_numbers: tuple[int, ...] | None = field(default=None, compare=False)
    #: Which volume of a multi-volume series these frames are ("echo 2, TE 30 ms").
    volume_label: str | None = field(default=None, compare=False)
    #: Its number (1-based) and how many volumes the series holds.
    volume_index: int = field(default=1, compare=False)
    volume_count: int = field(default=1, compare=False)
    #: VOI LUT Sequence's first item as (first mapped value, bits per entry, table); None
    #: when the file has none.
    voi_lut: tuple[int, int, tuple[int, ...]] | None = field(
        default=None, compare=False, repr=False
    )
    #: Byte offset of the encapsulated PixelData value (its first item) of a compressed
    #: file, where decoders read the frames without parsing the file again; else None.
    encapsulated_offset: int | None = field(default=None, compare=False)
    #: The header dataset itself, kept only when asked (first file of a series for metadata).
    dataset: Dataset | None = field(default=None, compare=False, repr=False)

    def without_dataset(self) -> FileHeader:
        """This header without the dataset it kept: a shallow copy (``dataclasses.replace``
        re-runs ``__init__`` over every field, a tenth of a 10,000-file scan)."""
        if self.dataset is None:
            return self
        clone = copy.copy(self)
        object.__setattr__(clone, "dataset", None)  # frozen: set as dataclasses' __init__ does
        return clone

    @property
    def selected_frames(self) -> tuple[int, ...]:
        """The frame indices of the file that belong to this header's series or volume."""
        return self.frame_numbers if self.frame_numbers is not None else tuple(range(self.frames))

    @property
    def has_pixels(self) -> bool:
        return self.rows > 0 and self.cols > 0

    @property
    def size_text(self) -> str:
        return f"{self.cols}×{self.rows}"

    def expected_pixel_bytes(self) -> int:
        return (
            self.rows * self.cols * self.samples_per_pixel * self.frames * self.bits_allocated // 8
        )

    @property
    def decoded_sample_bytes(self) -> int:
        """Bytes per pixel once decoded (all samples; palette colour expands to 16-bit RGB)."""
        return decoded_pixel_bytes(self.samples_per_pixel, self.bits_allocated, self.photometric)

    def decoded_bytes(self) -> int:
        """What decoding every frame of this file allocates, from its header alone."""
        return self.rows * self.cols * self.frames * self.decoded_sample_bytes


def decoded_pixel_bytes(samples: int, bits_allocated: int, photometric: str) -> int:
    """Bytes one pixel takes after decoding (1-bit data is unpacked to one byte)."""
    per_sample = max(1, math.ceil(bits_allocated / 8))
    if photometric == "PALETTE COLOR":
        return 3 * 2  # the LUT is applied first in 16 bits, then narrowed
    return samples * per_sample


def frames_text(frames: int, rows: int, cols: int, samples: int, bits: int) -> str:
    """ "700 frames of 4096×4096 at 16 bits" (what a header declares, for a refusal)."""
    what = f"{frames} frames of {cols}×{rows}" if frames != 1 else f"one image of {cols}×{rows}"
    if samples != 1:
        what += f" with {samples} samples per pixel"
    return f"{what} at {bits} bits"
