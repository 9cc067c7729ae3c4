"""The `radlens` command line: the viewer by default, plus scriptable subcommands.

    radlens [PATH] [--demo]          start the viewer (optionally on a folder/file or the demo)
    radlens scan PATH --json         list every series found in a folder
    radlens demo --out DIR           write the synthetic demo chest CT as a DICOM series
    radlens models [publish DIR]     list installed model packages, or install one
    radlens models import PATH       import an nnU-Net v2 model folder or a MONAI bundle
    radlens analyze PATH --out DIR   run a model without the GUI
    radlens export PATH --out DIR    export labels
    radlens train / radlens eval     the training station
    radlens pacs add|list|echo|find|get|send   query, retrieve from and send to a PACS
    radlens batch SOURCE --out DIR   analyse every series of a folder tree or a PACS query

Each subcommand lives in ``viewer/commands/<name>.py`` with ``add_parser`` and ``run``;
modules are imported only when needed, so ``radlens --help`` never imports torch or Qt.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand name -> module in viewer.commands
COMMANDS: dict[str, str] = {
    "view": "view",
    "scan": "scan",
    "demo": "demo",
    "models": "models",
    "analyze": "analyze",
    "export": "export",
    "train": "train",
    "eval": "evaluate",
    "pacs": "pacs",
    "batch": "batch",
}


def _available() -> dict[str, object]:
    mods = {}
    for name, module in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(f"viewer.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"viewer.commands.{module}":
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radlens",
        description="RadLens: a desktop radiology viewer with an in-process AI engine (offline).",
        epilog="Run `radlens PATH` or `radlens --demo` to start the viewer.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available().items():
        mod.add_parser(sub, name)  # type: ignore[attr-defined]
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `radlens`, `radlens PATH`, `radlens --demo` all mean `radlens view ...`.
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["view", *argv]
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 0
        mod = _available()[args.command]
        return int(mod.run(args) or 0)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own handling (while its modules load, before its work
        # begins): the shell's exit status for it, and a sentence rather than a traceback.
        print(f"\nradlens {argv[0]}: stopped (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
