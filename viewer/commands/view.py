"""`radlens [PATH] [--demo]`: start the desktop viewer."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="start the viewer (the default command)",
        description="Start the RadLens viewer, optionally on a DICOM folder or an image file.",
    )
    parser.add_argument("path", nargs="?", help="a DICOM folder, or a NIfTI/NRRD/MHA file")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo chest CT")
    return parser


def run(args: argparse.Namespace) -> int:
    # Qt is imported here, not at module import, so `radlens --help` stays instant.
    from viewer.ui.app import run_viewer

    return run_viewer(path=args.path, demo=bool(args.demo))
