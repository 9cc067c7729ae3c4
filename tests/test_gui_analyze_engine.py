"""Analyze through the real engine: tiny random packages always, the shipped models when present."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PySide6.QtWidgets import QMainWindow, QSplitter  # noqa: E402

from inference import registry  # noqa: E402
from phantoms.chest import chest_ct, chest_radiograph  # noqa: E402
from tests.inference_factory import save_seg_package  # noqa: E402
from viewer.labels.results import ResultStore  # noqa: E402
from viewer.study.volume import Volume  # noqa: E402
from viewer.ui.analysis import AnalysisController  # noqa: E402
from viewer.ui.analyze_feature import AnalyzeFeature  # noqa: E402
from viewer.ui.feature import WindowServices  # noqa: E402
from viewer.ui.model_offer import admitted_offer  # noqa: E402
from viewer.ui.slice_view import SliceView  # noqa: E402
from viewer.ui.state import ViewerState  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("fresh_engine_cache")]
torch.set_num_threads(1)

#: A model grid coarse enough to keep these GUI runs quick.
COARSE = [8.0, 8.0, 8.0]
RANDOM_USE = "Test package: random weights, not for diagnosis."


@pytest.fixture
def tiny_seg(tmp_path):
    return save_seg_package(tmp_path / "seg", target_spacing=COARSE, intended_use=RANDOM_USE)


@pytest.fixture(scope="module")
def phantom():
    return chest_ct((48, 96, 96), seed=11, n_nodules=3)


class _Window(QMainWindow):
    def __init__(self, store: ResultStore, cards: list) -> None:
        super().__init__()
        self.state = ViewerState(self)
        split = QSplitter(self)
        self.views = {p: SliceView(self.state, p, split) for p in ("axial", "coronal", "sagittal")}
        self.setCentralWidget(split)
        self.services = WindowServices(self, self.state)
        self.analyze = AnalyzeFeature(
            self.services,
            controller=AnalysisController(store=store, device="cpu"),
            store=store,
            models=lambda v: admitted_offer(cards),
        )


def _window(qtbot, tmp_path, volume: Volume, cards: list) -> _Window:
    win = _Window(ResultStore(tmp_path / "results"), cards)
    qtbot.addWidget(win)
    win.resize(900, 400)
    win.show()
    win.state.set_volume(volume)
    return win


def _ct(phantom, uid: str = "2.25.1") -> Volume:
    return Volume(phantom.hu, spacing=phantom.spacing, modality="CT", series_uid=uid)


def _run(qtbot, win, card, signal: str = "analysis_finished", timeout: int = 60_000):
    with qtbot.waitSignal(getattr(win.analyze.controller, signal), timeout=timeout) as blocker:
        assert win.analyze.analyze(card)
    return blocker.args[0] if blocker.args else None


def test_tiny_segmenter_result_layers_match_the_series_grid(qtbot, tmp_path, phantom, tiny_seg):
    vol = _ct(phantom)
    win = _window(qtbot, tmp_path, vol, [tiny_seg])
    outcome = _run(qtbot, win, tiny_seg)
    assert outcome.record.device == "cpu" and outcome.record.label_map.shape == vol.shape
    layers = {layer.name: layer for layer in win.state.layers}
    assert set(layers) == {"Tiny segmenter: mask", "Tiny segmenter: heat map"}
    for layer in layers.values():
        assert layer.data.shape == vol.shape
    for view in win.views.values():
        overlay = view.overlays["Tiny segmenter: mask"]
        assert overlay.drawn_rgba().shape[:2] == (view.geometry_.n_rows, view.geometry_.n_cols)
    assert "random weights" in win.analyze.findings.intended_use.text()


def test_tampered_weights_refuse_the_model_and_keep_the_study(qtbot, tmp_path, phantom, tiny_seg):
    weights = tiny_seg.path / tiny_seg.network["weights"]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    vol = _ct(phantom)
    win = _window(qtbot, tmp_path, vol, [tiny_seg])
    message = _run(qtbot, win, tiny_seg, "analysis_failed")
    assert "SHA-256 mismatch" in message and "model.safetensors" in message
    assert win.analyze.message_box.isVisible()
    assert win.state.volume is vol and len(win.state.layers) == 0
    win.state.step_slice("axial", -5)
    assert win.views["axial"].index() == vol.shape[0] // 2 - 5


def test_wrong_modality_is_a_message(qtbot, tmp_path, tiny_seg):
    xr = chest_radiograph(64, seed=2, nodule=True)
    win = _window(qtbot, tmp_path, Volume(xr.image, modality="DX", series_uid="2.25.3"), [tiny_seg])
    message = _run(qtbot, win, tiny_seg, "analysis_failed")
    assert "is for CT images; this one is DX" in message


def test_cancel_mid_run_gives_no_layers(qtbot, tmp_path, phantom):
    # Native spacing and 8-voxel patches: hundreds of windows, so the cancel lands mid-run.
    card = save_seg_package(
        tmp_path / "slow", id="slow-seg", target_spacing=None, patch_size=[8, 8, 8]
    )
    win = _window(qtbot, tmp_path, _ct(phantom), [card])
    ctl = win.analyze.controller
    win.analyze.analyze(card)

    def in_windows() -> bool:
        return win.services.activity.sentence.text().startswith("window ")

    qtbot.waitUntil(in_windows, timeout=30_000)
    with qtbot.waitSignal(ctl.analysis_cancelled, timeout=30_000):
        win.services.activity.cancel_button.click()
    assert len(win.state.layers) == 0 and not win.analyze.findings.runs()


# ---- the shipped models (resources/models), when the models branch has installed them ----------


def _shipped(modality: str, dims: int, task: str):
    """The installed model for a task (found by what it does: the ids are the models branch's)."""
    card = registry.best_model(modality, dims, "CHEST", task=task)
    if card is None:
        pytest.skip(f"no shipped {modality} {task} model is installed yet")
    return card


def _near_any(points, target, tol) -> bool:
    return any(np.linalg.norm(np.subtract(p, target)) <= tol for p in points)


def test_shipped_ct_segmenter_masks_lungs_and_the_largest_nodule(qtbot, tmp_path, phantom):
    seg = _shipped("CT", 3, "segmentation")
    win = _window(qtbot, tmp_path, _ct(phantom, "2.25.4"), [seg])
    _run(qtbot, win, seg)
    mask = win.state.layers.get(f"{seg.name}: mask").data
    big = max(phantom.nodules, key=lambda n: n.radius_mm)
    centre = tuple(int(round(c)) for c in big.center_zyx)
    assert mask[centre] == 2
    assert (phantom.labels == 1)[mask == 1].mean() > 0.8  # the lung mask lies on the lungs
    regions = [f for f in win.analyze.findings.findings() if f.kind == "region"]
    assert _near_any([f.centre_zyx for f in regions], big.center_zyx, 3.0)
    # Jumping to that finding puts the nodule's colour under the cursor on every plane.
    win.analyze.jump_to(
        min(regions, key=lambda f: np.linalg.norm(np.subtract(f.centre_zyx, centre)))
    )
    for view in win.views.values():
        g = view.geometry_
        _, row, col = g.from_voxel(centre)
        rgba = view.overlays[f"{seg.name}: mask"].drawn_rgba()
        assert tuple(rgba[int(round(row)), int(round(col)), :3]) == (0xFF, 0x70, 0x43), view.plane


def test_shipped_ct_detector_boxes_the_largest_nodule_on_every_plane(qtbot, tmp_path, phantom):
    det = _shipped("CT", 3, "detection")
    win = _window(qtbot, tmp_path, _ct(phantom, "2.25.6"), [det])
    _run(qtbot, win, det)
    assert f"{det.name}: boxes" in win.state.layers.names()
    big = max(phantom.nodules, key=lambda n: n.radius_mm)
    boxes = [f for f in win.analyze.findings.findings() if f.kind == "box"]
    near = [f for f in boxes if _near_any([f.centre_zyx], big.center_zyx, 3.0)]
    assert near, [f.describe() for f in boxes]
    win.analyze.jump_to(near[0])
    for view in win.views.values():
        assert any(hasattr(o, "rects") and o.rects for o in view.overlays.values()), view.plane


def test_shipped_cxr_classifier_gives_probabilities_and_heat_map(qtbot, tmp_path):
    cls = _shipped("DX", 2, "classification")
    xr = chest_radiograph(128, seed=3, nodule=True)
    vol = Volume(xr.image, spacing=(*xr.spacing, 1.0), modality="DX", series_uid="2.25.5")
    win = _window(qtbot, tmp_path, vol, [cls])
    outcome = _run(qtbot, win, cls)
    (finding,) = [f for f in outcome.summary.findings if f.kind == "classification"]
    assert {name for name, _ in finding.probabilities} == {"normal", "nodule"}
    assert finding.label == "nodule"
    heat = win.state.layers.get(f"{cls.name}: heat map")
    assert heat.visible and heat.data.shape == vol.shape
    # What is drawn is the heat map itself, pixel for pixel, above the threshold.
    drawn = win.views["axial"].overlays[heat.name].drawn_rgba()[..., 3] > 0
    assert np.array_equal(drawn, heat.data[0] >= heat.threshold)


def test_shipped_cxr_gradcam_is_brightest_at_the_nodule(qtbot, tmp_path):
    cls = _shipped("DX", 2, "classification")
    xr = chest_radiograph(128, seed=3, nodule=True)
    vol = Volume(xr.image, spacing=(*xr.spacing, 1.0), modality="DX", series_uid="2.25.7")
    win = _window(qtbot, tmp_path, vol, [cls])
    _run(qtbot, win, cls)
    heat = win.state.layers.get(f"{cls.name}: heat map").data
    y0, x0, y1, x1 = (int(round(v)) for v in xr.box_yx)
    assert heat[0, y0 : y1 + 1, x0 : x1 + 1].mean() > heat.mean()
