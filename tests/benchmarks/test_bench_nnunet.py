"""nnU-Net v2 in RadLens against nnUNetPredictor, both sides in the same run on the same cases.

1. Equal to the reference on a model trained by nnU-Net's own trainer (planned by its planner,
   generated data, 10 short epochs of 25 iterations, seeded, every label predicted): voxel agreement >= 99.9 % and Dice
   >= 0.995 per label, with and without mirroring.
2. Time and peak RSS of a prediction, each side in a fresh process (1 torch thread, the
   machine is shared): peak RSS is the high-water mark of the first run (reset just before
   it, so imports and loading do not count; "run" is that peak minus the RSS before), time
   the fastest of three runs. Cases: the trained 4-class model on a larger case, and a
   117-label model (TotalSegmentator's label count; seeded weights, nnU-Net checkpoint
   format) on a CT-like case that needs resampling, where nnU-Net's per-class
   full-resolution arrays show. Ratios go to stdout and extra_info.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_nnunet.py --benchmark-enable -s
(about 10 minutes on 2 shared cores; needs the 'nnunet' test extra).
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
from tests.nnunet_factory import LABELS, synthetic_case  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: training the model takes ~3 min, the 117-label runs ~5 min (three runs a side)
pytestmark = pytest.mark.timeout(1800)
MB = 1024**2


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", nnUNet_def_n_proc="1")
    return env


def _factory(*args: str, timeout: int = 1800) -> None:
    cmd = [sys.executable, "-m", "tests.nnunet_factory", *args]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet-trained")
    _factory("build", str(root), "--kind", "trained", "--epochs", "10", "--iterations", "25")
    src = root / "model" / "nnUNetTrainer__nnUNetPlansSmall__3d_fullres"
    pkg = import_nnunet_folder(src, root / "packages", model_id="blobs-trained")
    big = root / "bench_cases"
    big.mkdir()
    image, labels = synthetic_case((64, 96, 24), (3.5, 0.85, 0.9), seed=2001)
    np.savez(big / "case_big.npz", image=image, labels=labels, spacing_xyz=(3.5, 0.85, 0.9))
    return root, src, pkg


@pytest.fixture(scope="session")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet-many")
    _factory("build", str(root), "--kind", "many", "--labels", "117")
    src = root / "many" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    pkg = import_nnunet_folder(src, root / "packages", model_id="many-labels")
    return root, src, pkg


def _dice(a, b) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


@pytest.mark.parametrize("mirroring", [True, False], ids=["mirroring", "no-mirroring"])
def test_trained_model_equals_nnunet_predictor(trained, mirroring, benchmark):
    root, src, pkg = trained
    out = root / f"ref_{mirroring}.npz"
    args = ["reference", str(src), str(root / "cases"), str(out), "--folds", "0"]
    _factory(*args, *([] if mirroring else ["--no-mirroring"]))
    ref = np.load(out)
    model = load_package(pkg)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    lines = []
    try:
        for case_path in sorted((root / "cases").glob("case_*.npz")):
            case = np.load(case_path)
            seg, _ = predict(
                case["image"], tuple(case["spacing_xyz"]), None, model, mirroring=mirroring
            )
            expected = ref[case_path.stem]
            for label in (v for v in LABELS.values() if v):  # the model learnt every label
                assert (expected == label).any(), f"{case_path.stem}: label {label} never predicted"
            agreement = float((seg == expected).mean())
            dices = {k: _dice(seg == v, expected == v) for k, v in LABELS.items() if v}
            truth = {
                k: round(_dice(expected == v, case["labels"] == v), 3)
                for k, v in LABELS.items()
                if v
            }
            lines.append(
                f"{case_path.stem}: agreement {agreement:.6f} Dice vs nnU-Net {dices} (nnU-Net vs truth {truth})"
            )
            assert agreement >= 0.999, lines[-1]
            assert all(d >= 0.995 for d in dices.values()), lines[-1]
    finally:
        torch.set_num_threads(old)
    print("\n".join(lines))
    benchmark.extra_info["agreement"] = lines
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def _measure(side: str, src: Path, pkg: Path, case: Path, out: Path, mirroring: bool) -> dict:
    flag = ["--repeats", "3"] + ([] if mirroring else ["--no-mirroring"])
    if side == "nnunet":
        _factory("reference", str(src), str(case), str(out), "--folds", "0", *flag)
    else:
        _factory("radlens", str(pkg), str(case), str(out), *flag)
    r = np.load(out)
    return {
        "seconds": float(r[case.stem + "_seconds"]),
        "peak_mb": float(r[case.stem + "_peak"]) / MB,
        "run_mb": float(r[case.stem + "_peak"] - r[case.stem + "_rss_before"]) / MB,
        "seg": r[case.stem],
    }


@pytest.mark.parametrize("which", ["trained-4-classes", "117-labels"])
@pytest.mark.parametrize("mirroring", [True, False], ids=["mirroring", "no-mirroring"])
def test_time_and_peak_memory_against_nnunet_predictor(request, which, mirroring, benchmark):
    root, src, pkg = request.getfixturevalue("trained" if which.startswith("trained") else "many")
    case = root / ("bench_cases" if which.startswith("trained") else "many_cases") / "case_big.npz"
    tag = f"{which}-{'mirror' if mirroring else 'plain'}"
    ours = _measure("radlens", src, pkg, case, root / f"radlens_{tag}.npz", mirroring)
    theirs = _measure("nnunet", src, pkg, case, root / f"nnunet_{tag}.npz", mirroring)
    agreement = float((ours["seg"] == theirs["seg"]).mean())
    ratios = {
        "time": ours["seconds"] / theirs["seconds"],
        "peak_rss": ours["peak_mb"] / theirs["peak_mb"],
        "run_rss": ours["run_mb"] / max(theirs["run_mb"], 1.0),
    }
    line = (
        f"{tag}: RadLens {ours['seconds']:.1f} s, peak {ours['peak_mb']:.0f} MB "
        f"(run +{ours['run_mb']:.0f} MB) | nnUNetPredictor {theirs['seconds']:.1f} s, peak "
        f"{theirs['peak_mb']:.0f} MB (run +{theirs['run_mb']:.0f} MB) | ratios time "
        f"{ratios['time']:.2f}, peak RSS {ratios['peak_rss']:.2f}, run RSS {ratios['run_rss']:.2f}"
        f" | agreement {agreement:.6f}"
    )
    print("\n" + line)
    benchmark.extra_info.update(line=line, **ratios)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert agreement >= 0.999, line
    if which.startswith("trained"):
        # 4 classes on a small case: both sides run the same network arithmetic (92-98 % of
        # the time is conv3d in a profile), so the ratio is 1 up to the shared machine's
        # noise, measured from 0.70 to 1.40 in five runs: reported, loosely bounded
        assert ratios["time"] <= 1.6, line
    else:
        assert ratios["peak_rss"] <= 0.5 and ratios["run_rss"] <= 0.5, line
        assert ratios["time"] <= 1.0, line
