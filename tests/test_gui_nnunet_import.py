"""File > Import model… imports an nnU-Net v2 folder under the one progress bar, and the
Models panel lists the new model with its source format."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("dynamic_network_architectures")
pytest.importorskip("pytestqt")

from tests.nnunet_factory import write_tiny_folder  # noqa: E402


def test_file_import_model_lists_the_imported_nnunet_model(qtbot, tmp_path):
    from viewer.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    training = window.training
    panel = training.panel
    qtbot.waitUntil(lambda: not panel.scanning, timeout=20_000)
    file_menu = window.services.menu("File")
    texts = [a.text() for a in file_menu.actions()]
    assert "&Import model…" in texts
    assert texts.index("&Import model…") < texts.index("&Quit")

    src = write_tiny_folder(tmp_path / "Dataset_tiny")
    with qtbot.waitSignal(panel.models_listed, timeout=60_000):
        training.import_model(src)
    ids = {e.card.id: e for e in panel.entries if e.card is not None}
    imported = [e for i, e in ids.items() if i.startswith("nnunet-")]
    assert len(imported) == 1
    assert imported[0].card.source == "nnunet_v2"
    window.close()


def test_import_of_a_folder_that_is_no_model_says_what_is_supported(qtbot, tmp_path):
    from viewer.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    window.training.import_model(tmp_path)
    qtbot.waitUntil(lambda: any("not imported" in m for m in messages), timeout=20_000)
    assert any("nnU-Net v2 trained-model folder" in m for m in messages)
    window.close()
