"""`radlens export PATH --series UID --format ... --out DIR`: write a series' stored labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from radlens_core.errors import UserError
from viewer.labels.model import LabelError

FORMAT_CHOICES = ("nifti", "nrrd", "dicom-seg", "rtstruct", "sr", "json", "csv", "coco")


def add_parser(subparsers: Any, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="export the labels stored for a series (NIfTI, NRRD, DICOM-SEG, RTSTRUCT, SR, JSON, CSV, COCO)",
        description=(
            "Export the autosaved labels of one series to DIR/<case_id>/ (a series with AI "
            "results and no labels drawn exports the AI results, marked so). De-identification "
            "(DICOM PS3.15 basic profile) is on unless --no-deid; existing exports are kept "
            "unless --overwrite."
        ),
    )
    p.add_argument(
        "path", type=Path, help="the DICOM folder or image file the series was loaded from"
    )
    p.add_argument("--series", help="SeriesInstanceUID (needed when PATH holds several series)")
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        metavar="{" + ",".join(FORMAT_CHOICES) + "}",
        help="repeat or comma-separate; default: nifti, json and csv",
        type=lambda s: s.strip().lower(),
    )
    p.add_argument(
        "--out", type=Path, required=True, help="export folder (a case folder is made inside)"
    )
    p.add_argument(
        "--no-deid", action="store_true", help="keep patient identity (for internal use only)"
    )
    p.add_argument(
        "--with-image", action="store_true", help="also write the image (image.nii.gz / image.nrrd)"
    )
    p.add_argument(
        "--include-burned-in",
        action="store_true",
        help="with --with-image: also export an image that may show burned-in text "
        "(BurnedInAnnotation YES, or a secondary capture / ultrasound without the attribute)",
    )
    p.add_argument(
        "--seg-type",
        choices=("labelmap", "binary"),
        default="labelmap",
        help="DICOM-SEG type: labelmap (one frame per slice, default) or binary (one frame per "
        "label and slice, for readers without LABELMAP support)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing export of this case"
    )
    return p


class ExportCommandError(LabelError, UserError):
    """A problem with the command's input the user can fix; printed without a traceback."""


def run(args: argparse.Namespace) -> int:
    from viewer.labels.ai_labels import has_human_labels
    from viewer.labels.export import export_case, write_problem
    from viewer.labels.store import LabelStore, store_dir
    from viewer.study.errors import StudyError
    from viewer.study.scan import pick_series
    from viewer.study.series import load_series

    formats: list[str] = []
    for f in args.formats or ["nifti", "json", "csv"]:
        formats.extend(x for x in f.split(",") if x)
    bad = [f for f in formats if f not in FORMAT_CHOICES]
    if bad:
        print(
            f"radlens export: unknown format {bad}; choose from {', '.join(FORMAT_CHOICES)}",
            file=sys.stderr,
        )
        return 2
    try:
        info = pick_series(args.path, args.series)
        volume = load_series(info)
        ai = None
        document = None
        if (store_dir(volume.series_uid) / "info.json").exists():
            # Read-only: the series may be open in the viewer, whose store must stay the one writer.
            document = LabelStore.read(volume)
        if document is None or not has_human_labels(document):
            # Opened and analysed but not labelled by a person: the AI results are the labels.
            found = _ai_results(volume, required=document is None)
            if found is not None:
                document, ai = found
        assert document is not None
        result = export_case(
            volume,
            document,
            args.out,
            formats,
            deid=not args.no_deid,
            with_image=args.with_image,
            overwrite=args.overwrite,
            include_burned_in=args.include_burned_in,
            seg_type=args.seg_type,
            ai=ai,
        )
    except (UserError, LabelError, StudyError, ValueError) as exc:
        print(f"radlens export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # not from the writers (they say which file): reading the input
        where = exc.filename or args.path
        print(f"radlens export: cannot read {where}: {write_problem(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a sentence, never a traceback, for the user
        print(
            f"radlens export: exporting {args.path} to {args.out} failed: "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(f"exported case {result.case_id} to {result.folder}")
    if ai is not None:
        print(f"these labels are AI results, not drawn by a person: {ai.summary}")
    for name in result.files:
        print(f"  {name}")
    for warning in result.info.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if args.no_deid:
        print("warning: --no-deid: these files identify the patient", file=sys.stderr)
    failed = result.info.get("failed", {})
    for fmt in failed:
        print(f"radlens export: {fmt} was not written (see the warning above)", file=sys.stderr)
    # Exit 1 when a requested format is missing, so scripts notice; the rest is written.
    return 1 if failed else 0


def _ai_results(volume: Any, required: bool) -> tuple[Any, Any] | None:
    """(document, AiSource) of the series' stored AI results; when there are none, an error
    if ``required`` (nothing else to export), else None."""
    from viewer.labels.ai_labels import ai_document
    from viewer.labels.results import ResultStore

    found = ai_document(
        volume.series_uid, volume.shape, ResultStore().latest_per_model(volume.series_uid)
    )
    if found is None and required:
        raise ExportCommandError(
            f"no labels are stored for series {volume.series_uid}, nor AI results with a label "
            "map (open it in RadLens and draw, or analyze it, first)"
        )
    return found
