"""Models panel and Train dialog: listing packages, real training subprocesses, Stop, publish."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from radlens_core.paths import user_models_dir
from tests.inference_factory import SEG_KW
from viewer.ui.panels.models import OK_STATUS, ModelsPanel
from viewer.ui.train_dialog import TrainDialog, TrainRequest, build_args
from viewer.ui.train_runner import TrainRunner, child_command, parse_epoch_line

pytestmark = pytest.mark.gui


def write_package(root: Path, model_id: str, **over) -> Path:
    """A small package folder; the weights bytes are not loaded by the panel, only hashed."""
    folder = root / model_id
    folder.mkdir(parents=True)
    weights = f"weights of {model_id}".encode()
    (folder / "model.safetensors").write_bytes(weights)
    card = {
        "id": model_id,
        "name": f"Test model {model_id}",
        "version": "0.3.0",
        "task": "segmentation",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "body_part": "CHEST",
        "labels": [{"index": 1, "name": "lung", "color": "#4fc3f7"}],
        "network": {
            "architecture": "monai.UNet",
            "kwargs": SEG_KW,
            "weights": "model.safetensors",
            "format": "safetensors",
        },
        "files": {"model.safetensors": hashlib.sha256(weights).hexdigest()},
        "training": {"data": "four tiny phantoms", "parent": "radlens-ct-chest-seg@1.0.0"},
        "metrics": {"val_dice": 0.8125, "n_cases": 4},
        "intended_use": "Test package, not for diagnosis.",
        **over,
    }
    (folder / "model.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


def listed_panel(qtbot) -> ModelsPanel:
    panel = ModelsPanel(scan_now=False)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.models_listed, timeout=20_000):
        panel.rescan()
    return panel


def by_id(panel: ModelsPanel) -> dict[str, object]:
    return {e.card.id: e for e in panel.entries if e.card is not None}


# ---- Models panel ---------------------------------------------------------------------------
def test_models_panel_lists_shipped_and_user_packages_with_their_metrics(qtbot):
    write_package(user_models_dir(), "tiny-user-seg")
    panel = listed_panel(qtbot)
    entries = by_id(panel)
    user = entries["tiny-user-seg"]
    assert user.source == "user" and user.status == OK_STATUS
    shipped = [e for e in panel.entries if e.source == "shipped"]
    assert all(e.usable for e in shipped), [e.status for e in shipped]
    assert panel.tree.topLevelItemCount() == len(panel.entries)
    assert panel.select("tiny-user-seg")
    page = panel.details.toPlainText()
    for text in ("val_dice", "0.812", "four tiny phantoms", "radlens-ct-chest-seg@1.0.0"):
        assert text in page
    assert "Test package, not for diagnosis." in page and OK_STATUS in page
    if shipped:  # the repository ships a demo model; its measured metrics are on its card
        panel.tree.setCurrentItem(panel.tree.topLevelItem(panel.entries.index(shipped[0])))
        assert "Measured" in panel.details.toPlainText()


def test_a_package_with_an_evaluation_shows_its_plots_and_report_link(qtbot):
    from PySide6.QtGui import QColor, QImage

    folder = write_package(user_models_dir(), "evaluated-seg")
    plot = QImage(40, 30, QImage.Format.Format_RGB32)
    plot.fill(QColor("#4fc3f7"))
    assert plot.save(str(folder / "dice.png"))
    (folder / "report.html").write_text("<html><body>report</body></html>")
    panel = listed_panel(qtbot)
    panel.select("evaluated-seg")
    page = panel.details.toHtml()
    assert (folder / "dice.png").as_uri() in page and (folder / "report.html").as_uri() in page
    assert "Open the evaluation report" in panel.details.toPlainText()


def test_broken_and_tampered_packages_are_listed_with_their_problem(qtbot):
    root = user_models_dir()
    write_package(root, "good-seg")
    write_package(root, "bad-task", task="banana")
    tampered = write_package(root, "tampered-seg")
    (tampered / "model.safetensors").write_bytes(b"changed after publishing")
    panel = listed_panel(qtbot)
    assert by_id(panel)["good-seg"].usable
    bad = [e for e in panel.entries if e.folder.name == "bad-task"]
    assert len(bad) == 1 and bad[0].card is None and "task" in bad[0].status
    assert "SHA-256 mismatch" in by_id(panel)["tampered-seg"].status
    rows = {panel.tree.topLevelItem(i).text(0): i for i in range(panel.tree.topLevelItemCount())}
    bad_row = panel.tree.topLevelItem(rows["bad-task"])
    assert bad_row.text(4) == "✗ bad card" and "task" in bad_row.toolTip(4)
    panel.select("tampered-seg")
    assert not panel.use_button.isEnabled()
    assert "SHA-256 mismatch" in panel.details.toPlainText()
    assert "2 with problems" in panel.summary.text()


def test_rescan_picks_up_a_package_added_after_the_panel_was_built(qtbot):
    panel = listed_panel(qtbot)
    assert "late-seg" not in by_id(panel)
    write_package(user_models_dir(), "late-seg")
    with qtbot.waitSignal(panel.models_listed, timeout=20_000):
        panel.rescan_button.click()
    assert by_id(panel)["late-seg"].usable


def test_rescan_notices_weights_changed_after_the_first_listing(qtbot):
    folder = write_package(user_models_dir(), "changing-seg")
    panel = listed_panel(qtbot)
    assert by_id(panel)["changing-seg"].usable
    (folder / "model.safetensors").write_bytes(b"same package, other weights")
    with qtbot.waitSignal(panel.models_listed, timeout=20_000):
        panel.rescan()
    assert "SHA-256 mismatch" in by_id(panel)["changing-seg"].status


def test_verifier_hashes_a_package_once_until_its_weights_change(tmp_path):
    """Qt-free: inference.verification remembers verdicts while the files are unchanged."""
    from inference.card import ModelCard
    from inference.verification import PackageVerifier

    folder = write_package(tmp_path, "cached-seg")
    card = ModelCard.load(folder)
    verifier = PackageVerifier()
    assert verifier.verify(card).verified and verifier.hashed == 1
    assert verifier.verify(card).verified and verifier.hashed == 1  # from memory
    (folder / "model.safetensors").write_bytes(b"tampered weights, another size")
    verdict = verifier.verify(card)
    assert not verdict.verified and "SHA-256 mismatch" in verdict.problem
    assert verifier.hashed == 2
    (folder / "model.safetensors").unlink()
    assert "missing" in verifier.verify(card).problem


def test_use_for_analyze_preselects_the_model_and_keeps_it_for_a_suitable_series(qtbot):
    import numpy as np

    from viewer.study.volume import Volume
    from viewer.ui.main_window import MainWindow

    write_package(user_models_dir(), "pinned-seg")
    window = MainWindow()
    qtbot.addWidget(window)
    panel = window.training.panel
    qtbot.waitUntil(lambda: "pinned-seg" in by_id(panel), timeout=20_000)
    assert window.docks["models"].widget() is panel
    assert window.docks["models"] in window.tabifiedDockWidgets(window.docks["tags"])
    panel.select("pinned-seg")
    panel.use_button.click()
    assert window.analyze.menu.current().id == "pinned-seg"
    volume = Volume(np.zeros((4, 8, 8), np.int16), modality="CT")
    window.state.set_volume(volume)  # Analyze picks its best model; the pin wins for CT
    assert window.analyze.wait_for_models()  # the offer is listed on a worker
    assert window.analyze.menu.current().id == "pinned-seg"
    write_package(user_models_dir(), "later-seg")  # published while the series is open
    with qtbot.waitSignal(panel.models_listed, timeout=20_000):
        panel.rescan()
    assert window.analyze.wait_for_models()
    titles = [a.text() for a in window.analyze.menu.actions()]
    assert "Test model later-seg 0.3.0" in titles
    assert window.analyze.menu.current().id == "pinned-seg"
    window.close()


# ---- Train dialog: parsing and command line --------------------------------------------------
def test_epoch_lines_of_the_trainer_become_progress_and_other_lines_do_not():
    p = parse_epoch_line("epoch 3/10  loss 1.2500  val_dice 0.4321  (best 0.5000 @ 2)  0.4 s")
    assert (p.epoch, p.epochs, p.loss, p.metric, p.value, p.best_epoch) == (
        3,
        10,
        1.25,
        "val_dice",
        0.4321,
        2,
    )
    assert parse_epoch_line("segmentation: 3 training / 1 validation cases on cpu") is None
    assert parse_epoch_line("model package: /x (best epoch 2)") is None


def test_form_becomes_the_train_command_line_with_from_and_publish(tmp_path):
    req = TrainRequest(tmp_path / "ds", "detection", tmp_path / "out", 4, "base-id", True)
    args = build_args(req)
    assert args[:4] == ["-m", "viewer", "train", str(tmp_path / "ds")]
    assert args[args.index("--from") + 1] == "base-id" and "--publish" in args
    assert args[args.index("--task") + 1] == "detection" and "--resume" not in args
    named = build_args(
        TrainRequest(
            tmp_path, "segmentation", tmp_path / "o", name="Lungs", version="2.0", model_id="lungs"
        )
    )
    assert named[named.index("--name") + 1] == "Lungs" and "2.0" in named and "--from" not in named
    assert named[named.index("--id") + 1] == "lungs" and "--device" not in named
    on_gpu = build_args(TrainRequest(tmp_path, "segmentation", tmp_path / "o", device="cuda"))
    assert on_gpu[on_gpu.index("--device") + 1] == "cuda"
    # Unset batch size leaves the trainer's per-task default (16 radiographs, 2 CT crops).
    assert "--batch-size" not in on_gpu
    sized = build_args(TrainRequest(tmp_path, "classification", tmp_path / "o", batch_size=8))
    assert sized[sized.index("--batch-size") + 1] == "8"


def test_a_frozen_app_runs_itself_as_the_trainer():
    args = ["-m", "viewer", "train", "ds", "--task", "segmentation"]
    assert child_command(args, frozen=True)[1] == ["train", "ds", "--task", "segmentation"]
    assert child_command(args, frozen=False)[1] == args


def test_base_model_choices_follow_the_task_and_pass_the_package_folder(qtbot, tmp_path):
    from inference.card import ModelCard

    seg = ModelCard.load(write_package(tmp_path / "models", "seg-base"))
    (tmp_path / "ds").mkdir()
    dialog = TrainDialog()
    qtbot.addWidget(dialog)
    dialog.set_request(TrainRequest(tmp_path / "ds", "segmentation", tmp_path / "o"))
    dialog.set_base_models([seg])
    assert dialog.base_combo.findText("seg-base@0.3.0") > 0
    dialog.base_combo.setCurrentIndex(dialog.base_combo.findText("seg-base@0.3.0"))
    assert dialog.request().from_model == str(seg.path)
    dialog.task_combo.setCurrentText("classification")  # a segmenter cannot be its base
    assert dialog.base_combo.findText("seg-base@0.3.0") < 0
    assert dialog.request().from_model is None


def test_form_error_names_the_field_and_starts_nothing(qtbot, tmp_path):
    dialog = TrainDialog()
    qtbot.addWidget(dialog)
    dialog.set_request(TrainRequest(tmp_path / "missing", "segmentation", tmp_path / "out"))
    assert not dialog.start()
    assert dialog.status.text().startswith("Dataset:") and not dialog.runner.running


# ---- Train dialog: real training subprocesses --------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Four tiny chest CT phantoms (four patients) in the RadLens export layout."""
    from inference.training.dataset import write_case
    from phantoms.chest import chest_ct

    root = tmp_path_factory.mktemp("train-ds")
    for i in range(4):
        ct = chest_ct(shape=(16, 32, 32), seed=i, n_nodules=1, nodule_radius_mm=(14.0, 18.0))
        labels = {1: "lung", 2: "nodule"}
        write_case(root, f"case{i}", ct.hu, ct.labels, ct.spacing, labels, patient_id=f"pat{i}")
    return root


@pytest.fixture
def offline_child(tmp_path, monkeypatch) -> Path:
    """Child Pythons get a sitecustomize that refuses network connections and records tries."""
    guard = tmp_path / "guard"
    guard.mkdir()
    log = tmp_path / "network-attempts.txt"
    (guard / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import socket
            open({str(log.with_name("guard-loaded"))!r}, "w").close()
            _real = socket.socket.connect
            def _refuse(self, address):
                if self.family in (socket.AF_INET, socket.AF_INET6):
                    with open({str(log)!r}, "a") as fh:
                        fh.write(repr(address) + "\\n")
                    raise OSError("network blocked in RadLens tests")
                return _real(self, address)
            socket.socket.connect = _refuse
            """
        )
    )
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")])
    )
    return log


def _request(dataset: Path, out: Path, epochs: int, steps: int) -> TrainRequest:
    return TrainRequest(
        dataset, "segmentation", out, epochs, steps_per_epoch=steps, patch=(32, 32, 16), threads=1
    )


def test_train_dialog_runs_a_real_training_and_the_panel_lists_the_published_model(
    qtbot, tiny_dataset, tmp_path, offline_child
):
    from viewer.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    panel = window.training.panel
    qtbot.waitUntil(lambda: not panel.scanning, timeout=20_000)
    window.training.train_action.trigger()  # Tools > Train model…
    dialog = window.training.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.set_request(_request(tiny_dataset, tmp_path / "gui-seg", epochs=2, steps=1))
    ticks, lines, window_bar = [], [], []
    bar = window.services.activity  # the window's one progress bar shows the run too
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(dialog.runner.running))
    timer.timeout.connect(lambda: window_bar.append(bar.sentence.text()) if bar.busy else None)
    timer.start(20)
    dialog.runner.line_received.connect(lines.append)
    dialog.show()
    with qtbot.waitSignal(panel.models_listed, timeout=120_000):
        assert dialog.start()
        assert not dialog.start_button.isEnabled() and dialog.stop_button.isEnabled()
    timer.stop()
    outcome = dialog.runner.outcome
    assert outcome.ok and outcome.stopped is None, outcome.error
    assert [h.epoch for h in outcome.history] == [1, 2]
    assert (dialog.progress.value(), dialog.progress.maximum()) == (2, 2)
    assert dialog.metric_curve.getData()[0].tolist() == [1, 2]
    assert "epoch 2/2" in dialog.log.toPlainText() and any("validation cases" in ln for ln in lines)
    # The event loop kept running while the trainer worked (the timer ticked during the run).
    assert sum(ticks) >= 5
    assert window_bar and window_bar[0].startswith("Training") and not bar.busy
    assert outcome.published == user_models_dir() / "gui-seg"
    entry = by_id(panel)["gui-seg"]
    assert entry.usable and entry.source == "user" and panel.selected() is entry
    assert 0.0 <= entry.card.metrics["val_dice"] <= 1.0
    assert offline_child.with_name("guard-loaded").exists()  # the child ran under the guard
    assert not offline_child.exists(), offline_child.read_text()
    window.close()


def test_stop_ends_the_trainer_within_bounds_and_keeps_the_best_epoch(
    qtbot, tiny_dataset, tmp_path, offline_child
):
    out = tmp_path / "stopped-seg"
    dialog = TrainDialog()
    qtbot.addWidget(dialog)
    dialog.set_request(_request(tiny_dataset, out, epochs=500, steps=2))
    dialog.publish_check.setChecked(False)
    assert dialog.start()
    qtbot.waitUntil(lambda: len(dialog.history) >= 1, timeout=120_000)
    with qtbot.waitSignal(dialog.training_finished, timeout=30_000) as finished:
        dialog.stop_button.click()
    outcome = finished.args[0]
    assert outcome.ok and outcome.stopped == "stop file", outcome.error
    assert outcome.exit_code == 0 and not outcome.crashed
    assert len(outcome.history) < 500
    card = json.loads((out / "model.json").read_text())
    assert card["metrics"]["epoch"] == outcome.best_epoch >= 1
    assert (out / "checkpoint" / "last.safetensors").is_file() and not (out / "STOP").exists()
    assert "kept" in dialog.status.text() and not (user_models_dir() / "stopped-seg").exists()


def test_stop_terminates_a_trainer_that_ignores_the_stop_file(qtbot, tmp_path):
    runner = TrainRunner(stop_grace_ms=300, kill_grace_ms=2000)
    script = (
        "import time; print('segmentation: 1 training / 0 validation cases on cpu', flush=True);"
        " time.sleep(120)"
    )
    with qtbot.waitSignal(runner.line_received, timeout=20_000):
        runner.start(["-c", script], tmp_path / "out")
    with qtbot.waitSignal(runner.run_finished, timeout=20_000) as finished:
        runner.stop()
    assert (tmp_path / "out" / "STOP").is_file()  # asked politely first
    outcome = finished.args[0]
    assert outcome.stopped == "terminated" and not outcome.ok and not runner.running


def test_a_trainer_that_cannot_start_is_reported_not_hung(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.executable", str(tmp_path / "no-such-python"))
    runner = TrainRunner()
    with qtbot.waitSignal(runner.run_finished, timeout=10_000) as finished:
        runner.start(["-m", "viewer", "train"], tmp_path / "out")
    outcome = finished.args[0]
    assert not outcome.ok and "could not start" in outcome.error and not runner.running
