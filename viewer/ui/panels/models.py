"""Models panel: every installed model package with its card, hash status and problems.

``collect_models()`` asks ``inference`` (registry + weights) what is installed, off the main
thread; ``ModelsPanel`` lists the result (shipped, user folder, broken packages with their
reason), shows the selected card and offers Rescan and "Use for Analyze". Everything a
package says (card, licence) is shown as plain text; only the panel's own parts (status,
evaluation plots it found in the folder) are rich text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.ui.panels.model_info import (
    SOURCE_WORDS,
    ModelCardDialog,
    card_title,
)
from viewer.ui.panels.package_details import PackageDetails

if TYPE_CHECKING:
    from inference.card import ModelCard
    from inference.verification import PackageVerifier

#: Columns of the model list.
COLUMNS = ("Model", "Version", "Kind", "Source", "Status")
_SHORT_TASK = {"segmentation": "seg", "detection": "det", "classification": "cls"}
OK_STATUS = "weights verified"
#: Licence files looked for in a package folder (case-insensitive), and how much is shown.
LICENCE_NAMES = ("license", "licence", "license.txt", "licence.txt", "license.md", "licence.md")
MAX_LICENCE_CHARS = 20_000


@dataclass(frozen=True)
class ModelEntry:
    """One package folder as the panel shows it; ``card`` is None when its card is unreadable."""

    folder: Path
    source: str  # "shipped", "user" or "other"
    card: ModelCard | None
    problem: str = ""
    licence: str = ""  # the package folder's LICENSE/licence file, as plain text

    @property
    def usable(self) -> bool:
        return self.card is not None and not self.problem

    @property
    def status(self) -> str:
        return self.problem or OK_STATUS

    @property
    def short_status(self) -> str:
        """A few words for the list; the full sentence is in the tooltip and the details."""
        if self.usable:
            return "✓ verified"
        if self.card is None:
            return "✗ bad card"
        if "SHA-256 mismatch" in self.problem:
            return "✗ weights changed"
        if "missing" in self.problem:
            return "✗ weights missing"
        return "✗ refused"

    @property
    def title(self) -> str:
        return card_title(self.card) if self.card is not None else self.folder.name


def _source(folder: Path, shipped: Path, user: Path) -> str:
    parent = folder.resolve().parent
    if parent == shipped.resolve():
        return "shipped"
    if parent == user.resolve():
        return "user"
    return "other"


def read_licence(folder: Path) -> str:
    """The text of the package's LICENSE / licence file (first one found), capped; "" if none."""
    try:
        names = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    except OSError:
        return ""
    for wanted in LICENCE_NAMES:
        path = names.get(wanted)
        if path is None:
            continue
        try:
            with path.open("rb") as fh:
                raw = fh.read(MAX_LICENCE_CHARS + 1)
        except OSError:
            return ""
        text = raw.decode("utf-8", errors="replace")
        if len(text) > MAX_LICENCE_CHARS:
            text = text[:MAX_LICENCE_CHARS] + "\n…"
        return text
    return ""


def collect_models(
    extra_dirs: Iterable[str | Path] = (), verifier: PackageVerifier | None = None
) -> list[ModelEntry]:
    """Every package the registry finds, its weights checked against the card's SHA-256
    (by ``verifier``, which remembers unchanged packages).

    Packages the registry refuses come back with ``card=None`` and the registry's reason, so
    one broken folder is shown, not fatal. Runs on a worker: hashing big weights takes time.
    """
    from inference import registry
    from inference.verification import PackageVerifier
    from radlens_core.paths import shipped_models_dir, user_models_dir

    shipped, user = shipped_models_dir(), user_models_dir()
    scan = registry.scan_models(extra_dirs)  # its own problems: listing on a worker is safe
    verdicts = (verifier or PackageVerifier()).verify_all(scan.cards)
    entries = [
        ModelEntry(
            Path(v.card.path),
            _source(v.card.path, shipped, user),
            v.card,
            v.problem,
            read_licence(Path(v.card.path)),
        )
        for v in verdicts
    ]
    for folder, reason in scan.problems:
        entries.append(ModelEntry(Path(folder), _source(Path(folder), shipped, user), None, reason))
    return entries


class _Relay(QObject):
    done = Signal(object)  # list[ModelEntry], or an error sentence


class ModelsPanel(QWidget):
    """The list of installed models; emits ``analyze_model_chosen(card)`` for Use for Analyze."""

    models_listed = Signal(list)  # list[ModelEntry]
    listing_failed = Signal(str)
    analyze_model_chosen = Signal(object)  # ModelCard

    def __init__(
        self,
        parent: QWidget | None = None,
        extra_dirs: Iterable[str | Path] = (),
        scan_now: bool = True,
    ) -> None:
        super().__init__(parent)
        self.extra_dirs = [Path(p) for p in extra_dirs]
        self.entries: list[ModelEntry] = []
        self._thread: threading.Thread | None = None
        self._again = False
        self._select_next: str | None = None
        self._pending = False
        # Remembers verified packages: a rescan re-hashes only weights changed on disk.
        self._verifier: PackageVerifier | None = None
        self._relay = _Relay(self)
        # Queued: the worker thread emits, the panel updates on the main thread.
        self._relay.done.connect(self._scan_done, Qt.ConnectionType.QueuedConnection)

        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        # The dock is narrow: the name elides, the short columns stay readable.
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(len(COLUMNS) - 1, 90)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.tree.currentItemChanged.connect(lambda *_: self._show_selected())
        self.tree.itemDoubleClicked.connect(lambda *_: self.show_card())
        self.details = PackageDetails(self)
        self.summary = QLabel("Looking for models…", self)
        self.rescan_button = QPushButton("Rescan", self)
        self.rescan_button.setToolTip("Look again in the shipped and user model folders")
        self.rescan_button.clicked.connect(self.rescan)
        self.use_button = QPushButton("Use for Analyze", self)
        self.use_button.setToolTip("Preselect this model for the Analyze action")
        self.use_button.clicked.connect(self.use_selected)
        self.use_button.setEnabled(False)

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.tree)
        split.addWidget(self.details)
        split.setSizes([180, 320])
        buttons = QHBoxLayout()
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.rescan_button)
        buttons.addWidget(self.use_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        if scan_now:
            self.rescan()

    # ---- listing -------------------------------------------------------------------------
    def rescan(self, select: str | None = None) -> None:
        """List the installed models again (on a worker); a rescan during one queues another.

        ``select``: a model id to select once it is listed (a package just published).
        """
        if select:
            self._select_next = select
        # "Running" is our own flag, cleared when the result is shown: the worker thread may
        # still be alive for a moment after its result arrived (it has yet to return), and a
        # rescan queued behind it then would wait for a result that never comes.
        if self._pending:
            self._again = True
            return
        self.summary.setText("Looking for models…")
        self._pending = True
        extra = list(self.extra_dirs)
        relay = self._relay

        def work() -> None:
            try:
                if self._verifier is None:  # made here: its import stays off the UI thread
                    from inference.verification import PackageVerifier

                    self._verifier = PackageVerifier()
                result: object = collect_models(extra, self._verifier)
            except Exception as exc:  # noqa: BLE001 - any failure becomes a message in the panel
                result = f"{type(exc).__name__}: {exc}"
            try:
                relay.done.emit(result)
            except RuntimeError:  # the panel was closed meanwhile: nobody to tell
                pass

        # A daemon Python thread, not a QThread: a window destroyed mid-scan must not abort.
        self._thread = threading.Thread(target=work, name="radlens-models-scan", daemon=True)
        self._thread.start()

    @property
    def scanning(self) -> bool:
        """True from ``rescan()`` until its result is shown."""
        return self._pending or self._again

    def _scan_done(self, result: object) -> None:
        self._pending = False
        if isinstance(result, str):
            self.summary.setText(f"Listing models failed: {result}")
            self.listing_failed.emit(result)
        else:
            self.set_entries(list(result))  # type: ignore[call-overload]
            if self._select_next and self.select(self._select_next):
                self._select_next = None
        if self._again:
            self._again = False
            self.rescan()

    def wait_idle(self, ms: int = 10_000) -> bool:
        """Wait for a running rescan (bounded); for closing the window."""
        if self._thread is not None:
            self._thread.join(ms / 1000)
            return not self._thread.is_alive()
        return True

    def set_entries(self, entries: list[ModelEntry]) -> None:
        current = self.selected()
        keep = current.folder if current is not None else None
        self.entries = list(entries)
        self.tree.clear()
        bad = QBrush(QColor("#e57373"))
        for entry in self.entries:
            card = entry.card
            kind = ""
            if card is not None:
                mods = "/".join(card.modalities)
                kind = f"{mods} {_SHORT_TASK.get(card.task, card.task)} {card.spatial_dims}D"
                if card.source != "radlens":  # an imported MONAI bundle, nnU-Net or ONNX model
                    kind += f" · {card.source}"
            row = [
                entry.title,
                card.version if card is not None else "",
                kind,
                entry.source,
                entry.short_status,
            ]
            item = QTreeWidgetItem(row)
            item.setToolTip(0, f"{entry.title}\n{entry.folder}")
            item.setToolTip(len(COLUMNS) - 1, entry.status)
            if card is not None:
                item.setToolTip(2, f"Source format: {SOURCE_WORDS.get(card.source, card.source)}")
            if not entry.usable:
                for col in range(len(COLUMNS)):
                    item.setForeground(col, bad)
            self.tree.addTopLevelItem(item)
            if entry.folder == keep:
                self.tree.setCurrentItem(item)
        if self.tree.currentItem() is None and self.tree.topLevelItemCount():
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        broken = sum(not e.usable for e in self.entries)
        text = f"{len(self.entries) - broken} model(s)"
        self.summary.setText(text + (f", {broken} with problems" if broken else ""))
        self._show_selected()
        self.models_listed.emit(self.entries)

    # ---- selection -----------------------------------------------------------------------
    def selected(self) -> ModelEntry | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        row = self.tree.indexOfTopLevelItem(item)
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def select(self, model_id: str) -> bool:
        """Select the package with this card id; False when it is not listed."""
        for row, entry in enumerate(self.entries):
            if entry.card is not None and entry.card.id == model_id:
                self.tree.setCurrentItem(self.tree.topLevelItem(row))
                return True
        return False

    def _show_selected(self) -> None:
        entry = self.selected()
        self.details.show_entry(entry)
        self.use_button.setEnabled(entry is not None and entry.usable)

    def use_selected(self) -> None:
        entry = self.selected()
        if entry is not None and entry.usable:
            self.summary.setText(f"Analyze will use {entry.title}")
            self.analyze_model_chosen.emit(entry.card)

    def show_card(self) -> ModelCardDialog | None:
        entry = self.selected()
        if entry is None or entry.card is None:
            return None
        dialog = ModelCardDialog(entry.card, self)
        dialog.setModal(False)
        dialog.show()
        return dialog
