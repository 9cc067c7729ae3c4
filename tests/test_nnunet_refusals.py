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
    import_nnunet_folder,
    load_package,
    predict,
)
from radlens_core.errors import UserError  # noqa: E402
from tests.nnunet_factory import tiny_dataset, write_tiny_folder  # noqa: E402

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
