"""Imported nnU-Net v2 models in RadLens: the card is accepted and verified, `radlens models
import` installs one, and `radlens analyze` gives inference.nnunet.predict's label map."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("dynamic_network_architectures")

from inference.card import CardError, ModelCard  # noqa: E402
from inference.nnunet import import_nnunet_folder, predict  # noqa: E402
from inference.weights import WeightsError, verify_files  # noqa: E402
from radlens_core.grid import Grid  # noqa: E402
from radlens_core.nifti import read_nifti, write_nifti  # noqa: E402
from tests.nnunet_factory import write_tiny_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _image(seed: int = 3) -> tuple[np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 50, (20, 24, 22)).astype(np.float32)
    img[5:15, 6:18, 5:17] += 400
    return img, (0.9, 1.1, 2.0)


def test_imported_card_is_accepted_and_verified(tmp_path):
    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "m", folds=(0, 1)), tmp_path / "models")
    card = ModelCard.load(pkg)
    assert card.source == "nnunet_v2" and card.is_nnunet
    assert card.network["architecture"] == "nnunet.PlainConvUNet"
    assert [e.name for e in card.labels] == ["liver", "tumour"]
    assert sorted(card.files) == ["fold_0.safetensors", "fold_1.safetensors"]
    verify_files(card)
    again = ModelCard.from_dict(card.to_json(), pkg)
    assert again.nnunet == card.nnunet and again.source == "nnunet_v2"
    # a changed fold fails its hash like any package's weights
    with open(pkg / "fold_1.safetensors", "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\1")
    with pytest.raises(WeightsError, match="SHA-256"):
        verify_files(card)


def test_nnunet_block_is_checked_by_the_card(tmp_path):
    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "m"), tmp_path / "models")
    data = json.loads((pkg / "model.json").read_text())
    bad = json.loads(json.dumps(data))
    bad["nnunet"]["transpose_forward"] = [0, 0, 1]
    with pytest.raises(CardError, match="transpose_forward"):
        ModelCard.from_dict(bad, pkg)
    bad = json.loads(json.dumps(data))
    del bad["source_format"]
    with pytest.raises(CardError, match="nnU-Net v2"):
        ModelCard.from_dict(bad, pkg)
    bad = json.loads(json.dumps(data))
    bad["nnunet"]["folds"] = ["fold_7.safetensors"]
    with pytest.raises(CardError, match="nnunet.folds"):
        ModelCard.from_dict(bad, pkg)


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "viewer.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


def test_import_then_analyze_equals_predict(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RADLENS_DATA_DIR": str(tmp_path / "data"),
        "RADLENS_OFFLINE": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
    }
    src = write_tiny_folder(tmp_path / "model")
    r = _cli("models", "import", str(src), "--id", "tiny-nn", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "tiny-nn"
    r = _cli("models", "import", str(tmp_path), env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "nnU-Net v2 trained-model folder" in r.stderr

    img, spacing = _image()
    grid = Grid(img.shape, spacing, (0.0, 0.0, 0.0), np.eye(3))
    write_nifti(tmp_path / "ct.nii.gz", img, grid)
    out = tmp_path / "out"
    r = _cli(
        "analyze",
        str(tmp_path / "ct.nii.gz"),
        "--model",
        "tiny-nn",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--modality",
        "CT",
        env=env,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    findings = json.loads((out / "findings.json").read_text())
    text = json.dumps(findings)
    assert "tiny-nn" in text and "tumour" in text
    mask, mgrid = read_nifti(out / "mask.nii.gz")
    image, _ = read_nifti(tmp_path / "ct.nii.gz")
    expected, _ = predict(
        image, spacing, np.eye(3), Path(env["RADLENS_DATA_DIR"]) / "models" / "tiny-nn"
    )
    assert mask.shape == expected.shape
    assert len(np.unique(expected)) >= 2  # the comparison is not between two empty maps
    np.testing.assert_array_equal(mask.astype(np.uint8), expected)


def test_engine_runs_an_imported_model_like_predict(tmp_path, fresh_engine_cache):
    from inference.engine import Engine, loaded_network

    pkg = import_nnunet_folder(write_tiny_folder(tmp_path / "m"), tmp_path / "models")
    card = ModelCard.load(pkg)
    img, spacing = _image()
    result = Engine(device="cpu").run(img, spacing, np.eye(3), "CT", card)
    labels, probs = predict(img, spacing, np.eye(3), pkg, probabilities_for=(1,))
    assert result.label_map is not None and result.heat_map is not None
    np.testing.assert_array_equal(result.label_map.array, labels)
    assert [e.name for e in result.label_map.labels] == ["liver", "tumour"]
    voxel_ml = 0.9 * 1.1 * 2.0 / 1000
    assert result.label_map.volumes_ml["tumour"] == pytest.approx(
        np.count_nonzero(labels == 2) * voxel_ml
    )
    assert result.heat_map.name == "liver probability"
    assert probs is not None
    np.testing.assert_allclose(result.heat_map.array, probs[0], atol=1e-6)
    assert result.run.model_id == card.id and result.run.device == "cpu"
    assert loaded_network(card, "cpu") is loaded_network(card, "cpu")  # cached once
