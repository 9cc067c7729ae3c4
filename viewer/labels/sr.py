"""DICOM SR measurement report (TID 1500, Comprehensive 3D SR) through highdicom.sr: ruler
lengths, ROI statistics (area, mean, SD, min, max) and segment volumes (referencing the
export's DICOM-SEG), every region in patient coordinates on the series' frame of reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from radlens_core.errors import UserError
from viewer.labels.dicomseg import _property_codes, with_type2
from viewer.labels.document import Document
from viewer.labels.model import LabelError, Polygon, RoiEllipse, RoiRect, Ruler, plane_point
from viewer.labels.stats import label_measures, roi_stats
from viewer.study.volume import Volume


class SrExportError(LabelError, UserError):
    """A measurement report that cannot be made; the message says why."""


def _lps(volume: Volume, zyx: list[tuple[float, float, float]]) -> np.ndarray:
    return np.asarray([volume.index_to_patient(p) for p in zyx], dtype=float)


def _outline(a: Any) -> tuple[str, list[tuple[float, float, float]]]:
    """(graphic type, (z, y, x) points) of a planar ROI's outline."""
    if isinstance(a, Polygon):
        pts = a.points()
        return "POLYGON", [*pts, pts[0]]
    a0, b0, a1, b1 = a.bounds
    if isinstance(a, RoiEllipse):
        ac, bc = (a0 + a1) / 2, (b0 + b1) / 2
        ends = [(a0, bc), (a1, bc), (ac, b0), (ac, b1)]
        if abs(b1 - b0) > abs(a1 - a0):  # the major axis first
            ends = ends[2:] + ends[:2]
        return "ELLIPSE", [plane_point(a.axis, a.z, u, v) for u, v in ends]
    corners = [(a0, b0), (a0, b1), (a1, b1), (a1, b0), (a0, b0)]
    return "POLYGON", [plane_point(a.axis, a.z, u, v) for u, v in corners]


def _intensity(volume: Volume, derivation: Any, value: float) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if (volume.modality or "").upper() == "CT":
        name = hd.sr.CodedConcept("112031", "DCM", "Attenuation Coefficient")
        unit = codes.UCUM.HounsfieldUnit
    else:
        name, unit = hd.sr.CodedConcept("C0439155", "UMLS", "Image intensity"), codes.UCUM.NoUnits
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, derivation=derivation)


def build_report(
    volume: Volume,
    doc: Document,
    sources: list[Any],
    seg: Any | None = None,
    segments: dict[int, int] | None = None,
) -> tuple[Any, list[str]]:
    """(Comprehensive3DSR, notes). ``sources`` are the series' datasets (de-identified when
    the export is); ``seg`` and ``segments`` ({segment number: label index}) the DICOM-SEG
    the volumes refer to; without one, segment volumes are left out and a note says so."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if not sources:
        raise SrExportError("an SR measurement report needs the source DICOM files of the series")
    for_uid = str(sources[0].get("FrameOfReferenceUID", ""))
    if not for_uid:
        raise SrExportError("the series has no FrameOfReferenceUID: its regions cannot be placed")
    notes: list[str] = []
    groups: list[Any] = []
    for a in doc.annotations.values():
        if a.status == "rejected":
            continue
        name = doc.label_set.get(a.label).name if a.label in doc.label_set else f"label {a.label}"
        tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{a.kind} {a.id}"[:64])
        if isinstance(a, Ruler):
            pts = _lps(volume, a.points())
            region = hd.sr.ImageRegion3D("POLYLINE", pts, for_uid)
            length = hd.sr.Measurement(
                name=codes.SCT.Length,
                value=float(np.linalg.norm(pts[1] - pts[0])),
                unit=codes.UCUM.Millimeter,
            )
            measures = [length]
        elif isinstance(a, (Polygon, RoiRect)):
            graphic, zyx = _outline(a)
            region = hd.sr.ImageRegion3D(graphic, _lps(volume, zyx), for_uid)
            if volume.is_rgb:
                measures = []
            else:
                s = roi_stats(volume, a)
                measures = [
                    hd.sr.Measurement(
                        name=codes.SCT.Area,
                        value=float(s.area_mm2),
                        unit=codes.UCUM.SquareMillimeter,
                    ),
                    _intensity(volume, codes.SCT.Mean, s.mean),
                    _intensity(volume, codes.SCT.StandardDeviation, s.sd),
                    _intensity(volume, codes.SCT.Minimum, s.min),
                    _intensity(volume, codes.SCT.Maximum, s.max),
                ]
        else:
            continue
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                referenced_region=region,
                finding_type=_property_codes(name)[1],
                measurements=measures,
            )
        )
    if seg is not None and segments:
        measures_by_label = label_measures(volume, doc.labelmap.array)
        for number, index in segments.items():
            m = measures_by_label.get(index)
            if not m or "volume_ml" not in m:
                continue
            name = doc.label_set.get(index).name
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=generate_uid(), identifier=f"segment {number} {name}"[:64]
                    ),
                    referenced_segment=hd.sr.ReferencedSegment(
                        sop_class_uid=str(seg.SOPClassUID),
                        sop_instance_uid=str(seg.SOPInstanceUID),
                        segment_number=int(number),
                        source_series=hd.sr.SourceSeriesForSegmentation(
                            str(sources[0].SeriesInstanceUID)
                        ),
                    ),
                    finding_type=_property_codes(name)[1],
                    measurements=[
                        hd.sr.Measurement(
                            name=codes.SCT.Volume,
                            value=float(m["volume_ml"]),
                            unit=hd.sr.CodedConcept("mL", "UCUM", "milliliter"),
                        )
                    ],
                )
            )
    elif doc.labelmap.labels_present():
        notes.append("segment volumes are in the SR only when the DICOM-SEG is exported with it")
    if not groups:
        raise SrExportError("there are no measurements to report (rulers, ROIs or segments)")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="RadLens"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=hd.sr.CodedConcept("P0-0099A", "SRT", "Imaging procedure"),
        imaging_measurements=groups,
    )
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=with_type2(sources) + ([seg] if seg is not None else []),
            content=report,
            series_instance_uid=generate_uid(),
            series_number=902,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="RadLens",
            series_description="RadLens measurements",
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise SrExportError(f"highdicom refused the measurement report: {exc}") from exc
    return sr, notes
