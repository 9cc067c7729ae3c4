"""`radlens pacs`: PACS nodes from the command line (scripts, stations without a screen).

    radlens pacs add NAME (--dimse AET@HOST:PORT | --dicomweb URL) [--local-aet AET]
                          [--local-port PORT] [--move] [--user USER | --token] [--no-verify-tls]
    radlens pacs list [--json] | remove NAME | echo NAME
    radlens pacs find NAME [--patient …] [--patient-id …] [--modality …] [--date FROM-TO]
                           [--accession …] [--study UID] [--json]
    radlens pacs get NAME --study UID [--series UID …] [--out DIR]
    radlens pacs send NAME PATH…

Passwords and tokens are never taken on the command line (process lists and shell histories
show it): they come from RADLENS_PACS_PASSWORD / RADLENS_PACS_TOKEN, else from standard input
(a prompt on a terminal). They are stored 0600 and never printed: `list` masks them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from radlens_core.errors import UserError
from radlens_core.progress import Cancelled


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name,
        help="PACS nodes: add, list, echo, find, get (retrieve) and send",
        description=(
            "Query and retrieve studies from a PACS (DIMSE: C-FIND/C-GET/C-MOVE; DICOMweb: "
            "QIDO-RS/WADO-RS) into RadLens's cache, and send results (C-STORE/STOW-RS) only "
            "when asked."
        ),
    )
    actions = p.add_subparsers(dest="pacs_action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add (or with --replace, change) a PACS node")
    add.add_argument("name", metavar="NAME")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--dimse", metavar="AET@HOST:PORT", help="a DIMSE node")
    where.add_argument("--dicomweb", metavar="URL", help="a DICOMweb service's base URL")
    add.add_argument("--local-aet", default="RADLENS", help="RadLens's own AE title (DIMSE)")
    add.add_argument(
        "--local-port", type=int, default=11112, help="RadLens's storage SCP port (C-MOVE)"
    )
    add.add_argument(
        "--move", action="store_true", help="retrieve with C-MOVE to RadLens (default: C-GET)"
    )
    add.add_argument(
        "--user", default="", help="DICOMweb basic authentication user (password: see above)"
    )
    add.add_argument(
        "--token", action="store_true", help="DICOMweb bearer token (read as the password is)"
    )
    add.add_argument(
        "--no-verify-tls",
        action="store_true",
        help="do not verify the server's TLS certificate (only for a server you trust)",
    )
    add.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    add.add_argument("--replace", action="store_true", help="replace a node of that name")

    lst = actions.add_parser("list", help="list the nodes (credentials masked)")
    lst.add_argument("--json", action="store_true")
    rm = actions.add_parser("remove", help="forget a node")
    rm.add_argument("name", metavar="NAME")
    echo = actions.add_parser("echo", help="check a node answers (C-ECHO or a QIDO request)")
    echo.add_argument("name", metavar="NAME")

    find = actions.add_parser("find", help="search studies (or, with --study, its series)")
    find.add_argument("name", metavar="NAME")
    find.add_argument("--patient", default="", help="patient name (wildcards * ?)")
    find.add_argument("--patient-id", default="")
    find.add_argument("--modality", default="", help="e.g. CT")
    find.add_argument("--date", default="", help="YYYYMMDD, YYYYMMDD-YYYYMMDD, or open-ended")
    find.add_argument("--accession", default="")
    find.add_argument("--study", default="", help="list this study's series")
    find.add_argument("--limit", type=int, default=500)
    find.add_argument("--json", action="store_true", help="print machine-readable JSON")

    get = actions.add_parser("get", help="retrieve a study or some of its series")
    get.add_argument("name", metavar="NAME")
    get.add_argument("--study", required=True, metavar="UID")
    get.add_argument("--series", action="append", default=[], metavar="UID", help="repeatable")
    get.add_argument(
        "--out", type=Path, default=None, help="also copy the files here (default: cache only)"
    )
    send = actions.add_parser("send", help="send DICOM files (SEG, SR, images) to a node")
    send.add_argument("name", metavar="NAME")
    send.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    return p


def _secret(env: str, prompt: str) -> str:
    value = os.environ.get(env)
    if value is not None:
        return value
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def _add(args: argparse.Namespace) -> int:
    from viewer.pacs.nodes import DimseNode, NodeBook, WebNode, parse_dimse_address

    book = NodeBook.load()
    if args.dimse:
        if args.user or args.token or args.no_verify_tls:
            raise UserError("--user, --token and --no-verify-tls are for DICOMweb nodes.")
        aet, host, port = parse_dimse_address(args.dimse, args.name)
        node = DimseNode(
            args.name,
            aet,
            host,
            port,
            local_aet=args.local_aet,
            local_port=args.local_port,
            retrieve="move" if args.move else "get",
            timeout_s=args.timeout,
        )
    else:
        password = token = ""
        if args.user:
            password = _secret("RADLENS_PACS_PASSWORD", f"Password for {args.user}: ")
        if args.token:
            token = _secret("RADLENS_PACS_TOKEN", "Bearer token: ")
        node = WebNode(
            args.name,
            args.dicomweb,
            user=args.user,
            password=password,
            token=token,
            verify_tls=not args.no_verify_tls,
            timeout_s=args.timeout,
        )
    book.put(node, replace_existing=args.replace)
    book.save()
    print(
        f"PACS node '{node.name}' saved ({node.address}); check it with: radlens pacs echo {node.name}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from viewer.pacs.nodes import NodeBook

    book = NodeBook.load()
    rows = [book.nodes[n].describe() for n in book.names()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No PACS node yet: radlens pacs add NAME --dimse AET@HOST:PORT | --dicomweb URL")
    for row in rows:
        extra = ", ".join(
            f"{k}={v}" for k, v in row.items() if k not in ("name", "kind", "address")
        )
        print(f"{row['name']}\t{row['kind']}\t{row['address']}\t{extra}")
    return 0


def _progress_printer():
    state = {"shown": -1}

    def show(fraction: float, sentence: str) -> None:
        step = int(fraction * 20)
        if step != state["shown"]:
            state["shown"] = step
            print(f"{fraction * 100:5.1f}%  {sentence}", file=sys.stderr, flush=True)

    return show


def _find(args: argparse.Namespace, client) -> int:
    from viewer.pacs.records import StudyQuery, parse_date_range

    if args.study:
        series = client.find_series(args.study)
        if args.json:
            print(json.dumps([s.as_json() for s in series], indent=2))
        for s in [] if args.json else series:
            print(
                f"{s.series_uid}\t{s.modality}\t#{s.number or ''}\t{s.instance_count or '?'} images"
                f"\t{s.description}"
            )
        return 0
    lo, hi = parse_date_range(args.date) if args.date else ("", "")
    query = StudyQuery(
        patient_name=args.patient,
        patient_id=args.patient_id,
        date_from=lo,
        date_to=hi,
        modality=args.modality,
        accession=args.accession,
        limit=args.limit,
    )
    studies = client.find_studies(query)
    if args.json:
        print(json.dumps([s.as_json() for s in studies], indent=2))
        return 0
    for s in studies:
        print(
            f"{s.study_uid}\t{s.study_date}\t{s.patient_name}\t{s.patient_id}\t"
            f"{'/'.join(s.modalities)}\t{s.accession}\t{s.description}"
        )
    print(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} found", file=sys.stderr)
    return 0


def copy_out(report, out: Path) -> int:
    """Copy a retrieve's cached files into ``out``/<series>/ (an existing file of the same
    SOP UID is the same instance: kept). Returns the number of files copied."""
    from radlens_core.files import atomic_copy

    copied = 0
    for folder in report.series_folders:
        target = out / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(folder.glob("*.dcm")):
            if not (target / f.name).exists():
                atomic_copy(f, target / f.name)
                copied += 1
    return copied


def _get(args: argparse.Namespace, client) -> int:
    from viewer.pacs.cache import PacsCache
    from viewer.pacs.retrieval import retrieve

    cache = PacsCache.default()
    report = retrieve(client, cache, args.study, args.series or None, _progress_printer())
    mb = report.bytes_fetched / 1e6
    print(
        f"Retrieved {report.expected} instance(s) from '{client.name}': {report.fetched} "
        f"transferred ({mb:.1f} MB), {report.reused} already in the cache."
    )
    for folder in report.series_folders:
        print(f"  {folder}")
    if args.out is not None:
        n = copy_out(report, args.out)
        print(f"Copied {n} file(s) into {args.out}")
    return 0


def _send(args: argparse.Namespace, client) -> int:
    from viewer.pacs.sending import collect_files, send

    files = collect_files(args.paths)
    report = send(client, files, _progress_printer())
    print(f"Sent {report.sent} of {len(files)} file(s) to '{client.name}'.")
    for line in report.failed:
        print(f"  refused: {line}", file=sys.stderr)
    return 0 if not report.failed else 1


def run(args: argparse.Namespace) -> int:
    action = args.pacs_action
    try:
        if action == "add":
            return _add(args)
        if action == "list":
            return _list(args)
        from viewer.pacs.client import connect
        from viewer.pacs.nodes import NodeBook

        book = NodeBook.load()
        if action == "remove":
            node = book.remove(args.name)
            book.save()
            print(f"PACS node '{node.name}' removed.")
            return 0
        with connect(book.get(args.name)) as client:
            if action == "echo":
                seconds = client.echo()
                print(f"{client.where} answered in {seconds * 1000:.0f} ms.")
                return 0
            if action == "find":
                return _find(args, client)
            if action == "get":
                return _get(args, client)
            if action == "send":
                return _send(args, client)
    except UserError as exc:
        print(f"radlens pacs {action}: error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print(
            f"radlens pacs {action}: interrupted; what arrived is cached, run it again to resume.",
            file=sys.stderr,
        )
        return 130
    raise AssertionError(action)
