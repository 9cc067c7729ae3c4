"""Importing an nnU-Net v2 folder as a RadLens package and running it (no nnunetv2 needed):
what the package holds, atomic writes, the architectures and plan formats nnU-Net ships,
2D inputs, progress and cancel. Refusals are in test_nnunet_refusals.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("dynamic_network_architectures")

from inference.nnunet import (  # noqa: E402
    NnunetError,
    estimate_memory,
    import_nnunet_folder,
    load_package,
    predict,
)
from tests.nnunet_factory import tiny_dataset, tiny_plans, write_tiny_folder  # noqa: E402


def test_memory_estimate_grows_with_classes_only_at_network_resolution(tmp_path):
    from inference.nnunet.plans import read_config

    plans = tiny_plans()
    few = read_config(plans, tiny_dataset(), "3d_fullres", "nnUNetTrainer", [0, 1, 2])
    many_ds = tiny_dataset(labels=tuple(f"organ{i}" for i in range(117)))
    many = read_config(plans, many_ds, "3d_fullres", "nnUNetTrainer", [0, 1, 2])
    shape, spacing = (300, 512, 512), (1.5, 0.8, 0.8)  # zyx
    a = estimate_memory(few, shape, spacing, 1).parts["mapping back"]
    b = estimate_memory(many, shape, spacing, 1).parts["mapping back"]
    n_pre = 150 * 410 * 410  # the network grid (3 x 1 x 1 mm)
    # 115 more classes cost float16 at network resolution, nothing at image resolution
    assert b - a == pytest.approx(115 * n_pre * 2, rel=0.05)


def test_import_writes_a_complete_package_atomically(tmp_path):
    src = write_tiny_folder(tmp_path / "model", folds=(0, 1))
    (src / "LICENSE").write_text("CC-BY 4.0, by the tiny-model authors")
    steps = []
    pkg = import_nnunet_folder(
        src, tmp_path / "models", model_id="tiny", progress=lambda f, s: steps.append(f)
    )
    assert pkg == tmp_path / "models" / "tiny"
    assert sorted(p.name for p in pkg.iterdir()) == [
        "LICENSE.txt",
        "fold_0.safetensors",
        "fold_1.safetensors",
        "model.json",
    ]
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["tiny"]  # no temporary left
    card = json.loads((pkg / "model.json").read_text())
    assert card["id"] == "tiny" and card["task"] == "segmentation" and card["modalities"] == ["CT"]
    assert [(e["index"], e["name"]) for e in card["labels"]] == [(1, "liver"), (2, "tumour")]
    assert set(card["files"]) == {"fold_0.safetensors", "fold_1.safetensors"}
    assert card["network"]["format"] == "safetensors"
    assert card["network"]["architecture"] == "nnunet.PlainConvUNet"
    assert card["network"]["kwargs"]["conv_op"] == "Conv3d"
    assert card["source_format"] == "nnunet_v2"
    block = card["nnunet"]
    assert block["folds"] == ["fold_0.safetensors", "fold_1.safetensors"]
    assert block["inference_allowed_mirroring_axes"] == [0, 1, 2]
    assert block["normalization"][0]["scheme"] == "CTNormalization"
    assert block["licence"] == "LICENSE.txt"
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)
    from safetensors import safe_open

    with safe_open(str(pkg / "fold_0.safetensors"), "pt") as fh:  # plain tensors, no pickle
        assert any(k.startswith("decoder.seg_layers") for k in fh.keys())
    model = load_package(pkg)
    assert [(label.index, label.name) for label in model.labels] == [(1, "liver"), (2, "tumour")]
    with pytest.raises(NnunetError, match="already installed; choose another id"):
        import_nnunet_folder(src, tmp_path / "models", model_id="tiny")


def test_tiny_model_runs_and_returns_the_input_grid(tmp_path):
    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "model"), tmp_path / "models")
    rng = np.random.default_rng(0)
    image = rng.normal(0, 100, (9, 21, 19)).astype(np.float32)
    seen = []
    seg, _ = predict(
        image, (0.9, 1.1, 2.5), np.eye(3), pkg, progress=lambda f, s: seen.append((f, s))
    )
    assert seg.shape == image.shape and seg.dtype == np.uint8 and seg.max() <= 2
    assert seen[0][0] == 0.0 and seen[-1][0] == pytest.approx(1.0)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))


def test_cancel_stops_between_tiles(tmp_path):
    from radlens_core.progress import Cancelled

    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "model"), tmp_path / "models")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        predict(np.ones((12, 30, 30), np.float32), (1.0, 1.0, 3.0), None, pkg, cancel=cancel)


def _resenc_plans() -> dict:
    plans = tiny_plans(features=(4, 8, 8))
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    arch["network_class_name"] = (
        "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet"
    )
    kw = arch["arch_kwargs"]
    kw["n_blocks_per_stage"] = kw.pop("n_conv_per_stage")
    return plans


def test_residual_encoder_unet_folder_imports_and_runs(tmp_path):
    pkg = import_nnunet_folder(
        write_tiny_folder(tmp_path / "model", plans=_resenc_plans()), tmp_path / "models"
    )
    card = json.loads((pkg / "model.json").read_text())
    assert card["network"]["architecture"] == "nnunet.ResidualEncoderUNet"
    model = load_package(pkg)
    n_params = sum(p.numel() for p in model.network.parameters())
    # the estimate made before building is of the right size (it gates the memory check)
    assert 0.5 < model.config.network.parameter_count() / n_params < 2.0
    seg, _ = predict(np.zeros((10, 20, 20), np.float32) + 50, (1.0, 1.0, 3.0), None, model)
    assert seg.shape == (10, 20, 20)


def test_plans_written_before_the_architecture_key_are_read_like_nnunet_reads_them(tmp_path):
    plans = tiny_plans()
    cfg = plans["configurations"]["3d_fullres"]
    kw = cfg.pop("architecture")["arch_kwargs"]
    cfg.update(
        UNet_class_name="PlainConvUNet",
        UNet_base_num_features=4,
        unet_max_num_features=8,
        n_conv_per_stage_encoder=kw["n_conv_per_stage"],
        n_conv_per_stage_decoder=kw["n_conv_per_stage_decoder"],
        num_pool_per_axis=[0, 1, 1],
        pool_op_kernel_sizes=kw["strides"],
        conv_kernel_sizes=kw["kernel_sizes"],
    )
    folder = write_tiny_folder(tmp_path / "model")  # weights of the same network
    (folder / "plans.json").write_text(json.dumps(plans))
    pkg = import_nnunet_folder(folder, tmp_path / "models")
    kwargs = json.loads((pkg / "model.json").read_text())["network"]["kwargs"]
    assert kwargs["features_per_stage"] == [4, 8] and kwargs["conv_op"] == "Conv3d"
    assert kwargs["norm_op"] == "InstanceNorm3d" and kwargs["nonlin"] == "LeakyReLU"


def test_checkpoint_written_under_numpy_1_is_read(tmp_path):
    """numpy 1.x pickles name numpy.core.multiarray.scalar (numpy 2: numpy._core...)."""
    import io

    folder = write_tiny_folder(tmp_path / "model")
    path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(path, weights_only=False)  # the test's own file
    buf = io.BytesIO()
    torch.save(ckpt, buf, _use_new_zipfile_serialization=False)  # no zip CRC to keep right
    data = buf.getvalue()
    assert b"numpy._core.multiarray" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    pkg = import_nnunet_folder(folder, tmp_path / "models")
    assert (pkg / "fold_0.safetensors").is_file()


def _natural_2d_plans() -> dict:
    """A 2d configuration of a PNG dataset (nnU-Net's NaturalImage2DIO)."""
    plans = tiny_plans()
    plans["image_reader_writer"] = "NaturalImage2DIO"
    cfg = plans["configurations"]["3d_fullres"]  # the name is only a key; the nets are 2D
    cfg["patch_size"] = [32, 32]
    cfg["spacing"] = [1.0, 1.0]
    kw = cfg["architecture"]["arch_kwargs"]
    kw.update(
        conv_op="torch.nn.modules.conv.Conv2d",
        norm_op="torch.nn.modules.instancenorm.InstanceNorm2d",
        kernel_sizes=[[3, 3], [3, 3]],
        strides=[[1, 1], [2, 2]],
    )
    return plans


def test_natural_2d_images_ignore_pixel_spacing_like_nnunet(tmp_path):
    plans = _natural_2d_plans()
    folder = write_tiny_folder(tmp_path / "model", plans=plans)
    ckpt_path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, weights_only=False)  # the test's own file
    ckpt["inference_allowed_mirroring_axes"] = (0, 1)
    torch.save(ckpt, ckpt_path)
    pkg = import_nnunet_folder(folder, tmp_path / "models")
    assert json.loads((pkg / "model.json").read_text())["spatial_dims"] == 2
    image = np.random.default_rng(0).uniform(0, 255, (40, 50)).astype(np.float32)
    a, _ = predict(image, (0.14, 0.14), None, pkg)  # a radiograph's pixel spacing
    b, _ = predict(image, (1.0, 1.0), None, pkg)
    assert a.shape == (40, 50)  # the caller's grid (nnU-Net reads a PNG as one slice)
    np.testing.assert_array_equal(a, b)
