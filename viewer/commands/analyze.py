"""`radlens analyze PATH --out DIR`: run a model on a series without the GUI, write findings."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radlens_core.admission import Admission
from radlens_core.errors import UserError
from radlens_core.files import atomic_write_text
from radlens_core.progress import Cancelled
from radlens_core.results import AnalysisResult, Box
from viewer.study.facts import series_facts

if TYPE_CHECKING:
    from viewer.study.volume import Volume

OUTPUTS = ("findings.json", "mask.nii.gz", "heatmap.nii.gz")

#: A heat map is written without --heatmap up to this many voxels (64 MB as float32): the
#: demo's is, a 300 x 512 x 512 CT's (315 MB, seconds to compress) only when asked.
HEATMAP_AUTO_VOXELS = 2**24
#: gzip level of the NIfTI outputs: 1 compresses a label map nearly as well as 6 (long runs
#: of one value) in a fraction of the time; any reader decompresses every level alike.
GZIP_LEVEL = 1


class AnalyzeError(UserError):
    """A problem the user can fix (which series, which model, where to write)."""


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="run a model on a series and write findings")
    p.add_argument("path", type=Path, help="a DICOM folder or an image file (NIfTI, NRRD, MHA)")
    p.add_argument(
        "--out", required=True, type=Path, help="folder for findings.json, mask, heatmap"
    )
    p.add_argument("--series", help="SeriesInstanceUID to analyse (when the folder holds several)")
    p.add_argument(
        "--model", help="model id (or id@version); default: the best model meant for the series"
    )
    p.add_argument(
        "--outside-intended-use",
        action="store_true",
        help="with --model: run it even though its card does not admit this series; the"
        " findings are marked 'outside intended use'",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--modality", help="override the modality (NIfTI files carry none)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    p.add_argument(
        "--heatmap",
        action="store_true",
        help="write heatmap.nii.gz whatever its size (by default only up to"
        f" {HEATMAP_AUTO_VOXELS:,} voxels)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(  # seg13: output formats beyond findings.json + NIfTI
        "--format",
        dest="formats",
        action="append",
        choices=("nifti", "dicom-seg"),
        default=None,
        help="also write the label map as DICOM-SEG (seg.dcm, LABELMAP, marked AUTOMATIC with "
        "the model id and version); repeatable; NIfTI is always written",
    )
    return p


class ProgressBar:
    """A plain-text progress bar on stderr (one line, redrawn; no extra dependency)."""

    def __init__(self, stream: Any = None, width: int = 30, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.width, self.enabled, self.last = width, enabled, ""

    def __call__(self, fraction: float, sentence: str) -> None:
        if not self.enabled:
            return
        filled = int(round(self.width * fraction))
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% {sentence}"
        if line != self.last:
            self.stream.write("\r" + line.ljust(len(self.last)))
            self.stream.flush()
            self.last = line

    def close(self) -> None:
        if self.enabled and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _why_not(admissions: list[Admission]) -> str:
    return "\n".join(f"  {a.model_id} ({a.model_name}): {'; '.join(a.reasons)}" for a in admissions)


def _pick_model(args: argparse.Namespace, volume, modality: str) -> tuple[Any, bool]:
    """(card, outside intended use): the explicit --model if its card admits the series (or
    the user overrode), else the best admitted, verified model; AnalyzeError with each
    installed model's reason when none fits."""
    from inference import registry

    if args.model:
        try:
            card = registry.find_model(args.model)
        except KeyError as exc:
            raise AnalyzeError(exc.args[0]) from None
        if modality == "OT" and not args.modality:
            modality = card.modalities[0]  # the file names none; analysed as the model's
        adm = registry.admission(card, series_facts(volume, modality))
        if adm.admitted:
            return card, False
        if not args.outside_intended_use:
            raise AnalyzeError(
                f"model {card.id!r} is not meant for this series: {'; '.join(adm.reasons)}."
                " To run it anyway, add --outside-intended-use (the findings are then marked"
                " 'outside intended use')"
            )
        return card, True
    if args.outside_intended_use:
        raise AnalyzeError("--outside-intended-use needs --model: name the model to run anyway")
    facts = series_facts(volume, modality)
    card = registry.best_model(facts)
    if card is None:
        hint = " (this file names no modality: add e.g. --modality CT)" if modality == "OT" else ""
        offers = registry.offer(facts)
        listing = _why_not(offers) if offers else "  (no model is installed)"
        raise AnalyzeError(
            f"no installed model is meant for this {modality} {facts.spatial_dims}D series"
            f"{hint}; each installed model and why it does not fit:\n{listing}\n"
            "Run one anyway with --model ID --outside-intended-use; see `radlens models`"
        )
    return card, False


def _box_json(box: Box, volume: Volume) -> dict[str, Any]:
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
        "boxes": [_box_json(b, volume) for b in boxes],
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


def _nifti_gz(array: np.ndarray, volume: Volume) -> bytes:
    """``array`` on the series grid as .nii.gz bytes, compressed at ``GZIP_LEVEL`` (zlib
    releases the interpreter lock: several of these run in parallel threads)."""
    import gzip

    from radlens_core.nifti import nifti_bytes

    raw = nifti_bytes(array.reshape(volume.shape), volume.grid, compress=False)
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def _check_orthogonal(volume: Volume) -> None:
    d = np.asarray(volume.direction, float)
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise AnalyzeError(
            "this volume is sheared (gantry tilt): NIfTI needs an orthogonal grid, so the mask"
            " cannot be written; findings.json holds the boxes and volumes"
        )


def _write_outputs(
    out: Path,
    volume: Volume,
    data: dict[str, Any],
    result: AnalysisResult,
    overwrite: bool,
    heatmap: bool | None = None,
) -> None:
    """mask.nii.gz, heatmap.nii.gz (when ``heatmap``, or None and it is small) and
    findings.json, each written atomically; the two images compress in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    from radlens_core.files import atomic_write_bytes

    images: dict[str, np.ndarray] = {}
    if result.label_map is not None:
        images["mask"] = result.label_map.array
    if result.heat_map is not None:
        size = int(result.heat_map.array.size)
        if heatmap or (heatmap is None and size <= HEATMAP_AUTO_VOXELS):
            images["heatmap"] = result.heat_map.array.astype(np.float32, copy=False)
        else:
            data["heatmap_not_written"] = (
                f"the heat map has {size:,} voxels; add --heatmap to write it"
            )
    if images:
        _check_orthogonal(volume)
    for name in images:
        target = out / f"{name}.nii.gz"
        if target.exists() and not overwrite:
            raise AnalyzeError(f"{target}: already exists; use --overwrite or another --out")

    def write(name: str) -> None:
        atomic_write_bytes(out / f"{name}.nii.gz", _nifti_gz(images[name], volume))

    with ThreadPoolExecutor(max(1, len(images))) as pool:
        for name, done in [(n, pool.submit(write, n)) for n in images]:
            done.result()
            data["files"][name] = f"{name}.nii.gz"
    atomic_write_text(out / "findings.json", json.dumps(data, indent=2) + "\n")


def _import_torch() -> None:
    """torch, imported while the folder is scanned, the series read and the model chosen (its
    native libraries load off the interpreter lock, so they overlap); a missing torch is
    reported by the engine."""
    from viewer.engine_warm_up import native_loading_off_the_lock

    with native_loading_off_the_lock(), contextlib.suppress(ImportError):
        import torch  # noqa: F401  (the import is the point)


def analyze(args: argparse.Namespace, bar: ProgressBar) -> dict[str, Any]:
    from viewer.study.scan import pick_series
    from viewer.study.series import load_series

    out: Path = args.out
    clash = [n for n in OUTPUTS if (out / n).exists()]
    if clash and not args.overwrite:
        raise AnalyzeError(
            f"{out}: already holds {', '.join(clash)}; use --overwrite or another --out"
        )
    torch_import = threading.Thread(target=_import_torch, name="torch-import", daemon=True)
    torch_import.start()
    try:
        info = pick_series(args.path, args.series)
        bar(0.0, f"loading {info.description or info.series_uid}")
        volume = load_series(info)
        modality = (args.modality or volume.modality or "OT").upper()
        card, outside = _pick_model(args, volume, modality)
    finally:
        torch_import.join()  # never left importing while the interpreter shuts down
    if modality == "OT" and not args.modality:
        # A NIfTI/MHA file names no modality; trust the chosen model's and say so.
        modality = card.modalities[0]
        volume.warnings.append(f"the file names no modality; analysed as {modality}")
    out.mkdir(parents=True, exist_ok=True)
    from inference.engine import Engine

    engine = Engine(args.device, num_threads=args.threads)
    t0 = time.perf_counter()
    result = engine.run(
        volume.array,
        volume.spacing,
        volume.direction,
        modality,
        card,
        progress=bar,
        outside_intended_use=outside,
    )
    bar.close()
    data = findings_json(args.path, volume, modality, card, result)
    data["timings_s"]["wall"] = round(time.perf_counter() - t0, 3)
    if "dicom-seg" in (args.formats or ()):
        from viewer.labels.ai_labels import write_analysis_seg

        write_analysis_seg(out, volume, result, data, args)
    _write_outputs(out, volume, data, result, args.overwrite, True if args.heatmap else None)
    return data


def run(args: argparse.Namespace) -> int:
    rc = _run(args)
    if _started_for_this_command():
        _end_process(rc)
    return rc


def _started_for_this_command() -> bool:
    """True when this process is ``radlens analyze ...`` (or ``python -m viewer analyze``)
    itself, not a program or test that calls the command's ``main`` among other work."""
    return sys.argv[1:2] == ["analyze"] and threading.current_thread() is threading.main_thread()


def _end_process(rc: int) -> None:
    """End the process now with ``rc``: every output is written (atomically, fsynced) and
    printed, and the interpreter's teardown of torch and MONAI (thousands of modules, the
    libraries' static destructors: seconds) would only keep the user waiting. The atexit
    handlers (logging's flush among them) still run, then the streams are flushed."""
    import atexit
    import os

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(rc)


def _run(args: argparse.Namespace) -> int:
    from inference.card import CardError
    from inference.engine import EngineError
    from inference.weights import WeightsError

    bar = ProgressBar(enabled=not args.quiet)
    try:
        data = analyze(args, bar)
    except (Cancelled, KeyboardInterrupt):
        bar.close()
        print("radlens analyze: cancelled", file=sys.stderr)
        return 130
    except (UserError, EngineError, CardError, WeightsError, OSError) as exc:
        bar.close()
        print(f"radlens analyze: {exc}", file=sys.stderr)
        return 2 if not isinstance(exc, EngineError) else 3
    model = data["model"]
    print(f"{model['id']}@{model['version']} on {data['device']}: {_summary(data)}")
    print(f"wrote {', '.join(['findings.json', *data['files'].values()])} to {args.out}")
    if "heatmap_not_written" in data:
        print(f"not written: {data['heatmap_not_written']}")
    print(f"intended use: {data['intended_use']}")
    for flag in data["flags"]:
        print(f"FLAGGED: {flag['message']}")
    if data.get("failed"):  # an asked-for format could not be written (said on stderr)
        return 1
    return 0


def _summary(data: dict[str, Any]) -> str:
    parts = []
    if "volumes_ml" in data:
        parts.append(", ".join(f"{k} {v:.1f} mL" for k, v in data["volumes_ml"].items()))
    if data["boxes"]:
        parts.append(f"{len(data['boxes'])} box(es), best score {data['boxes'][0]['score']:.2f}")
    if "probabilities" in data:
        top = max(data["probabilities"], key=data["probabilities"].get)
        parts.append(f"{top} {data['probabilities'][top]:.2f}")
    return "; ".join(p for p in parts if p) or "nothing found"
