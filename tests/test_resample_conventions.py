"""Converted MONAI bundles run with MONAI's Spacingd convention (exact spacing, first voxel
kept, the grid in the network's own directions), checked against MONAI's own transforms on
small arrays; RadLens's own models keep theirs; older conversions without axes are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
monai = pytest.importorskip("monai")

from inference import networks, postprocess, preprocess, registry  # noqa: E402
from inference.card import CardError, ModelCard  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.resampling import AxisMap, spacingd_axis  # noqa: E402
from inference.weights import bundle_to_package  # noqa: E402
from tests.inference_factory import save_seg_package  # noqa: E402
from tests.test_inference_card import BUNDLE_NET, _bundle  # noqa: E402


def _monai_image(arr_zyx: np.ndarray, spacing_xyz: tuple[float, ...]):
    """A (1, x, y, z) MetaTensor of a (z, y, x) array whose voxel axes run L, P, S (RadLens's
    identity direction): its RAS affine flips x and y, as a NIfTI of it would say."""
    from monai.data import MetaTensor

    sx, sy, sz = spacing_xyz
    affine = np.diag([-sx, -sy, sz, 1.0])
    data = torch.from_numpy(np.ascontiguousarray(arr_zyx.transpose(2, 1, 0), dtype=np.float32))
    return MetaTensor(data[None], affine=torch.as_tensor(affine))


def _monai_spacingd(arr_zyx, spacing_xyz, pixdim):
    """MONAI's Orientation("RAS") + Spacing(pixdim): (transform, output MetaTensor)."""
    from monai.transforms import Compose, Orientation, Spacing

    chain = Compose([Orientation(axcodes="RAS"), Spacing(pixdim=pixdim, mode="bilinear")])
    return chain, chain(_monai_image(arr_zyx, spacing_xyz))


def _frame(shape_zyx, spacing_xyz, pixdim):
    return preprocess.make_frame(
        shape_zyx,
        spacing_xyz,
        np.eye(3),
        pixdim,
        convention="monai_spacingd",
        model_flip=networks.frame_flips("RAS"),
    )


def _sar(t_ras):
    """(C, x R, y A, z S) -> (C, z S, y A, x R): the order of axes RadLens hands such a net."""
    return torch.as_tensor(np.asarray(t_ras)).permute(0, 3, 2, 1)


CASES = [
    ((9, 14, 11), (1.3, 0.9, 2.5), (2.0, 1.5, 1.7)),  # down in x, y; up in z
    ((7, 10, 13), (0.7, 0.7, 3.0), (1.0, 1.0, 1.0)),  # anisotropic, up in z
    ((12, 8, 8), (2.0, 2.0, 2.0), (3.1, 0.8, 2.0)),  # one axis kept
]


@pytest.mark.parametrize(("shape", "spacing", "pixdim"), CASES)
def test_spacingd_grid_and_values_equal_monais_spacing(shape, spacing, pixdim):
    vol = np.random.default_rng(5).normal(size=shape).astype(np.float32) * 100
    _, ref = _monai_spacingd(vol, spacing, pixdim)
    frame = _frame(shape, spacing, pixdim)
    assert frame.model_shape == tuple(ref.shape[1:][::-1])
    assert frame.model_spacing == tuple(pixdim[::-1])  # exact, not rounded to the extent
    oriented = preprocess.reorient(vol, frame.perm, frame.flip)[None]
    cpu = preprocess.resample_volume(oriented, frame.model_shape, chunk=3, maps=frame.maps)
    on_device = preprocess.resample_on(vol, frame, channels_last=False, device="cpu")
    assert torch.allclose(cpu, _sar(ref), atol=1e-3)
    assert torch.allclose(on_device, _sar(ref), atol=1e-3)


@pytest.mark.parametrize(("shape", "spacing", "pixdim"), CASES)
def test_mapping_back_equals_monais_inverse_of_spacing(shape, spacing, pixdim):
    """Invertd's way back: the model grid sampled at the input's voxel centres, linear."""
    vol = np.zeros(shape, np.float32)
    chain, out = _monai_spacingd(vol, spacing, pixdim)
    model = torch.rand(2, *out.shape[1:], generator=torch.Generator().manual_seed(7))
    out.data = model[:1].clone()  # the inverse follows the recorded transforms, not the data
    back = np.asarray(chain.inverse(out))[0].transpose(2, 1, 0)  # (z, y, x) of the input
    frame = _frame(shape, spacing, pixdim)
    probs = _sar(model)
    ours = np.zeros((2, *frame.oriented_shape), np.float32)
    for z0, z1, slab in preprocess.upsample_chunks(
        probs, frame.oriented_shape, chunk=4, maps=frame.back_maps()
    ):
        ours[:, z0:z1] = slab.numpy()
    ours_input = postprocess.from_model_axes(ours[0], frame)
    assert np.allclose(ours_input, back, atol=1e-4)
    # The label decision on the way back is the argmax of the upsampled probabilities (the
    # fast path interpolates only near boundaries).
    soft = probs.softmax(0)
    full = np.zeros_like(ours)
    for z0, z1, slab in preprocess.upsample_chunks(
        soft, frame.oriented_shape, maps=frame.back_maps()
    ):
        full[:, z0:z1] = slab.numpy()
    dense = postprocess.from_model_axes(full.argmax(0).astype(np.uint8), frame)
    fast = postprocess.labels_to_input(soft, frame, "softmax", [0, 1])
    assert (fast != dense).mean() < 1e-3  # float rounding at exact ties only


def test_spacingd_sizes_round_as_monai_and_start_on_the_first_voxel():
    from monai.data.utils import compute_shape_offset

    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        s, t = float(rng.uniform(0.3, 5)), float(rng.uniform(0.3, 5))
        want, _ = compute_shape_offset([n], np.diag([s, 1.0]), np.diag([t, 1.0]))
        amap = spacingd_axis(n, s, t)
        assert amap.n_out == int(want[0]) and amap.offset == 0.0
    back = AxisMap(0.0, 0.5, 10, 19).inverse()
    assert (back.offset, back.scale, back.n_src, back.n_out) == (0.0, 2.0, 19, 10)


def test_radlens_models_keep_their_own_convention():
    frame = preprocess.make_frame((100, 256, 256), (0.7, 0.7, 1.25), np.eye(3), (2.0, 2.0, 4.0))
    assert frame.convention == "radlens" and frame.maps == () and frame.back_maps() is None
    assert frame.model_shape == (31, 90, 90)  # round(n * s / t), not MONAI's (n - 1) rule
    shipped = registry.find_model("radlens-ct-chest-seg")
    assert "resample" not in shipped.preprocessing
    f = preprocess.card_frame(shipped, (40, 96, 96), (3.6, 3.6, 7.5), np.eye(3))
    assert f.convention == "radlens" and f.flip == (False, False, False)


def test_frame_axes_keep_radlens_order_in_the_networks_directions():
    assert networks.frame_axes("RAS") == "SAR" and networks.frame_axes("SPL") == "SPL"
    assert networks.frame_axes("LPI") == "IPL" and networks.frame_flips("RAS") == (
        False,
        True,
        True,
    )
    inner = torch.nn.Conv3d(1, 2, 3, padding=1)
    wrapped = networks.adapt_axes(inner, "RAS")  # the grid it takes is "SAR": a transpose only
    x = torch.rand(1, 1, 4, 5, 6)
    want = inner(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2)
    assert torch.allclose(wrapped(x), want, atol=1e-6)
    assert networks.adapt_axes(inner, "SPL") is inner


def test_bundle_import_records_monais_convention_only_with_a_spacingd(tmp_path):
    root = _bundle(tmp_path, BUNDLE_NET)
    assert ModelCard.load(root).preprocessing["resample"] == "monai_spacingd"
    config = json.loads((root / "configs" / "inference.json").read_text())
    config["preprocessing"]["transforms"] = [
        t for t in config["preprocessing"]["transforms"] if t["_target_"] != "Spacingd"
    ]
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    card = ModelCard.load(root)
    assert card.target_spacing is None and "resample" not in card.preprocessing


def test_an_unknown_resample_convention_is_refused_with_a_sentence(tmp_path):
    card = save_seg_package(tmp_path / "pkg")
    data = card.to_json()
    data["preprocessing"]["resample"] = "scipy_zoom"
    with pytest.raises(CardError) as err:
        ModelCard.from_dict(data, card.path)
    assert "field 'preprocessing.resample' is 'scipy_zoom'; expected one of radlens," in str(
        err.value
    )


def _converted(tmp_path, dest=None):
    card = bundle_to_package(_bundle(tmp_path, BUNDLE_NET), dest or tmp_path / "converted")
    assert card.network["axes"] == "RAS" and card.preprocessing["resample"] == "monai_spacingd"
    return card, json.loads((card.path / "model.json").read_text())


def test_a_bundle_converted_without_axes_is_refused_asking_for_a_re_import(tmp_path, capsys):
    from radlens_core.paths import user_models_dir
    from viewer.cli import main

    card, data = _converted(tmp_path, user_models_dir() / "old-bundle")
    del data["network"]["axes"]  # what the converter wrote before it recorded the axes
    (card.path / "model.json").write_text(json.dumps(data))
    with pytest.raises(CardError) as err:
        ModelCard.load(card.path)
    text = str(err.value)
    assert "field 'network.axes' is missing: this package was converted from a MONAI" in text
    assert "transposed or mirrored" in text and "radlens models import" in text
    # Listed as refused with that reason, never offered; the shipped models stay offered.
    scan = registry.scan_models()
    assert any(p == card.path and "network.axes" in why for p, why in scan.problems)
    assert card.path not in [c.path for c in scan.cards]
    assert "radlens-ct-chest-seg" in [c.id for c in scan.cards]
    capsys.readouterr()
    assert main(["models"]) == 0  # what `radlens models` prints
    out = capsys.readouterr().out
    assert f"refused {card.path}: " in out and "import the bundle folder again" in out
    assert "radlens-ct-chest-seg" in out


def test_a_bundle_converted_before_the_convention_field_runs_with_monais(tmp_path):
    card, data = _converted(tmp_path)
    del data["preprocessing"]["resample"]  # converted with axes, before this field existed
    (card.path / "model.json").write_text(json.dumps(data))
    again = ModelCard.load(card.path)
    assert again.preprocessing["resample"] == "monai_spacingd"
    res = Engine("cpu").run(np.zeros((12, 20, 20), np.int16), (2, 2, 2), np.eye(3), "CT", again)
    assert res.label_map.array.shape == (12, 20, 20)
    # A RadLens package that was never a bundle keeps RadLens's convention.
    own = save_seg_package(tmp_path / "own")
    assert "resample" not in own.preprocessing and "axes" not in own.network


def test_models_panel_says_how_a_converted_bundle_sees_its_images(tmp_path):
    pytest.importorskip("PySide6")
    from viewer.ui.panels.models import ModelEntry
    from viewer.ui.panels.package_details import entry_text

    card, _ = _converted(tmp_path)
    text = entry_text(ModelEntry(card.path, "user", card))
    assert "Axes: the network sees its images in RAS axes" in text
    assert "Resampling: as MONAI's Spacingd (exact target spacing, first voxel kept)" in text
    own = save_seg_package(tmp_path / "own")
    own_text = entry_text(ModelEntry(own.path, "user", own))
    assert "Axes:" not in own_text and "Resampling:" not in own_text


def test_an_onnx_graph_that_sees_ras_axes_is_fed_as_its_torch_package(tmp_path):
    """``network.axes`` holds for an ONNX graph too: the export of a converted bundle's bare
    network (it sees RAS) gives the torch package's outputs on the engine's grid."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from inference.weights import load_network
    from radlens_core.files import sha256_file

    card, data = _converted(tmp_path)
    folder = tmp_path / "onnx"
    folder.mkdir()
    with torch.no_grad():
        torch.onnx.export(
            load_network(card, own_axes=True),
            (torch.rand(1, 1, 16, 16, 8),),
            str(folder / "model.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "n", 2: "a", 3: "b", 4: "c"}, "logits": {0: "n"}},
        )
    data["id"] = "tiny-bundle-onnx"
    data["network"] = {
        "format": "onnx",
        "weights": "model.onnx",
        "output": "softmax",
        "onnx": {"input": "image", "output": "logits"},
        "axes": "RAS",
    }
    data["files"] = {"model.onnx": sha256_file(folder / "model.onnx")}
    (folder / "model.json").write_text(json.dumps(data))
    onnx_card = ModelCard.load(folder)
    x = torch.rand(1, 1, 8, 16, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = load_network(card)(x)
        got = load_network(onnx_card)(x)
        bare = load_network(onnx_card, own_axes=True)(x.permute(0, 1, 4, 3, 2).flip(2, 3))
    assert got.shape == want.shape == (1, 2, 8, 16, 12)
    assert torch.allclose(got, want, atol=1e-4)
    assert bare.shape == (1, 2, 12, 16, 8)  # the graph itself takes (x, y, z)


def test_heat_maps_and_boxes_map_back_by_the_same_spacingd_grid():
    shape, spacing, pixdim = (9, 14, 11), (1.3, 0.9, 2.5), (2.0, 1.5, 1.7)
    frame = _frame(shape, spacing, pixdim)
    heat = torch.zeros(frame.model_shape)
    heat[3:5, 4:7, 2:5] = torch.linspace(0.2, 0.9, 3 * 2 * 3).reshape(2, 3, 3)
    _, _, dense = next(
        preprocess.upsample_chunks(
            heat[None], frame.oriented_shape, chunk=99, maps=frame.back_maps()
        )
    )
    want = postprocess.from_model_axes(dense[0].numpy(), frame)
    assert np.allclose(postprocess.heat_to_input(heat, frame), want, atol=1e-5)
    assert np.allclose(postprocess.heat_to_input(heat, frame, device="cpu"), want, atol=1e-5)
    # A box's corners go where the model grid's voxel centres sit on the input (x, y are
    # flipped back from the network's directions: index n - 1 - (offset + scale * c)).
    m = frame.maps
    box = postprocess.box_to_input((1.0, 2.0, 3.0, 2.0, 4.0, 5.0), frame)
    z = (m[0].scale * 1.0, m[0].scale * 2.0)
    y = tuple(shape[1] - 1 - m[1].scale * c for c in (4.0, 2.0))
    x = tuple(shape[2] - 1 - m[2].scale * c for c in (5.0, 3.0))
    assert np.allclose(box, (z[0], y[0], x[0], z[1], y[1], x[1]))


def test_fine_tuning_a_converted_bundle_is_refused_with_a_sentence(tmp_path):
    """The trainer works in RadLens's own frame (SPL, RadLens's resampling): a converted
    bundle's network sees RAS and MONAI's grid, so training it here would feed it transposed,
    mirrored images; refused before any weight is read. A RadLens package still loads."""
    from inference.training.package import PackageError, load_parent

    card, _ = _converted(tmp_path)
    with pytest.raises(PackageError) as err:
        load_parent(card.path)
    text = str(err.value)
    assert text.startswith(f"{card.path}: this model was converted from a MONAI bundle")
    assert "RAS axes" in text and "transposed or mirrored" in text
    own = save_seg_package(tmp_path / "own")
    data, state, folder = load_parent(own.path)
    assert folder == own.path and state and data["id"] == own.id
