"""The PACS panel: node choice and management, search fields, the study list, its series,
Retrieve / Open / Send, and a status line (with Retry after a failure).

Only widgets: it shows records and emits what the user asked for; ``PacsFeature`` runs the
network work on workers and fills the panel back.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.pacs.errors import NodeConfigError
from viewer.pacs.records import SeriesRecord, StudyQuery, StudyRecord, parse_date_range

MODALITIES = ("", "CT", "MR", "PT", "CR", "DX", "MG", "US", "NM", "XA", "SEG", "SR")
STUDY_COLUMNS = (
    "Patient",
    "Patient ID",
    "Date",
    "Modalities",
    "Description",
    "Accession",
    "Series",
    "Images",
)
SERIES_COLUMNS = ("#", "Modality", "Description", "Images", "In cache")


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _item(text: object, data: object = None) -> QTableWidgetItem:
    item = QTableWidgetItem("" if text is None else str(text))
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if data is not None:
        item.setData(Qt.ItemDataRole.UserRole, data)
    return item


class PacsPanel(QWidget):
    node_chosen = Signal(str)
    add_node_requested = Signal()
    edit_node_requested = Signal(str)
    remove_node_requested = Signal(str)
    echo_requested = Signal(str)
    search_requested = Signal(object)  # StudyQuery
    study_chosen = Signal(object)  # StudyRecord
    retrieve_requested = Signal(object, object)  # StudyRecord, list[SeriesRecord] ([] = all)
    open_requested = Signal()
    send_requested = Signal()
    retry_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pacs_panel")
        self.studies: list[StudyRecord] = []
        self.series: list[SeriesRecord] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        self.node_box = QComboBox(self)
        self.node_box.setObjectName("pacs_node")
        self.node_box.setToolTip("The PACS node to search and retrieve from")
        self.node_box.setMinimumContentsLength(8)
        self.node_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        layout.addWidget(self.node_box)
        nodes = QHBoxLayout()
        self.add_button = QPushButton("Add…", self)
        self.edit_button = QPushButton("Edit…", self)
        self.remove_button = QPushButton("Remove", self)
        self.echo_button = QPushButton("Echo", self)
        self.echo_button.setToolTip("Check the node answers (C-ECHO, or a QIDO request)")
        for b in (self.add_button, self.edit_button, self.remove_button, self.echo_button):
            nodes.addWidget(b)
        layout.addLayout(nodes)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.patient = QLineEdit(self)
        self.patient.setPlaceholderText("name, e.g. doe (wildcards * ?)")
        self.patient_id = QLineEdit(self)
        self.modality = QComboBox(self)
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.dates = QLineEdit(self)
        self.dates.setPlaceholderText("YYYYMMDD-YYYYMMDD (either side may be empty)")
        self.accession = QLineEdit(self)
        form.addRow("Patient", self.patient)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Modality", self.modality)
        form.addRow("Study date", self.dates)
        form.addRow("Accession", self.accession)
        layout.addLayout(form)
        self.search_button = QPushButton("Search", self)
        self.search_button.setDefault(True)
        layout.addWidget(self.search_button)

        self.study_table = self._table(STUDY_COLUMNS, "pacs_studies")
        layout.addWidget(self.study_table, 3)
        self.series_table = self._table(SERIES_COLUMNS, "pacs_series")
        self.series_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        layout.addWidget(self.series_table, 2)

        actions = QHBoxLayout()
        self.retrieve_button = QPushButton("Retrieve", self)
        self.retrieve_button.setToolTip(
            "Retrieve the selected series (or the whole study) into RadLens's cache"
        )
        self.open_button = QPushButton("Open", self)
        self.open_button.setToolTip("Open what was retrieved")
        self.send_button = QPushButton("Send…", self)
        self.send_button.setToolTip(
            "Send exported results (DICOM-SEG, SR, de-identified images) to this node"
        )
        for b in (self.retrieve_button, self.open_button, self.send_button):
            actions.addWidget(b)
        layout.addLayout(actions)
        status = QHBoxLayout()
        self.status = QLabel("", self)
        self.status.setObjectName("pacs_status")
        self.status.setWordWrap(True)
        self.retry_button = QPushButton("Retry", self)
        self.retry_button.setVisible(False)
        status.addWidget(self.status, 1)
        status.addWidget(self.retry_button)
        layout.addLayout(status)

        self.add_button.clicked.connect(self.add_node_requested)
        self.edit_button.clicked.connect(lambda: self._with_node(self.edit_node_requested))
        self.remove_button.clicked.connect(lambda: self._with_node(self.remove_node_requested))
        self.echo_button.clicked.connect(lambda: self._with_node(self.echo_requested))
        self.node_box.currentTextChanged.connect(self.node_chosen)
        self.search_button.clicked.connect(self.request_search)
        for edit in (self.patient, self.patient_id, self.dates, self.accession):
            edit.returnPressed.connect(self.request_search)
        self.study_table.itemSelectionChanged.connect(self._study_selected)
        self.retrieve_button.clicked.connect(self.request_retrieve)
        self.open_button.clicked.connect(self.open_requested)
        self.send_button.clicked.connect(self.send_requested)
        self.retry_button.clicked.connect(self.retry_requested)
        for b in self.findChildren(QPushButton):
            b.setMinimumWidth(44)  # the panel fits the series browser's narrow column
        self.set_retrieved(False)
        self.set_nodes([])

    def _table(self, columns: tuple[str, ...], name: str) -> QTableWidget:
        table = QTableWidget(0, len(columns), self)
        table.setObjectName(name)
        table.setHorizontalHeaderLabels(columns)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.setAlternatingRowColors(True)
        table.setMinimumWidth(60)
        return table

    # ---- nodes -------------------------------------------------------------------------
    @property
    def node_name(self) -> str:
        return self.node_box.currentText() if self.node_box.count() else ""

    def set_nodes(self, names: list[str], current: str = "") -> None:
        self.node_box.blockSignals(True)
        self.node_box.clear()
        self.node_box.addItems(names)
        if current in names:
            self.node_box.setCurrentText(current)
        self.node_box.blockSignals(False)
        has = bool(names)
        for w in (self.edit_button, self.remove_button, self.echo_button, self.search_button):
            w.setEnabled(has)
        if not has:
            self.say("Add a PACS node (Add…) to search it.")
        self.node_chosen.emit(self.node_name)

    def _with_node(self, signal) -> None:
        if self.node_name:
            signal.emit(self.node_name)

    # ---- search ------------------------------------------------------------------------
    def query(self) -> StudyQuery:
        """The search the fields describe; NodeConfigError (a sentence) when a field is bad."""
        lo, hi = parse_date_range(self.dates.text()) if self.dates.text().strip() else ("", "")
        return StudyQuery(
            patient_name=self.patient.text().strip(),
            patient_id=self.patient_id.text().strip(),
            date_from=lo,
            date_to=hi,
            modality=self.modality.currentText().strip().upper(),
            accession=self.accession.text().strip(),
        )

    def request_search(self) -> None:
        if not self.node_name:
            return
        try:
            query = self.query()
        except NodeConfigError as exc:
            self.say(str(exc), error=True)
            return
        self.search_requested.emit(query)

    def set_studies(self, studies: list[StudyRecord]) -> None:
        self.studies = list(studies)
        self.series = []
        self.series_table.setRowCount(0)
        t = self.study_table
        t.setSortingEnabled(False)
        t.setRowCount(len(studies))
        for row, s in enumerate(studies):
            values = (
                s.patient_name.replace("^", " ").strip(),
                s.patient_id,
                _date(s.study_date),
                "/".join(s.modalities),
                s.description,
                s.accession,
                "" if s.series_count is None else s.series_count,
                "" if s.instance_count is None else s.instance_count,
            )
            for col, value in enumerate(values):
                t.setItem(row, col, _item(value, row if col == 0 else None))
        t.setSortingEnabled(True)
        t.sortItems(2, Qt.SortOrder.DescendingOrder)  # the most recent study first
        self.set_retrieved(False)

    def selected_study(self) -> StudyRecord | None:
        rows = self.study_table.selectionModel().selectedRows()
        if not rows:
            return None
        index = self.study_table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
        return self.studies[int(index)]

    def _study_selected(self) -> None:
        study = self.selected_study()
        if study is not None:
            self.study_chosen.emit(study)

    def set_series(self, series: list[SeriesRecord], cached: dict[str, int]) -> None:
        self.series = list(series)
        t = self.series_table
        t.setRowCount(len(series))
        for row, s in enumerate(series):
            have = cached.get(s.series_uid, 0)
            total = s.instance_count
            in_cache = "" if not have else ("yes" if total and have >= total else f"{have}")
            values = (s.number or "", s.modality, s.description, total or "", in_cache)
            for col, value in enumerate(values):
                t.setItem(row, col, _item(value, row if col == 0 else None))

    def selected_series(self) -> list[SeriesRecord]:
        rows = sorted(r.row() for r in self.series_table.selectionModel().selectedRows())
        return [
            self.series[int(self.series_table.item(r, 0).data(Qt.ItemDataRole.UserRole))]
            for r in rows
        ]

    def request_retrieve(self) -> None:
        study = self.selected_study()
        if study is None:
            self.say("Choose a study (and optionally some of its series) to retrieve.")
            return
        self.retrieve_requested.emit(study, self.selected_series())

    # ---- state -------------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        """Network work running: the buttons that would start more are off (Cancel is in the
        window's activity bar)."""
        for w in (self.search_button, self.retrieve_button, self.echo_button, self.send_button):
            w.setEnabled(not busy and bool(self.node_name))

    def set_retrieved(self, ready: bool) -> None:
        self.open_button.setEnabled(ready)

    def say(self, sentence: str, error: bool = False, retry: bool = False) -> None:
        self.status.setText(sentence)
        self.status.setStyleSheet("color: #e06c75" if error else "")
        self.retry_button.setVisible(retry)
