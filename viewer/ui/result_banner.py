"""An amber banner over the views with the intended use of every AI result on screen, and in
red what makes one untrustworthy: run outside its intended use, or flagged (with the reason)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QWidget

from viewer.labels.result_findings import caveats

_CALM = (
    "QLabel#intendedUseBanner { color: #ffb74d; background: #2a2418;"
    " border-bottom: 1px solid #8d6e2f; padding: 2px 8px; }"
)
_ALARM = (
    "QLabel#intendedUseBanner { color: #ffcdd2; background: #3a1c1c;"
    " border-bottom: 1px solid #c62828; padding: 2px 8px; }"
)


class IntendedUseBanner(QLabel):
    """Shows "AI result — intended use: …" while any result layer of ``analyze``
    (viewer.ui.analyze_feature.AnalyzeFeature) is visible, and hides itself otherwise."""

    def __init__(self, analyze, parent: QWidget | None = None) -> None:  # analyze: AnalyzeFeature
        super().__init__(parent)
        self.analyze = analyze
        self.setObjectName("intendedUseBanner")
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        # Amber on dark, like the Findings header: a caveat, not part of the image.
        self.setStyleSheet(_CALM)
        self.hide()
        # Layer events come in bursts (a run adds three layers): refresh once after them.
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.refresh)
        analyze.state.layers.subscribe(lambda _event, _layer: self._timer.start())

    def uses(self) -> list[str]:
        """The distinct intended-use sentences of the runs that have a layer on screen."""
        out: list[str] = []
        for rec in self.analyze.visible_records():
            use = (rec.intended_use or "").strip() or f"{rec.model_name}: no intended use given."
            if use not in out:
                out.append(use)
        return out

    def warnings(self) -> list[str]:
        """ "<model>: <reason>" for each reason not to trust a visible result."""
        out: list[str] = []
        for rec in self.analyze.visible_records():
            for reason in caveats(rec):
                line = f"{rec.model_name}: {reason}" if rec.model_name not in reason else reason
                if line not in out:
                    out.append(line)
        return out

    def refresh(self) -> None:
        uses, warnings = self.uses(), self.warnings()
        parts = [f"⚠ {w}" for w in warnings]
        parts += [f"AI result — intended use: {u}" for u in uses]
        self.setText("  |  ".join(parts))
        self.setToolTip("\n".join([*warnings, *uses]))
        self.setStyleSheet(_ALARM if warnings else _CALM)
        self.setVisible(bool(uses))
