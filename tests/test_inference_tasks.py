"""Each task and weights format through the engine: detection, classification, TorchScript, 2D."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import engine as engine_mod  # noqa: E402
from inference.engine import Engine, EngineError  # noqa: E402
from inference.networks import build_network  # noqa: E402
from inference.weights import save_package  # noqa: E402
from tests.inference_factory import (  # noqa: E402
    CLS_KW,
    SEG_KW,
    cls_card,
    ct_volume,
    save_det_package,
    seg_card,
)

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")
torch.set_num_threads(1)


def test_detector_boxes_land_in_the_input_grid(tmp_path, monkeypatch):
    """A detector whose heat map peaks at a known model voxel gives a box around the matching
    input voxel, through resampling back to the input spacing."""
    card = save_det_package(
        tmp_path / "det",
        thresholds={"score": 0.5, "nms_iou": 0.1},
        patch_size=[20, 20, 10],  # one window = the whole model grid, no padding
    )
    img = ct_volume((20, 40, 40))  # spacing 2 mm, model grid 4 mm: model voxel = 2 input voxels

    def fake(net, x):
        out = torch.zeros((x.shape[0], 4, *x.shape[2:]))
        out[:, 0] = -10.0
        out[:, 0, 5, 6, 7] = 10.0
        out[:, 1:, 5, 6, 7] = torch.tensor([2.0, 3.0, 4.0])
        return out

    monkeypatch.setattr("inference.tasks.segment.forward", fake)
    res = Engine("cpu").run(img, (2.0, 2.0, 2.0), np.eye(3), "CT", card)
    assert len(res.boxes) == 1
    box = res.boxes[0]
    assert box.label == "nodule" and box.score > 0.99
    # model centre (5, 6, 7) -> input (5.5 * 2 - 0.5, ...) = (10.5, 12.5, 14.5); extent doubles
    assert np.allclose(box.center, (10.5, 12.5, 14.5))
    assert np.allclose(np.subtract(box.corners[3:], box.corners[:3]), (4, 6, 8))
    assert res.heat_map.array.shape == img.shape


def test_classifier_gives_probabilities_and_gradcam_in_the_input_grid(tmp_path):
    torch.manual_seed(0)
    card = save_package(
        tmp_path / "cls",
        cls_card(gradcam_layer="features.denseblock2"),
        build_network("monai.DenseNet", CLS_KW),
    )
    img = np.random.default_rng(1).random((1, 50, 44)).astype(np.float32)
    net = engine_mod.loaded_network(card, "cpu").net
    res = Engine("cpu").run(img, (0.5, 0.5, 1.0), np.eye(3), "DX", card)
    probs = res.classification.probabilities
    assert set(probs) == {"normal", "nodule"} and sum(probs.values()) == pytest.approx(
        1.0, abs=1e-5
    )
    assert res.heat_map.array.shape == img.shape
    assert 0.0 <= res.heat_map.array.min() and res.heat_map.array.max() <= 1.0
    assert not net._forward_hooks and all(not m._forward_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_torchscript_package_is_refused_with_a_sentence_pointing_to_onnx(tmp_path):
    """Issue 11: TorchScript carries code that runs with the user's rights; it never loads
    (this test replaces the earlier "TorchScript runs when declared")."""
    import hashlib
    import json

    from inference.card import CardError, ModelCard

    torch.manual_seed(0)
    net = build_network("monai.UNet", SEG_KW).eval()
    folder = tmp_path / "ts"
    folder.mkdir()
    torch.jit.trace(net, torch.zeros(1, 1, 8, 16, 16)).save(str(folder / "model.ts"))
    card = seg_card(
        id="tiny-ts", network={"format": "torchscript", "weights": "model.ts", "output": "softmax"}
    )
    card["files"] = {"model.ts": hashlib.sha256((folder / "model.ts").read_bytes()).hexdigest()}
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(CardError, match="TorchScript is refused: .*runs with your rights.*ONNX"):
        ModelCard.load(folder)


class _Payload:
    """Stands for arbitrary code hidden in a pickle; weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_objects_in_a_state_dict_file_are_never_unpickled(tmp_path, capsys):
    import hashlib
    import json

    folder = tmp_path / "evil"
    folder.mkdir()
    torch.save({"weight": _Payload()}, folder / "model.pt")
    card = seg_card(
        id="evil",
        network={
            "format": "torch_state_dict",
            "architecture": "monai.UNet",
            "kwargs": SEG_KW,
            "weights": "model.pt",
        },
    )
    card["files"] = {"model.pt": hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()}
    (folder / "model.json").write_text(json.dumps(card))
    from inference.card import ModelCard

    with pytest.raises(EngineError, match="model.pt: cannot read weights"):
        Engine("cpu").run(ct_volume(), (1, 1, 1), np.eye(3), "CT", ModelCard.load(folder))
    assert "pickled code ran" not in capsys.readouterr().out


def test_two_d_segmenter_on_a_single_slice_volume_keeps_its_shape(tmp_path):
    kw = {**SEG_KW, "spatial_dims": 2}
    torch.manual_seed(0)
    card = save_package(
        tmp_path / "seg2d",
        seg_card(
            id="tiny-seg2d",
            spatial_dims=2,
            modalities=["DX"],
            target_spacing=[1.0, 1.0],
            patch_size=[32, 32],
            network={"architecture": "monai.UNet", "kwargs": kw, "output": "softmax"},
        ),
        build_network("monai.UNet", kw),
    )
    img = np.random.default_rng(0).random((1, 40, 50)).astype(np.float32)
    res = Engine("cpu").run(img, (0.5, 0.5, 1.0), np.eye(3), "DX", card)
    assert res.label_map.array.shape == (1, 40, 50) and res.heat_map.array.shape == (1, 40, 50)
    area_mm2 = (res.label_map.array == 1).sum() * 0.25
    assert res.label_map.volumes_ml["lung"] == pytest.approx(area_mm2)


def test_gradcam_is_high_where_the_evidence_for_the_class_is():
    """A toy classifier whose 'nodule' logit is the summed brightness of its feature map:
    Grad-CAM for 'nodule' must peak on the bright blob (not be inverted), in [0, 1]."""
    from inference.tasks.classify import gradcam

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Conv2d(1, 1, 1, bias=False)
            torch.nn.init.ones_(self.features.weight)

        def forward(self, x):
            s = torch.relu(self.features(x)).mean(dim=(2, 3))
            return torch.cat([-s, s], dim=1)

    img = torch.zeros(1, 16, 16)
    img[0, 10:13, 3:6] = 1.0
    cam = gradcam(Toy(), img, "features", 1, "cpu").numpy()
    assert cam.shape == (16, 16) and cam.min() == 0.0 and cam.max() == 1.0
    assert cam[10:13, 3:6].mean() == 1.0 and cam[:8].max() == 0.0
