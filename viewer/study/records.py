"""What a folder scan finds: its series (from headers only), the files it skipped, and the
callback types a scan takes. Plain records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radlens_core.progress import CancelCheck as Cancel
from radlens_core.progress import Progress
from viewer.study.headers import FileHeader

__all__ = ["Cancel", "Progress", "ScanResult", "SeriesInfo", "SkippedFile"]


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": str(self.path), "reason": self.reason}


@dataclass
class SeriesInfo:
    #: SeriesInstanceUID; a part split from a mixed series gets "#<n>" appended (n >= 2).
    series_uid: str
    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    study_description: str
    modality: str
    description: str
    series_number: int | None
    n_images: int
    rows: int
    cols: int
    files: list[Path]
    kind: str = "dicom"  # "dicom" | "image" | "non-image"
    problems: list[str] = field(default_factory=list)
    #: (z, y, x) when the series can be assembled, else None.
    shape: tuple[int, int, int] | None = None
    #: (x, y, z) in mm when known.
    spacing: tuple[float, float, float] | None = None
    #: False when the series cannot be opened as a volume (problems say why).
    loadable: bool = True
    #: Of a series that holds several volumes (phases, echoes, b-values...): this volume's
    #: number (1-based), how many there are, and what tells it apart ("echo 2, TE 30 ms").
    #: A single-volume series has 1, 1 and None.
    volume_index: int = 1
    volume_count: int = 1
    volume_label: str | None = None
    #: The key shared by every volume of one series (its SeriesInstanceUID, or a file's hash)
    #: and whether those volumes follow one another in time (playable); "" for one volume.
    volume_group: str = ""
    time_series: bool = False
    #: How many exact copies (same SOP Instance UID, or same position and pixels) were ignored.
    duplicates: int = 0
    #: Headers already read by the scan, so opening the series does not read them again.
    headers: list[FileHeader] = field(default_factory=list, repr=False, compare=False)

    @property
    def volume_text(self) -> str:
        """ "Volume 2/5 — echo 2, TE 30 ms" for a volume of a multi-volume series, else ""."""
        if self.volume_count <= 1:
            return ""
        text = f"Volume {self.volume_index}/{self.volume_count}"
        return f"{text} — {self.volume_label}" if self.volume_label else text

    def to_json(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "study_uid": self.study_uid,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "study_date": self.study_date,
            "study_description": self.study_description,
            "modality": self.modality,
            "description": self.description,
            "series_number": self.series_number,
            "n_images": self.n_images,
            "rows": self.rows,
            "cols": self.cols,
            "shape": list(self.shape) if self.shape else None,
            "spacing_mm": [round(s, 6) for s in self.spacing] if self.spacing else None,
            "kind": self.kind,
            "loadable": self.loadable,
            "problems": list(self.problems),
            "volume": (
                {
                    "index": self.volume_index,
                    "count": self.volume_count,
                    "label": self.volume_label,
                    "group": self.volume_group,
                    "time_series": self.time_series,
                }
                if self.volume_count > 1
                else None
            ),
            "duplicates_ignored": self.duplicates,
            "files": [str(p) for p in self.files],
        }


@dataclass
class ScanResult:
    root: Path
    series: list[SeriesInfo]
    skipped: list[SkippedFile]
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "cancelled": self.cancelled,
            "series": [s.to_json() for s in self.series],
            "skipped": [s.to_json() for s in self.skipped],
        }
