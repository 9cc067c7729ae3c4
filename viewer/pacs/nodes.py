"""PACS node settings: DIMSE and DICOMweb nodes, kept in the user's settings folder (0600).

Credentials (a DICOMweb password or bearer token) are stored in ``pacs_nodes.json`` in the
settings folder, which is 0700 and the file 0600, written atomically. They are never part of a
node's ``repr`` or of ``describe()``; ``radlens pacs list`` shows them masked.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from radlens_core.files import PRIVATE_FILE_MODE, atomic_write_json
from radlens_core.paths import private_dir
from viewer.pacs.errors import NodeConfigError

NODES_FILE = "pacs_nodes.json"
#: DICOM AE titles: 1-16 characters of the default repertoire, no backslash or controls.
_AET = re.compile(r"[ -\[\]-~]{1,16}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}")
DEFAULT_LOCAL_AET = "RADLENS"
DEFAULT_TIMEOUT_S = 30.0
MAX_NODES = 200


def settings_dir() -> Path:
    """The user's RadLens settings folder (0700): ``RADLENS_DATA_DIR`` when set (tests,
    portable installs; the window's settings live there too), else the platform's config
    folder (``$XDG_CONFIG_HOME/RadLens`` on Linux)."""
    override = os.environ.get("RADLENS_DATA_DIR")
    if override:
        return private_dir(Path(override))
    import platformdirs

    return private_dir(Path(platformdirs.user_config_dir("RadLens", "RadLens")))


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise NodeConfigError(
            name, f"'{name}' is not a usable node name (letters, digits, . _ - and spaces)"
        )
    return name


def check_aet(aet: str, node: str, what: str = "AE title") -> str:
    aet = aet.strip()
    if not _AET.fullmatch(aet):
        raise NodeConfigError(
            node, f"node '{node}': '{aet}' is not a valid {what} (1-16 characters)"
        )
    return aet


def check_port(port: int, node: str, what: str = "port") -> int:
    if not 0 < int(port) < 65536:
        raise NodeConfigError(node, f"node '{node}': {what} {port} is not between 1 and 65535")
    return int(port)


@dataclass(frozen=True)
class DimseNode:
    """A DIMSE peer: its AE title, host and port; RadLens's own AE title and the port of its
    storage SCP (C-MOVE destination); ``retrieve`` is "get" (C-GET) or "move" (C-MOVE)."""

    name: str
    aet: str
    host: str
    port: int
    local_aet: str = DEFAULT_LOCAL_AET
    local_port: int = 11112
    retrieve: str = "get"
    timeout_s: float = DEFAULT_TIMEOUT_S

    kind = "dimse"

    def __post_init__(self) -> None:
        check_name(self.name)
        check_aet(self.aet, self.name)
        check_aet(self.local_aet, self.name, "local AE title")
        check_port(self.port, self.name)
        check_port(self.local_port, self.name, "local storage port")
        if not self.host or len(self.host) > 253 or any(c.isspace() for c in self.host):
            raise NodeConfigError(self.name, f"node '{self.name}': '{self.host}' is not a host")
        if self.retrieve not in ("get", "move"):
            raise NodeConfigError(self.name, f"node '{self.name}': retrieve is 'get' or 'move'")
        if not 0 < self.timeout_s <= 3600:
            raise NodeConfigError(self.name, f"node '{self.name}': timeout must be 0-3600 s")

    @property
    def address(self) -> str:
        return f"{self.aet}@{self.host}:{self.port}"

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "address": self.address,
            "local_aet": self.local_aet,
            "local_port": self.local_port,
            "retrieve": "C-MOVE" if self.retrieve == "move" else "C-GET",
        }


@dataclass(frozen=True)
class WebNode:
    """A DICOMweb service (QIDO-RS, WADO-RS, STOW-RS) at ``url``, with optional basic
    (``user`` + ``password``) or bearer (``token``) authentication; TLS verified by default."""

    name: str
    url: str
    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    verify_tls: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S

    kind = "dicomweb"

    def __post_init__(self) -> None:
        check_name(self.name)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NodeConfigError(
                self.name, f"node '{self.name}': '{self.url}' is not an http(s) DICOMweb URL"
            )
        if parts.username or parts.password:
            raise NodeConfigError(
                self.name,
                f"node '{self.name}': put the user name in --user, not in the URL",
            )
        if self.token and (self.user or self.password):
            raise NodeConfigError(
                self.name, f"node '{self.name}': use basic (user) or bearer (token), not both"
            )
        if not 0 < self.timeout_s <= 3600:
            raise NodeConfigError(self.name, f"node '{self.name}': timeout must be 0-3600 s")

    @property
    def address(self) -> str:
        return self.url

    @property
    def auth(self) -> str:
        return "bearer" if self.token else "basic" if self.user else "none"

    def describe(self) -> dict[str, object]:
        """Shown to the user: credentials masked, never their value."""
        out: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            "address": self.url,
            "auth": self.auth,
            "verify_tls": self.verify_tls,
        }
        if self.user:
            out["user"] = self.user
            out["password"] = "********" if self.password else "(none)"
        if self.token:
            out["token"] = "********"
        return out


Node = DimseNode | WebNode


def parse_dimse_address(text: str, name: str) -> tuple[str, str, int]:
    """``AET@HOST:PORT`` -> (aet, host, port)."""
    aet, at, rest = text.rpartition("@")
    host, colon, port = rest.rpartition(":")
    if not at or not colon or not port.isdigit():
        raise NodeConfigError(name, f"'{text}' is not AET@HOST:PORT (e.g. ORTHANC@pacs.local:4242)")
    return check_aet(aet, name), host.strip("[]"), check_port(int(port), name)


def _node_from_json(entry: dict) -> Node:
    kind = entry.get("kind")
    fields = {k: v for k, v in entry.items() if k != "kind"}
    try:
        if kind == "dimse":
            return DimseNode(**fields)
        if kind == "dicomweb":
            return WebNode(**fields)
    except TypeError as exc:
        raise NodeConfigError(
            str(entry.get("name", "")), f"a PACS node entry is damaged: {exc}"
        ) from None
    raise NodeConfigError(str(entry.get("name", "")), f"unknown PACS node kind '{kind}'")


def _node_to_json(node: Node) -> dict:
    return {"kind": node.kind, **asdict(node)}


class NodeBook:
    """The configured nodes, by name; ``save()`` writes the file atomically, 0600."""

    def __init__(self, nodes: dict[str, Node] | None = None, path: Path | None = None) -> None:
        self.nodes: dict[str, Node] = dict(nodes or {})
        self.path = path or settings_dir() / NODES_FILE

    @classmethod
    def load(cls, path: Path | None = None) -> NodeBook:
        path = path or settings_dir() / NODES_FILE
        if not path.is_file():
            return cls({}, path)
        if path.stat().st_size > 1 << 20:
            raise NodeConfigError("", f"the PACS settings file {path} is larger than 1 MB")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data["nodes"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NodeConfigError(
                "", f"the PACS settings file {path} cannot be read ({exc})"
            ) from None
        if os.name == "posix" and path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
            os.chmod(path, PRIVATE_FILE_MODE)
        nodes = [_node_from_json(e) for e in entries[:MAX_NODES]]
        return cls({n.name: n for n in nodes}, path)

    def save(self) -> None:
        private_dir(self.path.parent)
        atomic_write_json(self.path, {"nodes": [_node_to_json(n) for n in self.nodes.values()]})

    def names(self) -> list[str]:
        return sorted(self.nodes, key=str.lower)

    def get(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            known = ", ".join(self.names()) or "none yet: add one with `radlens pacs add`"
            raise NodeConfigError(name, f"there is no PACS node called '{name}' (known: {known})")
        return node

    def put(self, node: Node, replace_existing: bool = True) -> None:
        if not replace_existing and node.name in self.nodes:
            raise NodeConfigError(node.name, f"a PACS node called '{node.name}' already exists")
        if len(self.nodes) >= MAX_NODES and node.name not in self.nodes:
            raise NodeConfigError(node.name, f"at most {MAX_NODES} PACS nodes can be kept")
        self.nodes[node.name] = node

    def remove(self, name: str) -> Node:
        node = self.get(name)
        del self.nodes[name]
        return node


def renamed(node: Node, name: str) -> Node:
    return replace(node, name=check_name(name))
