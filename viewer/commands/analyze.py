"""`radlens analyze PATH --out DIR`: run a model on a series without the GUI, write findings."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Any

from radlens_core.errors import UserError
from radlens_core.progress import Cancelled

# The pieces `radlens batch` shares live in analyze_outputs; their names stay importable here.
from viewer.commands.analyze_outputs import (
    GZIP_LEVEL,
    HEATMAP_AUTO_VOXELS,
    AnalyzeError,
    ModelNotMeant,
    NoModelMeant,
    analysis_seg,
    findings_json,
    pick_model,
    seg_problems,
    seg_uids,
    write_outputs,
)

__all__ = [
    "GZIP_LEVEL",
    "HEATMAP_AUTO_VOXELS",
    "OUTPUTS",
    "AnalyzeError",
    "ModelNotMeant",
    "NoModelMeant",
    "analysis_seg",
    "analyze",
    "findings_json",
    "pick_model",
    "run",
    "seg_uids",
    "write_outputs",
]

OUTPUTS = ("findings.json", "mask.nii.gz", "heatmap.nii.gz")


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
        card, outside = pick_model(
            volume,
            modality,
            args.model,
            args.outside_intended_use,
            modality_given=bool(args.modality),
        )
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
        _write_seg(out, volume, result, data, args.overwrite)
    # HEATMAP_AUTO_VOXELS read here, at run time: a test may lower it on this module.
    limit = HEATMAP_AUTO_VOXELS
    write_outputs(out, volume, data, result, args.overwrite, args.heatmap or None, limit)
    return data


def _write_seg(out: Path, volume: Any, result: Any, data: dict[str, Any], overwrite: bool) -> None:
    """``--format dicom-seg``: the run's label map as ``out/seg.dcm`` (``analysis_seg``),
    listed in ``data['files']``. A run with no label map, or a source that cannot give a SEG,
    is reported in ``data['failed']`` and on stderr; the other outputs are written all the
    same."""
    from viewer.labels.export import writing

    target = out / "seg.dcm"
    try:
        if target.exists() and not overwrite:
            raise AnalyzeError(f"{target} already exists; use --overwrite")
        seg = analysis_seg(volume, result)
        with writing(target, out):
            seg.save_as(str(target), enforce_file_format=True)
        data["files"]["seg"] = "seg.dcm"
    except (AnalyzeError, *seg_problems()) as exc:
        data.setdefault("failed", {})["dicom-seg"] = str(exc)
        print(f"radlens analyze: DICOM-SEG not written: {exc}", file=sys.stderr)


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
