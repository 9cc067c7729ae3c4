"""ONNX model packages: a shipped network exported with torch.onnx inside the test, packaged,
run through the engine (onnxruntime) and compared with the torch package; graphs that may not
run are refused with a sentence before a session is made; `models publish` accepts them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from inference import registry  # noqa: E402
from inference.card import ModelCard  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.weights import WeightsError, load_network  # noqa: E402
from phantoms.chest import chest_ct, chest_radiograph  # noqa: E402
from radlens_core.files import sha256_file  # noqa: E402


def _shipped(model_id: str) -> ModelCard:
    try:
        return registry.find_model(model_id)
    except KeyError:
        pytest.skip(f"{model_id} is not shipped in resources/models")


def _onnx_package(card: ModelCard, dest: Path, example: tuple[int, ...]) -> ModelCard:
    """Export ``card``'s torch network to ONNX (the legacy exporter: the dynamo one needs
    onnxscript) with free batch and spatial axes, and write it as a package beside its card."""
    net = load_network(card)
    dest.mkdir()
    spatial = {i: f"s{i}" for i in range(2, len(example))}
    with torch.no_grad():
        torch.onnx.export(
            net,
            (torch.rand(example),),
            str(dest / "model.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={
                "image": {0: "batch", **spatial},
                "logits": {0: "batch", **(spatial if card.task != "classification" else {})},
            },
        )
    data = card.to_json()
    data["network"] = {
        "format": "onnx",
        "weights": "model.onnx",
        "output": card.network["output"],
        "onnx": {"input": "image", "output": "logits"},
    }
    data["files"] = {"model.onnx": sha256_file(dest / "model.onnx")}
    data["id"] = f"{card.id}-onnx"
    for key in ("classes", "gradcam_layer", "max_input_size"):
        if not data.get(key):
            data.pop(key, None)
    data.pop("gradcam_layer", None)  # an ONNX graph has no layers to hook
    (dest / "model.json").write_text(json.dumps(data), encoding="utf-8")
    return ModelCard.load(dest)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_onnx_export_of_the_shipped_segmenter_gives_the_torch_result(tmp_path):
    torch.set_num_threads(2)
    card = _shipped("radlens-ct-chest-seg")
    onnx_card = _onnx_package(card, tmp_path / "seg-onnx", (1, 1, 32, 64, 64))
    assert onnx_card.network["format"] == "onnx" and onnx_card.gradcam_layer is None
    ct = chest_ct((48, 128, 128), seed=4321, n_nodules=3)
    eng = Engine("cpu")
    ref = eng.run(ct.hu, ct.spacing, np.eye(3), "CT", card)
    got = eng.run(ct.hu, ct.spacing, np.eye(3), "CT", onnx_card)
    a, b = ref.label_map.array, got.label_map.array
    agreement = float((a == b).mean())
    heat_diff = float(np.abs(ref.heat_map.array - got.heat_map.array).max())
    print(f"ONNX segmenter: agreement {agreement:.6f}, heat map max |diff| {heat_diff:.2e}")
    assert agreement >= 0.9999, agreement
    for entry in card.labels:
        if (a == entry.index).any():
            assert _dice(a == entry.index, b == entry.index) >= 0.999, entry.name
    assert np.allclose(ref.heat_map.array, got.heat_map.array, atol=1e-4)
    assert got.run.model_id == "radlens-ct-chest-seg-onnx"
    assert got.run.ood_score == pytest.approx(ref.run.ood_score, abs=1e-4)


def test_onnx_export_of_the_shipped_classifier_gives_the_torch_probabilities(tmp_path):
    torch.set_num_threads(2)
    card = _shipped("radlens-cxr-nodule-cls")
    onnx_card = _onnx_package(card, tmp_path / "cls-onnx", (1, 1, 128, 128))
    eng = Engine("cpu")
    for seed, nodule in ((9001, True), (9002, False)):
        xr = chest_radiograph(128, seed=seed, nodule=nodule)
        ref = eng.run(xr.image, (*xr.spacing, 1.0), np.eye(3), "DX", card)
        got = eng.run(xr.image, (*xr.spacing, 1.0), np.eye(3), "DX", onnx_card)
        diffs = [
            abs(p - got.classification.probabilities[n])
            for n, p in ref.classification.probabilities.items()
        ]
        print(f"ONNX classifier seed {seed}: max |probability diff| {max(diffs):.2e}")
        for name, p in ref.classification.probabilities.items():
            assert got.classification.probabilities[name] == pytest.approx(p, abs=1e-5)
        assert got.heat_map is None  # no Grad-CAM from a graph


# ---- graphs that may not run ----------------------------------------------------------------
def _tiny_graph(
    *,
    input_name: str = "image",
    input_type: int = TensorProto.FLOAT,
    channels: int = 1,
    out_channels: int = 3,
    op: tuple[str, str] = ("", "Conv"),
    opset: int = 17,
    external: str | None = None,
) -> onnx.ModelProto:
    """A 1x1x1 convolution from `channels` to `out_channels` (a 3D segmenter's shape)."""
    w = np.full((out_channels, channels, 1, 1, 1), 0.5, np.float32)
    weight = helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel().tolist())
    if external is not None:
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", external
    domain, op_type = op
    node = helper.make_node(op_type, [input_name, "w"], ["logits"], domain=domain or None)
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info(input_name, input_type, ["n", channels, "z", "y", "x"])],
        [
            helper.make_tensor_value_info(
                "logits", TensorProto.FLOAT, ["n", out_channels, "z", "y", "x"]
            )
        ],
        [weight],
    )
    imports = [helper.make_opsetid("", opset)]
    if domain:
        imports.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def _tiny_package(folder: Path, model: onnx.ModelProto, **card_changes) -> ModelCard:
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    card = {
        "schema_version": 1,
        "id": "tiny-onnx",
        "name": "Tiny ONNX segmenter",
        "version": "1.0.0",
        "task": "segmentation",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "target_spacing": None,
        "patch_size": [16, 16, 8],
        "labels": [
            {"index": 1, "name": "a", "color": "#ff0000"},
            {"index": 2, "name": "b", "color": "#00ff00"},
        ],
        "network": {
            "format": "onnx",
            "weights": "model.onnx",
            "output": "softmax",
            "onnx": {"input": "image", "output": "logits"},
        },
        "files": {"model.onnx": sha256_file(folder / "model.onnx")},
    }
    card.update(card_changes)
    (folder / "model.json").write_text(json.dumps(card), encoding="utf-8")
    return ModelCard.load(folder)


def test_a_valid_tiny_graph_runs_through_the_engine(tmp_path):
    card = _tiny_package(tmp_path / "ok", _tiny_graph())
    net = load_network(card)
    y = net(torch.ones(2, 1, 8, 16, 16))
    assert y.shape == (2, 3, 8, 16, 16) and torch.allclose(y, torch.full_like(y, 0.5))
    img = np.random.default_rng(0).normal(size=(8, 20, 20)).astype(np.float32)
    res = Engine("cpu").run(img, (1.0, 1.0, 1.0), np.eye(3), "CT", card)
    assert res.label_map.array.shape == img.shape


@pytest.mark.parametrize(
    ("graph", "changes", "sentence"),
    [
        (
            dict(op=("com.example.evil", "ReadFile")),
            {},
            "uses the operator com.example.evil.ReadFile; custom operator domains need native code",
        ),
        (dict(opset=99), {}, "ONNX opset 99 is not supported"),
        (dict(input_name="pixels"), {}, "the card's input 'image' is not an input of the graph"),
        (dict(input_type=TensorProto.INT64), {}, "input 'image' must be float32"),
        (dict(channels=2), {}, "input 'image' takes 2 channels; the card says input_channels 1"),
        (
            dict(out_channels=5),
            {},
            "output 'logits' has 5 channels; the card's labels/classes need 3",
        ),
        (
            dict(external="../outside.bin"),
            {},
            "keeps its data in '../outside.bin', which is not a file listed with its SHA-256",
        ),
        (dict(external="weights.bin"), {}, "keeps its data in 'weights.bin', which is not a file"),
    ],
)
def test_a_graph_that_may_not_run_is_refused_with_a_sentence(tmp_path, graph, changes, sentence):
    card = _tiny_package(tmp_path / "bad", _tiny_graph(**graph), **changes)
    with pytest.raises(WeightsError, match="model.onnx: ") as err:
        load_network(card)
    assert sentence in str(err.value)


def test_onnx_card_fields_are_checked_when_the_card_is_read(tmp_path):
    from inference.card import CardError

    with pytest.raises(CardError, match="gradcam_layer' must be null for an ONNX model"):
        _tiny_package(tmp_path / "a", _tiny_graph(), gradcam_layer="features.x")
    net = {"format": "onnx", "weights": "model.onnx", "architecture": "monai.UNet"}
    with pytest.raises(CardError, match="an ONNX graph carries its own network"):
        _tiny_package(tmp_path / "b", _tiny_graph(), network=net)
    net = {"format": "onnx", "weights": "model.onnx"}
    with pytest.raises(CardError, match="must name the graph's input and output"):
        _tiny_package(tmp_path / "c", _tiny_graph(), network=net)


def test_onnx_memory_estimate_counts_the_graph_weights(tmp_path):
    from inference.memory import estimate_run

    big = _tiny_graph(channels=1, out_channels=3)
    extra = np.zeros(2_000_000, np.float32)  # 8 MB of stored weights
    big.graph.initializer.append(onnx.numpy_helper.from_array(extra, "unused"))
    card = _tiny_package(tmp_path / "big", big)
    est = estimate_run(card, (8, 16, 16), (1.0, 1.0, 1.0))
    size = (tmp_path / "big" / "model.onnx").stat().st_size
    assert est.parts["weights"] >= size  # state + module, as for the torch networks
    assert card.network["kwargs"]["parameters"] == size // 4


def test_models_publish_accepts_an_onnx_package_and_refuses_a_custom_op(tmp_path):
    from inference.training.publish import PublishError, publish

    card = _tiny_package(tmp_path / "ok", _tiny_graph())
    dest = publish(card.path)
    assert (dest / "model.onnx").is_file()
    installed = ModelCard.load(dest)
    assert installed.network["format"] == "onnx"
    assert load_network(installed)(torch.ones(1, 1, 8, 8, 8)).shape == (1, 3, 8, 8, 8)
    bad = _tiny_package(tmp_path / "bad", _tiny_graph(op=("com.example.evil", "Run")), id="evil")
    with pytest.raises(PublishError, match="custom operator domains"):
        publish(bad.path)
    shutil.rmtree(dest)


def test_radlens_models_import_installs_an_onnx_folder_and_refuses_a_bad_graph(tmp_path, capsys):
    import argparse

    from viewer.commands import models as command
    from viewer.commands.models import add_parser

    card = _tiny_package(tmp_path / "ok", _tiny_graph(), id="tiny-onnx-import")
    assert command.import_model(card.path) == "tiny-onnx-import"
    assert registry.find_model("tiny-onnx-import").network["format"] == "onnx"
    _tiny_package(tmp_path / "bad", _tiny_graph(opset=99), id="tiny-onnx-bad")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"), "models")
    args = parser.parse_args(["models", "import", str(tmp_path / "bad")])
    assert command._import(args) == 2
    err = capsys.readouterr().err
    assert "radlens models import: error:" in err and "ONNX opset 99 is not supported" in err


def test_torchscript_is_still_refused_and_points_to_onnx(tmp_path):
    from inference.card import CardError

    net = {"format": "torchscript", "weights": "model.onnx"}
    with pytest.raises(CardError, match="export the model to ONNX"):
        _tiny_package(tmp_path / "ts", _tiny_graph(), network=net)


def test_models_panel_details_say_the_weights_are_an_onnx_graph(tmp_path):
    pytest.importorskip("PySide6")
    from viewer.ui.panels.models import ModelEntry
    from viewer.ui.panels.package_details import entry_text

    card = _tiny_package(tmp_path / "ok", _tiny_graph())
    text = entry_text(ModelEntry(card.path, "user", card))
    assert "Weights: onnx (an ONNX graph run by onnxruntime, checked against its card" in text


# ---- which onnxruntime provider runs a graph (CUDA cannot be run on this machine: the lists
# onnxruntime reports are injected, the session it is asked for is recorded) ----------------
CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("device", "available", "providers"),
    [
        ("cpu", WITH_CUDA, ["CPUExecutionProvider"]),
        ("mps", WITH_CUDA, ["CPUExecutionProvider"]),
        ("cuda", CPU_ONLY, ["CPUExecutionProvider"]),
        ("cuda", WITH_CUDA, [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]),
        (
            "cuda:1",
            WITH_CUDA,
            [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"],
        ),
    ],
)
def test_provider_choice_follows_the_device_and_what_onnxruntime_has(device, available, providers):
    from inference.onnx_session import providers_for, session_key

    assert providers_for(device, available) == providers
    want_key = "cpu" if providers == CPU_ONLY else (device if ":" in device else "cuda:0")
    assert session_key(device, available) == want_key


def test_a_cuda_run_asks_onnxruntime_for_the_cuda_provider_of_that_gpu(tmp_path, monkeypatch):
    import onnxruntime as ort

    card = _tiny_package(tmp_path / "ok", _tiny_graph())
    net = load_network(card)
    real = ort.InferenceSession
    asked: list = []

    def recording_session(path, opts, providers):
        asked.append(providers)
        return real(path, opts, providers=CPU_ONLY)  # this machine has no CUDA to start

    monkeypatch.setattr(ort, "get_available_providers", lambda: list(WITH_CUDA))
    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    session = net.session_for("cuda:1")
    assert asked == [[("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]]
    assert net.session_for("cuda:1") is session and len(asked) == 1  # made once per GPU
    net.session_for("cuda:0")
    assert asked[-1][0] == ("CUDAExecutionProvider", {"device_id": 0})
    # onnxruntime could not start CUDA here: what it really runs on is recorded, not assumed.
    assert net.providers_used["cuda:1"] == CPU_ONLY
    # Without the CUDA provider a CUDA run is served by the CPU session made at load time.
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(CPU_ONLY))
    assert net.session_for("cuda") is net.session_for("cpu") and len(asked) == 2
