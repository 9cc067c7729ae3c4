"""What a length on the screen means: millimetres in the patient, millimetres at the detector,
millimetres from an ultrasound region, or plain pixels when the file calibrates nothing.

Every measurement text (ruler, box size, ROI area, scale bar) asks ``Calibration.of(volume)``
so an uncalibrated image is never measured in "mm". Qt-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from viewer.study.facts import spacing_source
from viewer.study.volume import Volume

#: The words after a length, per spacing source.
_QUALIFIER = {
    "patient": "",
    "detector": " at detector",
    "ultrasound": "",
    "none": "",
}


@dataclass(frozen=True)
class Calibration:
    """How a volume's voxel steps become lengths: ``source`` is one of
    ``viewer.study.facts.SPACING_SOURCES``; ``spacing_zyx`` the mm per voxel step."""

    source: str = "patient"
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def of(cls, volume: Volume | None) -> Calibration:
        if volume is None:
            return cls()
        sx, sy, sz = volume.spacing
        return cls(spacing_source(volume), (sz, sy, sx))

    @property
    def calibrated(self) -> bool:
        """Whether lengths can be given in millimetres at all."""
        return self.source != "none"

    @property
    def unit(self) -> str:
        return "mm" if self.calibrated else "px"

    @property
    def area_unit(self) -> str:
        return "mm²" if self.calibrated else "px²"

    @property
    def qualifier(self) -> str:
        """Words after a length that say where it was measured (" at detector")."""
        return _QUALIFIER.get(self.source, "")

    @property
    def note(self) -> str:
        """One sentence for a tooltip or an info panel."""
        return {
            "patient": "Lengths in millimetres in the patient (PixelSpacing).",
            "detector": (
                "Lengths in millimetres at the detector (ImagerPixelSpacing): the patient is "
                "magnified, so true sizes are smaller."
            ),
            "ultrasound": "Lengths in millimetres from the ultrasound region calibration.",
            "none": "This image states no pixel spacing: lengths and areas are in pixels.",
        }.get(self.source, "")

    # ---- lengths -------------------------------------------------------------------------
    def length(self, step_zyx: Sequence[float]) -> float:
        """Length of a (dz, dy, dx) voxel step: mm when calibrated, else pixels."""
        d = np.asarray(step_zyx, dtype=float)
        if self.calibrated:
            d = d * np.asarray(self.spacing_zyx)
        return float(np.sqrt(np.sum(d * d)))

    def length_between(self, a_zyx: Sequence[float], b_zyx: Sequence[float]) -> float:
        return self.length(np.asarray(b_zyx, dtype=float) - np.asarray(a_zyx, dtype=float))

    def length_text(self, value: float, digits: int = 1) -> str:
        """``value`` (from ``length``) with its unit: "12.3 mm", "12.3 mm at detector", "175 px"."""
        if not self.calibrated:
            return f"{value:.0f} px" if digits <= 1 and value >= 100 else f"{value:.{digits}f} px"
        return f"{value:.{digits}f} mm{self.qualifier}"

    def ruler_text(self, a_zyx: Sequence[float], b_zyx: Sequence[float]) -> str:
        return self.length_text(self.length_between(a_zyx, b_zyx))

    def size_text(self, rows: float, cols: float, pixel_mm: tuple[float, float]) -> str:
        """ "w × h mm" of a drag over ``rows`` × ``cols`` pixels of a plane with ``pixel_mm``."""
        if not self.calibrated:
            return f"{abs(cols):.0f} × {abs(rows):.0f} px"
        w, h = abs(cols) * pixel_mm[1], abs(rows) * pixel_mm[0]
        return f"{w:.1f} × {h:.1f} mm{self.qualifier}"

    def area_text(self, pixels: int, pixel_mm2: float) -> str:
        """Area of ``pixels`` pixels of ``pixel_mm2`` each."""
        if not self.calibrated:
            return f"{pixels} px²"
        return f"{pixels * pixel_mm2:.1f} mm²{self.qualifier}"

    # ---- the scale bar -------------------------------------------------------------------
    def scale_per_screen_pixel(self, scene_per_screen_px: float, mm_per_pixel: float) -> float:
        """Units (mm or image pixels) per screen pixel, for a view whose scene is in mm and
        whose image pixels are ``mm_per_pixel`` wide."""
        if self.calibrated:
            return scene_per_screen_px
        return scene_per_screen_px / mm_per_pixel if mm_per_pixel > 0 else 0.0
