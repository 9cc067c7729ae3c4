"""Where a DICOM-SEG frame lands on a series' (z, y, x) array: by its plane position and
orientation (any axis, any sign, whole voxels only), else by the source instance it
references; and the SEG's frames read fast from native pixel data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from radlens_core.errors import UserError
from viewer.labels.model import LabelError
from viewer.study.volume import Volume


class SegImportError(LabelError, UserError):
    """A DICOM-SEG that cannot be imported onto a series; the message names the file and why."""


def _item(group: Any, keyword: str) -> Any:
    seq = group.get(keyword) if group is not None else None
    return seq[0] if seq else None


class _Placer:
    """Maps frames of one orientation/spacing onto the series array (z, y, x) by slicing."""

    def __init__(self, volume: Volume, iop: Any, spacing: Any, path: Path) -> None:
        self.volume, self.path = volume, path
        row_cos, col_cos = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
        dy, dx = float(spacing[0]), float(spacing[1])
        self.inv = np.linalg.inv(volume.affine_lps)
        inv3 = self.inv[:3, :3]
        steps = [inv3 @ (col_cos * dy), inv3 @ (row_cos * dx)]  # per frame row, per frame column
        self.axes, self.signs = [], []
        for step in steps:
            axis = int(np.argmax(np.abs(step)))
            unit = np.zeros(3)
            unit[axis] = np.sign(step[axis])
            if not np.allclose(step, unit, atol=2e-3):
                raise SegImportError(
                    f"{path}: its frames are not on the series' voxel grid (orientation or pixel "
                    "spacing differs); resample the SEG to the series first"
                )
            self.axes.append(axis)
            self.signs.append(int(unit[axis]))
        if self.axes[0] == self.axes[1]:
            raise SegImportError(f"{path}: its frame orientation is degenerate")
        self.fixed = 3 - sum(self.axes)  # the (x, y, z) axis a frame lies across

    def region(
        self, position: Any, shape: tuple[int, int]
    ) -> tuple[tuple[Any, ...], bool, bool, bool]:
        """(index into the (z, y, x) array, flip rows, flip columns, transpose)."""
        o = self.inv[:3, :3] @ np.asarray(position, float) + self.inv[:3, 3]
        if max(abs(v - round(v)) for v in o.tolist()) > 0.05:
            raise SegImportError(
                f"{self.path}: a frame at {tuple(np.round(position, 2))} mm falls between the "
                "series' voxels; resample the SEG to the series first"
            )
        o = np.round(o).astype(int)
        size = self.volume.shape[::-1]  # (x, y, z)
        index: list[Any] = [None, None, None]
        if not 0 <= o[self.fixed] < size[self.fixed]:
            raise SegImportError(
                f"{self.path}: a frame at {tuple(np.round(position, 2))} mm lies outside the series"
            )
        index[2 - self.fixed] = int(o[self.fixed])
        flips = []
        for axis, sign, n in zip(self.axes, self.signs, shape, strict=True):
            lo = o[axis] if sign > 0 else o[axis] - n + 1
            if lo < 0 or lo + n > size[axis]:
                raise SegImportError(
                    f"{self.path}: a frame at {tuple(np.round(position, 2))} mm extends outside the series"
                )
            index[2 - axis] = slice(int(lo), int(lo + n))
            flips.append(sign < 0)
        transpose = (2 - self.axes[0]) > (2 - self.axes[1])
        return tuple(index), flips[0], flips[1], transpose


def frame_region(
    ds: Any,
    group: Any,
    shared: Any,
    volume: Volume,
    path: Path,
    placers: dict[tuple[Any, ...], _Placer],
    by_sop: dict[str, int],
    frame_index: list[int],
    i: int,
) -> tuple[tuple[Any, ...], bool, bool, bool]:
    """Where frame ``i`` lands: by its plane position and orientation, else by the source
    instance (and frame) it was derived from."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    position = _item(group, "PlanePositionSequence") or _item(shared, "PlanePositionSequence")
    orient = _item(group, "PlaneOrientationSequence") or _item(shared, "PlaneOrientationSequence")
    measures = _item(group, "PixelMeasuresSequence") or _item(shared, "PixelMeasuresSequence")
    if position is not None and orient is not None and measures is not None:
        iop = tuple(float(v) for v in orient.ImageOrientationPatient)
        spacing = tuple(float(v) for v in measures.PixelSpacing)
        key = iop + spacing
        if key not in placers:
            placers[key] = _Placer(volume, iop, spacing, path)
        return placers[key].region([float(v) for v in position.ImagePositionPatient], (rows, cols))
    derivation = _item(group, "DerivationImageSequence")
    source = _item(derivation, "SourceImageSequence")
    if source is not None and str(source.ReferencedSOPInstanceUID) in by_sop:
        uid = str(source.ReferencedSOPInstanceUID)
        frame = int(source.get("ReferencedFrameNumber", 1) or 1) - 1
        candidates = [z for u, z in by_sop.items() if u == uid]
        if frame_index:
            zs = [z for z, u in enumerate(volume.meta["sop_instance_uids"]) if str(u) == uid]
            candidates = [z for z in zs if frame_index[z] == frame] or candidates
        z = candidates[0]
        if (rows, cols) != volume.shape[1:]:
            raise SegImportError(f"{path}: frame {i + 1} does not fit the series' slice size")
        return (z, slice(0, rows), slice(0, cols)), False, False, False
    raise SegImportError(
        f"{path}: frame {i + 1} has neither a plane position nor a source image of this series"
    )


def iter_frames(path: Path, ds: Any, n_frames: int) -> Any:
    """The SEG's frames as (rows, cols) arrays: native 1/8/16-bit pixel data sliced and
    unpacked directly (a 15 000-frame BINARY SEG in seconds), anything else through pydicom."""
    import pydicom
    from pydicom.pixels import iter_pixels

    ts = ds.file_meta.get("TransferSyntaxUID")
    bits = int(ds.get("BitsAllocated", 1))
    if ts is None or ts.is_compressed or not ts.is_little_endian or bits not in (1, 8, 16):
        yield from iter_pixels(str(path))
        return
    full = pydicom.dcmread(str(path))
    rows, cols = int(ds.Rows), int(ds.Columns)
    n = rows * cols
    buf = np.frombuffer(full.PixelData, dtype=np.uint8)
    if bits == 1:
        for i in range(n_frames):
            start = i * n
            b0 = start // 8
            raw = np.unpackbits(buf[b0 : (start + n + 7) // 8], bitorder="little")
            yield raw[start - 8 * b0 : start - 8 * b0 + n].reshape(rows, cols)
        return
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    frames = np.frombuffer(full.PixelData, dtype=dtype, count=n * n_frames)
    yield from frames.reshape(n_frames, rows, cols)


def referenced_sops(ds: Any) -> set[str]:
    """Every SOP Instance UID the SEG's ReferencedSeriesSequence names."""
    out = set()
    for series in ds.get("ReferencedSeriesSequence") or []:
        for inst in series.get("ReferencedInstanceSequence") or []:
            out.add(str(inst.ReferencedSOPInstanceUID))
    return out
