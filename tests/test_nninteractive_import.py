"""nnInteractive import: a structurally valid nnInteractive model folder (nnU-Net v2 layout:
plans.json, dataset.json, fold_0/checkpoint_final.pth of random weights, LICENSE), built
here, imported by `radlens models import` as an interactive package, its licence carried,
and run safely through the engine's interactive task."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.card import ModelCard
from inference.engine import Engine, clear_cache
from inference.interactive import Prompts, mask_of, segment_with_prompts
from inference.nnunet import NnunetError
from inference.nnunet.interactive import (
    INTERACTION_CHANNELS,
    import_nninteractive_folder,
    is_nninteractive_folder,
)
from tests.nnunet_factory import tiny_dataset, tiny_plans

ROOT = Path(__file__).resolve().parents[1]
LICENCE = "CC BY-NC-SA 4.0\nhttps://creativecommons.org/licenses/by-nc-sa/4.0/\n"


def _network(in_channels: int, plans: dict):
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    kw = dict(plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"])
    kw.update(
        conv_op=torch.nn.Conv3d,
        norm_op=torch.nn.InstanceNorm3d,
        dropout_op=None,
        nonlin=torch.nn.LeakyReLU,
    )
    torch.manual_seed(3)
    return PlainConvUNet(input_channels=in_channels, num_classes=2, deep_supervision=False, **kw)


def write_nninteractive_folder(
    folder: Path, trainer: str = "nnInteractiveTrainerV2_nodelete", in_channels: int = 8
) -> Path:
    """What nnInteractive's inference session reads: dataset.json, plans.json,
    fold_0/checkpoint_final.pth ({network_weights, trainer_name, init_args.configuration,
    ...}) and a LICENSE whose first line is the licence."""
    import torch

    plans = tiny_plans(features=(4, 8), patch=(16, 16, 16))
    plans["dataset_name"] = "Dataset225_nnInteractiveTiny"
    dataset = tiny_dataset(labels=("structure",))
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "LICENSE").write_text(LICENCE)
    net = _network(in_channels, plans)
    ckpt = {
        "network_weights": net.state_dict(),
        "optimizer_state": None,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0},
        "trainer_name": trainer,
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": 1,
    }
    torch.save(ckpt, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def test_folder_is_recognised_by_its_trainer(tmp_path):
    src = write_nninteractive_folder(tmp_path / "nnint")
    assert is_nninteractive_folder(src)
    plain = write_nninteractive_folder(tmp_path / "plain", trainer="nnUNetTrainer", in_channels=1)
    assert not is_nninteractive_folder(plain)


def test_cli_imports_it_as_an_interactive_package_with_its_licence(tmp_path):
    src = write_nninteractive_folder(tmp_path / "nnint")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RADLENS_DATA_DIR": str(tmp_path / "data"),
        "RADLENS_OFFLINE": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
    }
    r = subprocess.run(
        [sys.executable, "-m", "viewer.cli", "models", "import", str(src), "--id", "nnint"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "nnint"
    pkg = tmp_path / "data" / "models" / "nnint"
    if not pkg.is_dir():  # wherever the user model folder is, the package is there once
        (pkg,) = [p for p in (tmp_path / "data").rglob("nnint") if p.is_dir()]
    card = ModelCard.load(pkg)
    assert card.task == "interactive" and card.is_nnunet
    assert card.input_channels == 8
    assert card.inference["interactive"]["channels"] == ["image", *INTERACTION_CHANNELS]
    assert "CC BY-NC-SA 4.0" in card.intended_use and "non-commercial" in card.intended_use
    assert (pkg / "LICENSE").read_text().startswith("CC BY-NC-SA 4.0")
    assert not list(pkg.glob("*.pth"))  # weights converted: no pickle travels
    # The Models panel shows the package's licence file.
    from viewer.ui.panels.models import read_licence

    assert read_licence(pkg).startswith("CC BY-NC-SA 4.0")


def test_imported_model_runs_safely_on_random_weights(tmp_path):
    src = write_nninteractive_folder(tmp_path / "nnint")
    pkg = import_nninteractive_folder(src, tmp_path / "models", "nnint")
    card = ModelCard.load(pkg)
    clear_cache()
    rng = np.random.default_rng(0)
    img = rng.normal(0, 100, (24, 40, 40)).astype(np.float32)
    prev = np.zeros(img.shape, bool)
    res = segment_with_prompts(
        Engine(device="cpu"), img, (2.0, 1.0, 1.0), "MR", card,
        Prompts(positive=((12, 20, 20),), box=(8, 10, 10, 16, 30, 30)), previous=prev,
    )  # fmt: skip
    assert res.label_map is not None and res.label_map.array.shape == img.shape
    assert mask_of(res).dtype == bool


def test_weights_of_another_network_are_refused_in_a_sentence(tmp_path):
    src = write_nninteractive_folder(tmp_path / "nnint", in_channels=5)
    with pytest.raises(NnunetError, match="do not fit an nnInteractive network of 8 input"):
        import_nninteractive_folder(src, tmp_path / "models")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/nnint-pwned",))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path):
    import torch

    src = write_nninteractive_folder(tmp_path / "nnint")
    ckpt_path = src / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, weights_only=False)
    ckpt["extra"] = Evil()
    torch.save(ckpt, ckpt_path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    marker = Path("/tmp/nnint-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(NnunetError):
        import_nninteractive_folder(src, tmp_path / "models")
    assert not marker.exists()
