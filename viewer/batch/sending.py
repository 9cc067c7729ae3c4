"""`radlens batch --send NODE`: each finished series' DICOM-SEG sent to a PACS node (C-STORE
or STOW-RS through ``viewer.pacs``); only ever on the user's explicit --send. The manifest
records what reached the node, so a resumed run sends the rest and nothing twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from radlens_core.errors import UserError
from viewer.batch.manifest import Manifest


class Sender:
    """One client to the node for the whole sweep (the node is looked up by name in the
    user's PACS settings; its credentials stay there)."""

    def __init__(self, node_name: str) -> None:
        from viewer.pacs import NodeBook

        self.node = NodeBook.load().get(node_name)
        self.client: Any = None

    def __enter__(self) -> Sender:
        from viewer.pacs import connect

        self.client = connect(self.node).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.__exit__(*exc)
            self.client = None

    def send_series(self, folder: Path) -> str:
        """What the manifest records: 'sent to NODE at <utc>' or 'not sent: <reason>'."""
        from viewer.pacs import send

        seg = folder / "seg.dcm"
        if not seg.is_file():
            why = "this build writes no DICOM-SEG"
            findings = folder / "findings.json"
            if findings.is_file():
                failed = json.loads(findings.read_text()).get("failed", {})
                why = failed.get("dicom-seg", why)
            return f"not sent: no DICOM-SEG to send ({why})"
        try:
            report = send(self.client, [seg])
        except UserError as exc:
            return f"not sent: {exc}"
        if report.failed or report.sent < 1:
            return f"not sent: {'; '.join(report.failed) or 'the node stored nothing'}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return f"sent to {self.node.name} at {stamp}"


def send_finished(node_name: str, out_dir: Path, manifest: Manifest) -> tuple[int, int]:
    """Send every done series not yet on the node; (sent, not sent)."""
    keys = manifest.to_send()
    if not keys:
        return 0, 0
    sent = failed = 0
    with Sender(node_name) as sender:
        for key in keys:
            text = sender.send_series(out_dir / key)
            manifest.record_sent(key, text)
            if text.startswith("sent to "):
                sent += 1
            else:
                failed += 1
    manifest.write_summary()
    return sent, failed
