"""RadLens's nnU-Net path gives nnUNetPredictor's label maps on models nnU-Net itself planned.

The models are made by ``tests/nnunet_factory.py`` in a subprocess (nnU-Net's planner on
generated anisotropic CT-like data, seeded random weights saved as nnU-Net checkpoints:
3d_fullres with two folds, 2d with one); the same subprocess runs ``nnUNetPredictor`` on the
held-out cases. That checks preprocessing (transpose, crop, CT normalisation, separate-z
resampling), the sliding window, mirroring, fold ensembling and the way back. The trained
model comparison is in tests/benchmarks/test_bench_nnunet.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("nnunetv2") is None:
    pytest.skip("nnunetv2 (test extra 'nnunet') is not installed", allow_module_level=True)

from inference.nnunet import import_nnunet_folder, load_package, predict  # noqa: E402
from tests.nnunet_factory import LABELS, RANDOM_FOLDS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: ~70 s on 2 shared cores: nnU-Net's imports, planner and predictor dominate
pytestmark = pytest.mark.slow


def nnunet_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", nnUNet_def_n_proc="1")
    return env


@pytest.fixture(scope="session")
def random_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet-random")
    cmd = [sys.executable, "-m", "tests.nnunet_factory", "build", str(root), "--with-reference"]
    done = subprocess.run(cmd, env=nnunet_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    packages = {}
    for conf in RANDOM_FOLDS:
        src = root / "model" / f"nnUNetTrainer__nnUNetPlansSmall__{conf}"
        packages[conf] = import_nnunet_folder(src, root / "packages", model_id=f"blobs-{conf}")
    return root, packages


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # as the reference ran; the machine is shared
    yield
    torch.set_num_threads(old)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def compare(root: Path, package: Path, ref_name: str, mirroring: bool) -> list[str]:
    ref = np.load(root / ref_name)
    model = load_package(package)
    report = []
    for case_path in sorted((root / "cases").glob("case_*.npz")):
        case = np.load(case_path)
        seg, probs = predict(
            case["image"], tuple(case["spacing_xyz"]), np.eye(3), model, mirroring=mirroring
        )
        expected = ref[case_path.stem]
        assert probs is None
        assert seg.shape == case["image"].shape and seg.dtype == np.uint8
        agreement = float((seg == expected).mean())
        present = [v for v in LABELS.values() if v and (expected == v).any()]
        assert present, f"{case_path.stem}: the reference predicts no foreground at all"
        dices = {v: dice(seg == v, expected == v) for v in LABELS.values() if v}
        report.append(f"{case_path.stem}: agreement {agreement:.6f}, Dice {dices}")
        assert agreement >= 0.999, report[-1]
        assert all(d >= 0.995 for d in dices.values()), report[-1]
    return report


def test_3d_two_folds_with_mirroring_equals_nnunet_predictor(random_models, one_thread):
    root, packages = random_models
    print(compare(root, packages["3d_fullres"], "ref_3d_fullres_mirror.npz", mirroring=True))


def test_3d_two_folds_without_mirroring_equals_nnunet_predictor(random_models, one_thread):
    root, packages = random_models
    print(compare(root, packages["3d_fullres"], "ref_3d_fullres_plain.npz", mirroring=False))


def test_2d_configuration_slice_by_slice_equals_nnunet_predictor(random_models, one_thread):
    root, packages = random_models
    print(compare(root, packages["2d"], "ref_2d_mirror.npz", mirroring=True))


def test_mirroring_changes_the_result_so_both_settings_are_really_checked(
    random_models, one_thread
):
    root, _ = random_models
    a, b = np.load(root / "ref_3d_fullres_mirror.npz"), np.load(root / "ref_3d_fullres_plain.npz")
    assert any((a[k] != b[k]).any() for k in a.files if k.startswith("case_") and "_" not in k[5:])


def test_probabilities_for_a_label_match_the_label_map(random_models, one_thread):
    root, packages = random_models
    case = np.load(root / "cases" / "case_1.npz")
    seg, probs = predict(
        case["image"],
        tuple(case["spacing_xyz"]),
        None,
        packages["3d_fullres"],
        mirroring=False,
        probabilities_for=(0, 1),
    )
    assert probs.shape == (2, *seg.shape) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1.0 + 1e-6))
    # where label 1 wins, its probability is the largest, so above background's
    won = seg == 1
    assert won.any() and np.all(probs[1][won] >= probs[0][won] - 1e-3)
    # the first slice lies outside the body's bounding box, cropped away: background with
    # certainty there, as nnU-Net's uncropping writes it
    assert not case["image"][0].any()
    assert np.all(probs[0][0] == 1.0) and np.all(probs[1][0] == 0.0) and not seg[0].any()
