"""The live side of the Train dialog: epoch progress, a status sentence, the loss / metric
plot and the trainer's log, fed epoch by epoch."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QProgressBar, QVBoxLayout, QWidget

from viewer.ui.train_runner import EpochProgress


class TrainProgressView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("epoch %v / %m")
        self.status = QLabel("Choose a dataset folder and an output folder, then Start.", self)
        self.status.setWordWrap(True)
        self.plot = pg.PlotWidget(self)
        self.plot.setMinimumHeight(200)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.plot.setLabel("bottom", "epoch")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.loss_curve = self.plot.plot([], [], name="loss", pen=pg.mkPen("#ff7043", width=2))
        self.metric_curve = self.plot.plot(
            [], [], name="metric", pen=pg.mkPen("#4fc3f7", width=2), symbol="o", symbolSize=5
        )
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)  # a long run must not grow the widget without end
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 2)
        layout.addWidget(self.log, 1)

    def reset(self) -> None:
        """A new run: empty plot and log, busy until the first epoch (torch and data load)."""
        self.loss_curve.setData([], [])
        self.metric_curve.setData([], [])
        self.log.clear()
        self.progress.setRange(0, 0)

    def say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #e57373" if error else "")

    def show_epochs(self, history: list[EpochProgress]) -> None:
        """Plot every epoch so far; the progress bar shows the last."""
        p = history[-1]
        self.progress.setRange(0, p.epochs)
        self.progress.setValue(p.epoch)
        xs = [h.epoch for h in history]
        self.loss_curve.setData(xs, [h.loss for h in history])
        self.metric_curve.setData(xs, [h.value for h in history])
        label = self.legend.getLabel(self.metric_curve)
        if label is not None and label.text != p.metric:
            label.setText(p.metric)
        # Whole epochs on the axis, about ten ticks at most.
        step = max(1, -(-p.epoch // 10))
        self.plot.getAxis("bottom").setTickSpacing(step, step)
