"""What `radlens analyze` and `radlens batch` share: the model pick, findings.json, the NIfTI
outputs and the DICOM-SEG of one analysis run (one implementation, two commands)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radlens_core.admission import Admission
from radlens_core.errors import UserError
from radlens_core.files import atomic_write_bytes, atomic_write_text
from radlens_core.results import AnalysisResult, Box
from viewer.study.facts import series_facts

if TYPE_CHECKING:
    from viewer.study.volume import Volume

#: A heat map is written without --heatmap up to this many voxels (64 MB as float32): the
#: demo's is, a 300 x 512 x 512 CT's (315 MB, seconds to compress) only when asked.
HEATMAP_AUTO_VOXELS = 2**24
#: gzip level of the NIfTI outputs: 1 compresses a label map nearly as well as 6 (long runs
#: of one value) in a fraction of the time; any reader decompresses every level alike.
GZIP_LEVEL = 1


class AnalyzeError(UserError):
    """A problem the user can fix (which series, which model, where to write)."""


class ModelNotMeant(AnalyzeError):
    """The model asked for does not admit the series (its card's reasons in ``reasons``)."""

    def __init__(self, message: str, model_id: str, reasons: Sequence[str]) -> None:
        super().__init__(message)
        self.model_id = model_id
        self.reasons = tuple(reasons)


class NoModelMeant(AnalyzeError):
    """No installed model admits the series; ``offers`` hold each model's reasons."""

    def __init__(self, message: str, modality: str, dims: int, offers: Sequence[Admission]):
        super().__init__(message)
        self.modality = modality
        self.dims = dims
        self.offers = tuple(offers)

    def one_line(self) -> str:
        """The refusal as one sentence (a batch manifest's reason)."""
        why = "; ".join(f"{a.model_id}: {'; '.join(a.reasons)}" for a in self.offers)
        return f"no installed model is meant for this {self.modality} {self.dims}D series" + (
            f" ({why})" if why else " (no model is installed)"
        )


def _why_not(admissions: Sequence[Admission]) -> str:
    return "\n".join(f"  {a.model_id} ({a.model_name}): {'; '.join(a.reasons)}" for a in admissions)


def _named(model: str, cards: Sequence[Any] | None) -> Any:
    from inference import registry

    if cards is None:
        try:
            return registry.find_model(model)
        except KeyError as exc:
            raise AnalyzeError(exc.args[0]) from None
    wanted, _, version = model.partition("@")
    for card in cards:
        if card.id == wanted and version in ("", card.version):
            return card
    have = ", ".join(f"{c.id}@{c.version}" for c in cards) or "none installed"
    raise AnalyzeError(f"no usable model package {model!r} (installed: {have})")


def pick_model(
    volume: Volume,
    modality: str,
    model: str | None = None,
    outside_intended_use: bool = False,
    modality_given: bool = False,
    cards: Sequence[Any] | None = None,
) -> tuple[Any, bool]:
    """(card, outside intended use) for this series: ``model`` (id or id@version) when its
    card admits the series or the user overrode (``outside_intended_use``), else the best
    admitted verified model. ``cards``: choose among these (a batch worker's verified cards)
    instead of the installed packages. A series whose file names no modality ("OT", and not
    ``modality_given``) is judged as the named model's first modality.

    Raises ModelNotMeant (the named model does not admit it), NoModelMeant (none does),
    AnalyzeError (no such model, or an override without a model)."""
    from inference import registry

    if model:
        card = _named(model, cards)
        if modality == "OT" and not modality_given:
            modality = card.modalities[0]  # the file names none; analysed as the model's
        adm = registry.admission(card, series_facts(volume, modality))
        if adm.admitted:
            return card, False
        if not outside_intended_use:
            raise ModelNotMeant(
                f"model {card.id!r} is not meant for this series: {'; '.join(adm.reasons)}."
                " To run it anyway, add --outside-intended-use (the findings are then marked"
                " 'outside intended use')",
                card.id,
                adm.reasons,
            )
        return card, True
    if outside_intended_use:
        raise AnalyzeError("--outside-intended-use needs --model: name the model to run anyway")
    facts = series_facts(volume, modality)
    card = registry.best_model(facts, entries=cards)
    if card is None:
        hint = " (this file names no modality: add e.g. --modality CT)" if modality == "OT" else ""
        offers = registry.offer(facts, entries=cards)
        listing = _why_not(offers) if offers else "  (no model is installed)"
        raise NoModelMeant(
            f"no installed model is meant for this {modality} {facts.spatial_dims}D series"
            f"{hint}; each installed model and why it does not fit:\n{listing}\n"
            "Run one anyway with --model ID --outside-intended-use; see `radlens models`",
            modality,
            facts.spatial_dims,
            offers,
        )
    return card, False


def box_json(box: Box, volume: Volume) -> dict[str, Any]:
    """A core ``Box`` with voxel and LPS corners; a 2D box lies on slice 0 (z = 0)."""
    lo_zyx, hi_zyx = box.corners_zyx()
    lo, hi = np.array(lo_zyx), np.array(hi_zyx)
    centre = (lo + hi) / 2.0
    return {
        "label": box.label,
        "score": round(box.score, 4),
        "corners_voxel_zyx": [round(float(v), 2) for v in (*lo_zyx, *hi_zyx)],
        "center_voxel_zyx": [round(float(v), 2) for v in centre],
        "center_lps_mm": [round(float(v), 2) for v in volume.index_to_patient(centre)],
        "corners_lps_mm": [
            [round(float(v), 2) for v in volume.index_to_patient(p)] for p in (lo, hi)
        ],
    }


def findings_json(
    path: Path, volume: Volume, modality: str, card: Any, result: AnalysisResult
) -> dict[str, Any]:
    """Everything the analysis found, with voxel and patient (LPS mm) coordinates, built
    from the core result records' fields (``card`` is the ``inference.card.ModelCard``)."""
    # Core boxes whichever engine build answered (a no-op copy once it returns core records).
    boxes = [Box(b.corners, b.label, b.score) for b in result.boxes]
    data: dict[str, Any] = {
        "source": str(path),
        "series_uid": volume.series_uid,
        "modality": modality,
        "model": {
            "id": card.id,
            "version": card.version,
            "name": card.name,
            "task": card.task,
            "trained_on": card.training.get("data", ""),
        },
        "intended_use": card.intended_use,
        "device": result.device,
        "precision": result.precision,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "geometry": {
            "shape_zyx": list(volume.shape),
            "spacing_xyz_mm": list(volume.spacing),
            "origin_lps_mm": list(volume.origin),
            "direction": np.asarray(volume.direction).tolist(),
        },
        "boxes": [box_json(b, volume) for b in boxes],
        "warnings": list(volume.warnings) + list(result.warnings),
        "files": {},
    }
    # The run's trust marks, exactly as the core summary spells them.
    summary = result.summary()
    for key in ("outside_intended_use", "flags", "ood_score", "ood_range"):
        data[key] = summary[key]
    if result.classification is not None:
        data["probabilities"] = {
            k: round(v, 5) for k, v in result.classification.probabilities.items()
        }
    if result.label_map is not None:
        data["volumes_ml"] = {k: round(v, 3) for k, v in result.label_map.volumes_ml.items()}
        data["labels"] = [
            {"index": e.index, "name": e.name, "color": e.color} for e in result.label_map.labels
        ]
    return data


def findings_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def nifti_gz(array: np.ndarray, volume: Volume) -> bytes:
    """``array`` on the series grid as .nii.gz bytes, compressed at ``GZIP_LEVEL`` (zlib
    releases the interpreter lock: several of these run in parallel threads)."""
    import gzip

    from radlens_core.nifti import nifti_bytes

    raw = nifti_bytes(array.reshape(volume.shape), volume.grid, compress=False)
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def check_orthogonal(volume: Volume) -> None:
    d = np.asarray(volume.direction, float)
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise AnalyzeError(
            "this volume is sheared (gantry tilt): NIfTI needs an orthogonal grid, so the mask"
            " cannot be written; findings.json holds the boxes and volumes"
        )


def output_images(
    volume: Volume,
    data: dict[str, Any],
    result: AnalysisResult,
    heatmap: bool | None = None,
    heatmap_limit: int = HEATMAP_AUTO_VOXELS,
) -> dict[str, np.ndarray]:
    """{"mask" | "heatmap": array} to write as NIfTI: the heat map when ``heatmap``, or when
    None and it has at most ``heatmap_limit`` voxels (``data`` then says why not)."""
    images: dict[str, np.ndarray] = {}
    if result.label_map is not None:
        images["mask"] = result.label_map.array
    if result.heat_map is not None:
        size = int(result.heat_map.array.size)
        if heatmap or (heatmap is None and size <= heatmap_limit):
            images["heatmap"] = result.heat_map.array.astype(np.float32, copy=False)
        else:
            data["heatmap_not_written"] = (
                f"the heat map has {size:,} voxels; add --heatmap to write it"
            )
    if images:
        check_orthogonal(volume)
    return images


def encode_images(images: dict[str, np.ndarray], volume: Volume) -> dict[str, bytes]:
    """{file name: .nii.gz bytes} of ``output_images``, compressed in parallel threads."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, len(images))) as pool:
        done = {n: pool.submit(nifti_gz, a, volume) for n, a in images.items()}
        return {f"{n}.nii.gz": f.result() for n, f in done.items()}


def write_outputs(
    out: Path,
    volume: Volume,
    data: dict[str, Any],
    result: AnalysisResult,
    overwrite: bool,
    heatmap: bool | None = None,
    heatmap_limit: int = HEATMAP_AUTO_VOXELS,
) -> None:
    """mask.nii.gz, heatmap.nii.gz (when ``heatmap``, or None and it is small) and
    findings.json, each written atomically; the two images compress in parallel."""
    images = output_images(volume, data, result, heatmap, heatmap_limit)
    for name in images:
        target = out / f"{name}.nii.gz"
        if target.exists() and not overwrite:
            raise AnalyzeError(f"{target}: already exists; use --overwrite or another --out")
    for file_name, payload in encode_images(images, volume).items():
        atomic_write_bytes(out / file_name, payload)
        data["files"][file_name.split(".")[0]] = file_name
    atomic_write_text(out / "findings.json", findings_bytes(data).decode("utf-8"))


# -- DICOM-SEG --------------------------------------------------------------------------------
def seg_uids(source_series_uid: str, model_id: str, model_version: str) -> tuple[str, str]:
    """(Series, SOP Instance UID) of the SEG of ``model_id@model_version`` on a source series:
    derived from them (pydicom ``generate_uid`` with these as entropy), so re-running the same
    model on the same series and sending again replaces the SEG on the PACS, never adds one."""
    from pydicom.uid import generate_uid

    what = "\x1f".join((source_series_uid, model_id, model_version))
    return (
        str(generate_uid(entropy_srcs=[f"radlens-seg-series\x1f{what}"])),
        str(generate_uid(entropy_srcs=[f"radlens-seg-instance\x1f{what}"])),
    )


def analysis_seg(volume: Volume, result: AnalysisResult) -> Any:
    """The run's label map as a LABELMAP DICOM-SEG dataset (AUTOMATIC, algorithm = model id
    and version, UIDs from ``seg_uids``). Raises SegExportError / LabelError (a sentence)
    when the run has no label map or the source cannot give a SEG."""
    from viewer.labels.dicomseg import Algorithm, SegExportError, build_segmentation, read_sources
    from viewer.labels.model import LabelSet, annotation_class

    if result.label_map is None:
        raise SegExportError(
            f"{result.model_id} makes no label map: there is nothing to write as DICOM-SEG"
        )
    table = LabelSet(
        tuple(annotation_class(c.index, c.name, c.color) for c in result.label_map.labels)
    )
    version = result.run.model_version
    series_uid, sop_uid = seg_uids(volume.series_uid, result.model_id, version)
    seg, _ = build_segmentation(
        volume,
        result.label_map.array.reshape(volume.shape),
        table,
        read_sources(volume),
        Algorithm("AUTOMATIC", result.model_id, version),
        series_uid=series_uid,
        sop_uid=sop_uid,
    )
    return seg


def seg_bytes(volume: Volume, result: AnalysisResult) -> bytes:
    """``analysis_seg`` as the bytes of a DICOM file (Part 10)."""
    import io

    buffer = io.BytesIO()
    analysis_seg(volume, result).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def seg_problems() -> tuple[type[Exception], ...]:
    """The errors by which a SEG refuses to be built: their message is the reason."""
    from viewer.labels.dicomseg import SegExportError
    from viewer.labels.export import ExportError
    from viewer.labels.model import LabelError

    return (SegExportError, ExportError, LabelError)
