"""The findings panel: what the AI found, grouped by run, with the model's intended use on top.

Clicking (or activating) a finding emits ``finding_activated(Finding)``; the window jumps
every plane to its centre. Anatomy labels (e.g. lung, or every organ of a many-label model) are
one collapsible "Structures" group, sorted by name, with volumes; detections, classifications,
lesion components and flags are the findings. A run
that ran outside its intended use, or has plausibility / out-of-distribution flags, never
looks like a plain result: its heading says so, a warning row per reason comes first, and
each of its findings carries the warning icon and the reasons in its tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QLabel,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.labels.result_findings import (
    OUTSIDE_INTENDED_USE,
    Finding,
    ResultSummary,
    StructureVolume,
    caveats,
)
from viewer.labels.results import ResultRecord

_FINDING_ROLE = Qt.ItemDataRole.UserRole + 1
#: Item data marking a caveat row (outside intended use or a flag): the reason sentence.
CAVEAT_ROLE = Qt.ItemDataRole.UserRole + 2
#: Item data marking a run's structures group: how many structures it holds.
STRUCTURES_ROLE = Qt.ItemDataRole.UserRole + 3
#: Up to this many structures (a lung model's one or two) are rows of their run; more go into
#: one closed "Structures" group.
STRUCTURES_INLINE_UP_TO = 6
_AMBER = QColor("#ffb74d")
_RED = QColor("#ef9a9a")


def run_title(rec: ResultRecord) -> str:
    """'Chest CT segmenter 1.0.0 — cpu, 12.3 s' for a run's heading; a run outside its
    intended use or with flags says so first."""
    title = f"{rec.model_name} {rec.model_version} — {rec.device}, {rec.total_seconds:.1f} s"
    if rec.outside_intended_use:
        return f"⚠ {OUTSIDE_INTENDED_USE.upper()} — {title}"
    if caveats(rec):
        return f"⚠ FLAGGED — {title}"
    return title


def volume_text(ml: float) -> str:
    """'5,150 mL', '12.4 mL', '0.31 mL': three significant figures at most below 100 mL."""
    if ml >= 100:
        return f"{ml:,.0f} mL"
    return f"{ml:.3g} mL" if ml >= 0.01 else "<0.01 mL"


class FindingsPanel(QWidget):
    finding_activated = Signal(object)  # Finding

    EMPTY = "No AI results for this series. Click Analyze (Ctrl+Shift+A)."

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.intended_use = QLabel(self)
        self.intended_use.setWordWrap(True)
        self.intended_use.setObjectName("intendedUse")
        # Amber, so it reads as a caveat and not as part of the findings.
        self.intended_use.setStyleSheet(
            "QLabel#intendedUse { color: #ffb74d; padding: 4px; border: 1px solid #8d6e2f; }"
        )
        self.intended_use.hide()
        self.tree = QTreeWidget(self)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(True)
        self.tree.itemClicked.connect(self._on_item)
        self.tree.itemActivated.connect(self._on_item)
        self.empty = QLabel(self.EMPTY, self)
        self.empty.setWordWrap(True)
        self.empty.setTextFormat(Qt.TextFormat.PlainText)  # model names come from cards
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.intended_use)
        layout.addWidget(self.empty)
        layout.addWidget(self.tree, 1)
        self._runs: list[tuple[ResultRecord, ResultSummary]] = []
        self._refresh()

    # ---- contents -----------------------------------------------------------------------
    def set_runs(self, runs: list[tuple[ResultRecord, ResultSummary]]) -> None:
        self._runs = list(runs)
        self._refresh()

    def add_run(self, rec: ResultRecord, summary: ResultSummary) -> None:
        # A newer run of the same model replaces the older one, as the layers do.
        self._runs = [(r, s) for r, s in self._runs if r.model_id != rec.model_id]
        self._runs.append((rec, summary))
        self._refresh()

    def remove_run(self, run_id: str) -> None:
        self._runs = [(r, s) for r, s in self._runs if r.run_id != run_id]
        self._refresh()

    def clear(self) -> None:
        self.set_runs([])

    def set_no_fit(self, text: str) -> None:
        """While the series has no results: why no installed model fits it ("" = some do)."""
        self.empty.setText(text or self.EMPTY)

    def runs(self) -> list[tuple[ResultRecord, ResultSummary]]:
        return list(self._runs)

    def findings(self) -> list[Finding]:
        return [f for _, s in self._runs for f in s.findings]

    def _refresh(self) -> None:
        self.tree.clear()
        uses: list[str] = []
        for rec, summary in self._runs:
            if rec.intended_use and rec.intended_use not in uses:
                uses.append(rec.intended_use)
            reasons = caveats(rec)
            top = QTreeWidgetItem([run_title(rec)])
            # Rows are cut to the dock's width: the tooltip carries the whole text.
            tip = [run_title(rec), *reasons, rec.intended_use, *rec.warnings]
            top.setToolTip(0, "\n".join(tip).strip())
            self.tree.addTopLevelItem(top)
            warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            if reasons:
                colour = QBrush(_RED if rec.outside_intended_use else _AMBER)
                top.setIcon(0, warn)
                top.setForeground(0, colour)
                for reason in reasons:
                    row = QTreeWidgetItem([reason])
                    row.setIcon(0, warn)
                    row.setForeground(0, colour)
                    row.setData(0, CAVEAT_ROLE, reason)
                    row.setToolTip(0, reason)
                    row.setFlags(Qt.ItemFlag.ItemIsEnabled)
                    top.addChild(row)
            self._add_structures(top, summary.structures, reasons, warn)
            for f in summary.findings:
                item = QTreeWidgetItem([f.describe()])
                item.setData(0, _FINDING_ROLE, f)
                tip_lines = [f.describe(), *reasons, "Click to show it on every plane"]
                item.setToolTip(0, "\n".join(tip_lines))
                if reasons:
                    item.setIcon(0, warn)
                    item.setForeground(0, QBrush(_AMBER))
                top.addChild(item)
            if not summary.findings:
                top.addChild(QTreeWidgetItem(["no findings"]))
            top.setExpanded(True)
        self.intended_use.setText("\n".join(f"Intended use: {u}" for u in uses))
        self.intended_use.setVisible(bool(uses))
        self.empty.setVisible(not self._runs)
        self.tree.setVisible(bool(self._runs))

    def _add_structures(
        self,
        top: QTreeWidgetItem,
        structures: list[StructureVolume],
        reasons: list[str],
        warn: object,
    ) -> None:
        """Each structure and its volume, sorted by name: a lung model's few as rows of the
        run, an anatomy model's dozens inside one 'Structures (N)' row that starts closed, so
        the findings stay in view."""
        rows = []
        for s in sorted(structures, key=lambda v: v.label.casefold()):
            item = QTreeWidgetItem([f"{s.label}: {volume_text(s.volume_ml)}"])
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if reasons:
                item.setIcon(0, warn)  # type: ignore[arg-type]
                item.setToolTip(0, "\n".join(reasons))
            rows.append(item)
        if len(rows) <= STRUCTURES_INLINE_UP_TO:
            for item in rows:
                item.setText(0, f"{item.text(0)} (structure)")
                top.addChild(item)
            return
        total = sum(s.volume_ml for s in structures)
        group = QTreeWidgetItem([f"Structures ({len(rows)}, {volume_text(total)} in all)"])
        group.setData(0, STRUCTURES_ROLE, len(rows))
        group.setFlags(Qt.ItemFlag.ItemIsEnabled)
        group.setToolTip(0, "Segmented anatomy with its volume, by name; click to open")
        group.addChildren(rows)
        top.addChild(group)
        group.setExpanded(False)

    def structure_rows(self) -> list[tuple[str, list[str], bool]]:
        """(group title, its rows, expanded) of each run's structures group, top to bottom."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                group = top.child(j)
                if group.data(0, STRUCTURES_ROLE) is not None:
                    rows = [group.child(k).text(0) for k in range(group.childCount())]
                    out.append((group.text(0), rows, group.isExpanded()))
        return out

    def caveat_rows(self) -> list[str]:
        """The warning rows shown (one per reason of each flagged run), top to bottom."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                reason = top.child(j).data(0, CAVEAT_ROLE)
                if isinstance(reason, str):
                    out.append(reason)
        return out

    def _on_item(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        finding = item.data(0, _FINDING_ROLE)
        if isinstance(finding, Finding):
            self.finding_activated.emit(finding)

    def activate(self, finding: Finding) -> None:
        """Select a finding's row and emit as a click would (tests and keyboard navigation)."""
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, _FINDING_ROLE) == finding:
                    self.tree.setCurrentItem(top.child(j))
        self.finding_activated.emit(finding)
