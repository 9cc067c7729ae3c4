"""The Add/Edit PACS node dialog: DIMSE (AE title, host, port, RadLens's AE title and storage
port, C-GET or C-MOVE) or DICOMweb (URL, none/basic/bearer authentication, TLS verification)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from viewer.pacs.errors import NodeConfigError
from viewer.pacs.nodes import DimseNode, Node, WebNode


class NodeDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, node: Node | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit PACS node" if node else "Add PACS node")
        self.result_node: Node | None = None
        layout = QVBoxLayout(self)
        top = QFormLayout()
        self.name = QLineEdit(self)
        self.name.setObjectName("pacs_node_name")
        self.kind = QComboBox(self)
        self.kind.addItems(["DIMSE (C-FIND / C-GET / C-MOVE)", "DICOMweb (QIDO / WADO / STOW)"])
        top.addRow("Name", self.name)
        top.addRow("Protocol", self.kind)
        layout.addLayout(top)

        self.pages = QStackedWidget(self)
        dimse = QWidget(self)
        form = QFormLayout(dimse)
        self.aet = QLineEdit("ORTHANC", dimse)
        self.host = QLineEdit("127.0.0.1", dimse)
        self.port = QSpinBox(dimse)
        self.port.setRange(1, 65535)
        self.port.setValue(4242)
        self.local_aet = QLineEdit("RADLENS", dimse)
        self.local_port = QSpinBox(dimse)
        self.local_port.setRange(1, 65535)
        self.local_port.setValue(11112)
        self.method = QComboBox(dimse)
        self.method.addItems(["C-GET", "C-MOVE to RadLens's storage port"])
        form.addRow("PACS AE title", self.aet)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("RadLens AE title", self.local_aet)
        form.addRow("RadLens storage port", self.local_port)
        form.addRow("Retrieve with", self.method)
        web = QWidget(self)
        wform = QFormLayout(web)
        self.url = QLineEdit(web)
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.auth = QComboBox(web)
        self.auth.addItems(["None", "Basic (user and password)", "Bearer token"])
        self.user = QLineEdit(web)
        self.password = QLineEdit(web)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.token = QLineEdit(web)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.verify = QCheckBox("Verify the server's TLS certificate", web)
        self.verify.setChecked(True)
        wform.addRow("Base URL", self.url)
        wform.addRow("Authentication", self.auth)
        wform.addRow("User", self.user)
        wform.addRow("Password", self.password)
        wform.addRow("Token", self.token)
        wform.addRow("", self.verify)
        self.pages.addWidget(dimse)
        self.pages.addWidget(web)
        layout.addWidget(self.pages)
        self.error = QLabel("", self)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #e06c75")
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.kind.currentIndexChanged.connect(self.pages.setCurrentIndex)
        self.auth.currentIndexChanged.connect(self._auth_changed)
        if node is not None:
            self._fill(node)
        self._auth_changed()

    def _auth_changed(self) -> None:
        mode = self.auth.currentIndex()
        self.user.setEnabled(mode == 1)
        self.password.setEnabled(mode == 1)
        self.token.setEnabled(mode == 2)

    def _fill(self, node: Node) -> None:
        self.name.setText(node.name)
        if isinstance(node, DimseNode):
            self.kind.setCurrentIndex(0)
            self.aet.setText(node.aet)
            self.host.setText(node.host)
            self.port.setValue(node.port)
            self.local_aet.setText(node.local_aet)
            self.local_port.setValue(node.local_port)
            self.method.setCurrentIndex(1 if node.retrieve == "move" else 0)
        else:
            self.kind.setCurrentIndex(1)
            self.url.setText(node.url)
            self.auth.setCurrentIndex({"none": 0, "basic": 1, "bearer": 2}[node.auth])
            self.user.setText(node.user)
            self.password.setText(node.password)
            self.token.setText(node.token)
            self.verify.setChecked(node.verify_tls)
        self.pages.setCurrentIndex(self.kind.currentIndex())

    def build(self) -> Node:
        """The node the fields describe; NodeConfigError (a sentence) when they cannot work."""
        name = self.name.text().strip()
        if self.kind.currentIndex() == 0:
            return DimseNode(
                name,
                self.aet.text().strip(),
                self.host.text().strip(),
                self.port.value(),
                local_aet=self.local_aet.text().strip(),
                local_port=self.local_port.value(),
                retrieve="move" if self.method.currentIndex() == 1 else "get",
            )
        mode = self.auth.currentIndex()
        return WebNode(
            name,
            self.url.text().strip(),
            user=self.user.text().strip() if mode == 1 else "",
            password=self.password.text() if mode == 1 else "",
            token=self.token.text().strip() if mode == 2 else "",
            verify_tls=self.verify.isChecked(),
        )

    def accept(self) -> None:
        try:
            self.result_node = self.build()
        except NodeConfigError as exc:
            self.error.setText(str(exc))
            return
        super().accept()
