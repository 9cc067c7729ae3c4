"""The PACS errors a user can meet; each message is a sentence naming the node and what happened."""

from __future__ import annotations

from radlens_core.errors import UserError


class PacsError(UserError):
    """Anything a PACS node did or did not do; ``node`` is the node's name."""

    def __init__(self, node: str, sentence: str) -> None:
        super().__init__(sentence)
        self.node = node


class NodeConfigError(PacsError):
    """A node setting that cannot work (bad address, unknown node, unreadable settings)."""


class NodeUnreachable(PacsError):
    """Nothing answers at the node's address (down, wrong host or port, no route)."""


class AssociationRefused(PacsError):
    """The node answered but refused RadLens (unknown AE title, credentials, TLS)."""


class PacsTimeout(PacsError):
    """The node accepted the connection and then did not answer in time."""


class PacsStatusError(PacsError):
    """The node answered a request with an error status."""

    def __init__(self, node: str, sentence: str, status: int | None = None) -> None:
        super().__init__(node, sentence)
        self.status = status


class PartialRetrieve(PacsError):
    """Some instances of a study or series did not arrive; the ones that did are cached and a
    retry fetches only the rest."""

    def __init__(
        self, node: str, sentence: str, received: int, expected: int, report: object = None
    ) -> None:
        super().__init__(node, sentence)
        self.received, self.expected = received, expected
        #: the RetrieveReport of what did arrive
        self.report = report
