"""`radlens scan PATH [--json]`: list every series in a folder and every file skipped."""

from __future__ import annotations

import argparse
import json
import sys

from radlens_core.errors import UserError


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help="list the series in a folder (headers only)")
    p.add_argument("path", help="a folder (searched recursively) or a single file")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--files", action="store_true", help="with --json, also list each file")
    return p


def _table(result) -> str:  # result: ScanResult
    lines = [f"{len(result.series)} series, {len(result.skipped)} skipped files in {result.root}"]
    if result.cancelled:
        lines.append("(scan cancelled: the list is incomplete)")
    for s in result.series:
        shape = "×".join(str(n) for n in s.shape) if s.shape else "-"
        spacing = "×".join(f"{v:.3g}" for v in s.spacing) if s.spacing else "-"
        lines.append(
            f"  {s.modality:<4} {s.series_number if s.series_number is not None else '-':>4}  "
            f"{(s.description or '(no description)')[:32]:<32} {shape:>13} {spacing:>15} mm  "
            f"{s.kind}  {s.patient_name}  {s.series_uid}"
        )
        if s.volume_text:
            where = "time series" if s.time_series else "series"
            lines.append(f"        {s.volume_text} (of {where} {s.volume_group})")
        for problem in s.problems:
            lines.append(f"        ! {problem}")
    for skip in result.skipped:
        lines.append(f"  skipped {skip.path}: {skip.reason}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import warnings

    from viewer.study.scan import scan_folder

    try:
        with warnings.catch_warnings():
            # pydicom warns about every odd value it tolerates; the listing says what matters.
            warnings.simplefilter("ignore", UserWarning)
            result = scan_folder(args.path)
    except UserError as exc:  # every study error: a sentence naming the file
        print(f"radlens scan: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"radlens scan: {exc.filename or args.path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.json:
        data = result.to_json()
        if not args.files:
            for s in data["series"]:
                s.pop("files", None)
        print(json.dumps(data, indent=2))
    else:
        print(_table(result))
    return 0
