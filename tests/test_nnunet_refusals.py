"""Every nnU-Net folder RadLens refuses, refused with the sentence the user sees.

Folders are built by the test (tests/nnunet_factory.write_tiny_folder: plans/dataset JSON as
nnU-Net writes them, seeded weights saved as nnU-Net checkpoints); nnunetv2 is not needed.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

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
from radlens_core.errors import UserError  # noqa: E402
from tests.nnunet_factory import tiny_dataset, tiny_plans, write_tiny_folder  # noqa: E402

ARCH = ("configurations", "3d_fullres", "architecture")


def _edit_plans(folder: Path, edit) -> None:
    plans = json.loads((folder / "plans.json").read_text())
    edit(plans)
    (folder / "plans.json").write_text(json.dumps(plans))


def _arch_kwargs(plans: dict) -> dict:
    return plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]


class _RunsCode:
    """A pickle payload: unpickling it calls ``open(path, 'w')`` (it would create the file)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_that_would_run_code_is_refused_and_never_runs(tmp_path):
    folder = write_tiny_folder(tmp_path / "model")
    marker = tmp_path / "pwned.txt"
    ckpt_path = folder / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, weights_only=False)  # the test's own file
    ckpt["logging"] = {"payload": _RunsCode(str(marker))}
    torch.save(ckpt, ckpt_path)
    assert not marker.exists()
    with pytest.raises(NnunetError) as err:
        import_nnunet_folder(folder, tmp_path / "models")
    msg = str(err.value)
    assert "checkpoint_final.pth: refused" in msg
    assert "asks to build io.open" in msg and "could run code" in msg
    assert not marker.exists()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert isinstance(err.value, UserError)


def test_architecture_not_on_the_allow_list_is_refused(tmp_path):
    folder = write_tiny_folder(tmp_path / "model")

    def edit(plans):
        plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = (
            "my_lab.nets.SuperNet"
        )

    _edit_plans(folder, edit)
    with pytest.raises(NnunetError, match="is not an allow-listed architecture") as err:
        import_nnunet_folder(folder, tmp_path / "models")
    assert "plans.json: field 'configurations.3d_fullres.architecture.network_class_name'" in str(
        err.value
    )
    assert "'my_lab.nets.SuperNet'" in str(err.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("nonlin", "os.system"), ("conv_op", "torch.nn.Transformer"), ("norm_op", "builtins.eval")],
)
def test_dotted_op_names_are_mapped_from_an_allow_list_never_imported(tmp_path, key, value):
    folder = write_tiny_folder(tmp_path / "model")
    _edit_plans(folder, lambda p: _arch_kwargs(p).__setitem__(key, value))
    with pytest.raises(NnunetError) as err:
        import_nnunet_folder(folder, tmp_path / "models")
    assert f"field 'configurations.3d_fullres.architecture.arch_kwargs.{key}'" in str(err.value)
    assert f"{value!r} is not allow-listed" in str(err.value)


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (
            lambda kw: kw.__setitem__("features_per_stage", [4, "8"]),
            "features_per_stage[1]",
            "integer",
        ),
        (lambda kw: kw.__setitem__("n_conv_per_stage", [1]), "n_conv_per_stage", "list of 2"),
        (lambda kw: kw.__setitem__("strides", [[1, 1, 1]]), "strides", "one entry per stage"),
        (
            lambda kw: kw.__setitem__("features_per_stage", [4, 100000]),
            "features_per_stage[1]",
            "1 to 4096",
        ),
        (lambda kw: kw.__setitem__("hook", "x"), "hook", "not a known PlainConvUNet argument"),
        (
            lambda kw: kw["nonlin_kwargs"].__setitem__("eval", 1),
            "nonlin_kwargs.eval",
            "not an allowed",
        ),
    ],
)
def test_network_kwargs_are_checked_by_type_and_count(tmp_path, edit, field, words):
    folder = write_tiny_folder(tmp_path / "model")
    _edit_plans(folder, lambda p: edit(_arch_kwargs(p)))
    with pytest.raises(NnunetError) as err:
        import_nnunet_folder(folder, tmp_path / "models")
    assert f"arch_kwargs.{field}'" in str(err.value) and words in str(err.value)


def test_absurd_patch_and_features_are_refused_by_the_memory_estimate_before_building(tmp_path):
    folder = write_tiny_folder(tmp_path / "model")

    def edit(plans):
        cfg = plans["configurations"]["3d_fullres"]
        cfg["patch_size"] = [1024, 1024, 1024]
        _arch_kwargs(plans)["features_per_stage"] = [4096, 4096]

    _edit_plans(folder, edit)
    with pytest.raises(NnunetError) as err:
        import_nnunet_folder(folder, tmp_path / "models", memory_limit=16 * 1024**3)
    msg = str(err.value)
    assert "plans.json: the network it describes would need about" in msg
    assert "refused before building it" in msg and "16.0 GB" in msg


def test_patch_size_beyond_any_real_plan_is_refused_by_validation(tmp_path):
    folder = write_tiny_folder(tmp_path / "model")
    _edit_plans(
        folder,
        lambda p: p["configurations"]["3d_fullres"].__setitem__("patch_size", [2048, 2048, 1024]),
    )
    with pytest.raises(
        NnunetError,
        match=r"field 'configurations.3d_fullres.patch_size\[0\]' must be an integer from 1 to 1024",
    ):
        import_nnunet_folder(folder, tmp_path / "models")


def test_symlinked_checkpoint_leaving_the_folder_is_refused(tmp_path):
    outside = write_tiny_folder(tmp_path / "elsewhere")
    folder = write_tiny_folder(tmp_path / "model")
    link = folder / "fold_0" / "checkpoint_final.pth"
    link.unlink()
    os.symlink(outside / "fold_0" / "checkpoint_final.pth", link)
    with pytest.raises(NnunetError) as err:
        import_nnunet_folder(folder, tmp_path / "models")
    assert "is a link to" in str(err.value) and "outside the model folder" in str(err.value)


def test_missing_fold_is_refused_by_name(tmp_path):
    folder = write_tiny_folder(tmp_path / "model", folds=(0, 1))
    with pytest.raises(
        NnunetError, match=r"fold 3 is missing \(fold_3/checkpoint_final.pth not found\)"
    ):
        import_nnunet_folder(folder, tmp_path / "models", folds=(0, 3))
    (folder / "fold_0" / "checkpoint_final.pth").unlink()
    (folder / "fold_1" / "checkpoint_final.pth").unlink()
    with pytest.raises(NnunetError, match="no fold_N/checkpoint_final.pth found"):
        import_nnunet_folder(folder, tmp_path / "models")


def test_dataset_labels_inconsistent_with_the_network_outputs_are_refused(tmp_path):
    folder = write_tiny_folder(tmp_path / "model")  # 3 output channels
    dataset = tiny_dataset(labels=("liver", "tumour", "cyst"))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(NnunetError) as err:
        import_nnunet_folder(folder, tmp_path / "models")
    assert "dataset.json: lists 4 labels (background included) but the network in" in str(err.value)
    assert "outputs 3 channels" in str(err.value)


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ({"background": 0, "a": 2}, "consecutive from 0"),
        ({"a": 1, "b": 2}, "background the value 0"),
        ({"background": 0, "whole": [1, 2]}, "region-based models are not supported"),
        ({"background": 0, "a": True}, "must be an integer"),
    ],
)
def test_dataset_json_labels_are_validated(tmp_path, labels, words):
    folder = write_tiny_folder(tmp_path / "model")
    dataset = tiny_dataset()
    dataset["labels"] = labels
    (folder / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(NnunetError, match="dataset.json: field 'labels") as err:
        import_nnunet_folder(folder, tmp_path / "models")
    assert words in str(err.value)


def test_deeply_nested_or_oversized_json_is_refused_before_parsing(tmp_path):
    folder = write_tiny_folder(tmp_path / "model")
    (folder / "plans.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(NnunetError, match="nested deeper than 12 levels"):
        import_nnunet_folder(folder, tmp_path / "models")
    (folder / "plans.json").write_text(json.dumps({"x": "a" * (5 * 1024 * 1024)}))
    with pytest.raises(NnunetError, match="bytes allowed for this file"):
        import_nnunet_folder(folder, tmp_path / "models")


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("transpose_forward",), [0, 0, 1], "transpose_forward"),
        (("image_reader_writer",), "NibabelIOWithReorient", "image_reader_writer"),
        (
            ("configurations", "3d_fullres", "normalization_schemes"),
            ["MyNorm"],
            "normalization_schemes[0]",
        ),
        (
            ("configurations", "3d_fullres", "resampling_fn_data"),
            "my_resample",
            "resampling_fn_data",
        ),
        (("configurations", "3d_fullres", "spacing"), [3.0, 0, 1.0], "spacing[1]"),
        (("configurations", "3d_fullres", "previous_stage"), "3d_lowres", "previous_stage"),
        (
            ("foreground_intensity_properties_per_channel",),
            {},
            "foreground_intensity_properties_per_channel",
        ),
    ],
)
def test_plans_fields_are_validated_with_file_and_field_named(tmp_path, path, value, field):
    folder = write_tiny_folder(tmp_path / "model")

    def edit(plans):
        target = plans
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    _edit_plans(folder, edit)
    with pytest.raises(NnunetError) as err:
        import_nnunet_folder(folder, tmp_path / "models")
    assert "plans.json: field '" in str(err.value) and field in str(err.value)


def test_tampered_package_is_refused_at_load(tmp_path):
    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "model"), tmp_path / "models")
    weights = pkg / "fold_0.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(
        NnunetError, match="fold_0.safetensors: SHA-256 mismatch; the model was refused"
    ):
        load_package(pkg)


def test_image_too_large_for_memory_is_refused_before_allocating(tmp_path):
    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "model"), tmp_path / "models")
    huge = np.broadcast_to(np.float32(0), (2000, 2048, 2048))  # no memory behind it
    with pytest.raises(NnunetError) as err:
        predict(huge, (0.5, 0.5, 0.5), None, pkg, memory_limit=8 * 1024**3)
    msg = str(err.value)
    assert msg.startswith(
        "Running 'nnunet-dataset902_tiny-3d_fullres' on this image would need about"
    )
    assert "more than the 8.0 GB" in msg


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


def test_a_failed_import_leaves_nothing_behind(tmp_path):
    src = write_tiny_folder(tmp_path / "model", folds=(0, 1))
    (src / "fold_1" / "checkpoint_final.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(
        NnunetError, match="fold_1/checkpoint_final.pth: is not a readable PyTorch checkpoint"
    ):
        import_nnunet_folder(src, tmp_path / "models")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_package_block_is_validated_again_when_loaded(tmp_path):
    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "model"), tmp_path / "models")
    card = json.loads((pkg / "model.json").read_text())
    bad = copy.deepcopy(card)
    bad["nnunet"]["architecture"]["arch_kwargs"]["nonlin"] = "subprocess.Popen"
    (pkg / "model.json").write_text(json.dumps(bad))
    with pytest.raises(NnunetError) as err:
        load_package(pkg)
    assert "model.json: field 'nnunet.architecture.arch_kwargs.nonlin'" in str(err.value)


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
