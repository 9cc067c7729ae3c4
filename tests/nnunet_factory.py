"""Small nnU-Net v2 models and cases for the nnU-Net tests (one module over 400 lines: it is
the one subprocess entry point the tests and the benchmark call, and splits no concept).

Run as ``python -m tests.nnunet_factory build ROOT --kind random|trained`` (in a subprocess:
nnU-Net reads its folders from environment variables at import time). It writes generated
3D CT-like images with three blob labels on a textured body (zero outside the body, so
nnU-Net crops; anisotropic along x, so it transposes and resamples with its separate-z rule),
fingerprints and plans them with nnU-Net's own planner (a reduced feature budget), and then
either saves two folds of seeded random weights as nnU-Net checkpoints (``random``: checks
everything but training, in seconds) or trains a fold with nnU-Net's own trainer (``trained``).
``python -m tests.nnunet_factory reference MODEL CASES OUT`` runs ``nnUNetPredictor`` on the
cases and stores its label maps, times and peak memory for the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DATASET_ID = 901
DATASET = f"Dataset{DATASET_ID}_Blobs"
LABELS = {"background": 0, "bright": 1, "dark": 2, "textured": 3}
TRAIN_SHAPE = (32, 40, 14)  # z, y, x
HELD_OUT = [  # (shape zyx, spacing xyz, seed): larger than training, off-median spacing
    ((44, 52, 16), (3.5, 0.85, 0.9), 1001),
    ((30, 44, 11), (2.9, 1.1, 1.05), 1002),
]


def synthetic_case(shape, spacing_xyz, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 zyx, labels uint8 zyx): a textured ellipsoid 'body' (0 outside) with a
    bright, a dark and a textured sphere inside; sizes in millimetres."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    sz, sy, sx = spacing_xyz[2], spacing_xyz[1], spacing_xyz[0]
    z, y, x = np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, (sz, sy, sx), strict=True)), indexing="ij"
    )
    ext = [n * s for n, s in zip(shape, (sz, sy, sx), strict=True)]
    c = [e / 2 for e in ext]
    body = ((z - c[0]) / (0.42 * ext[0])) ** 2 + ((y - c[1]) / (0.45 * ext[1])) ** 2 + (
        (x - c[2]) / (0.4 * ext[2])
    ) ** 2 <= 1
    texture = gaussian_filter(rng.normal(0, 1, shape), 1.5)
    image = 40 + 60 * texture / (texture.std() + 1e-6) + rng.normal(0, 8, shape)
    labels = np.zeros(shape, np.uint8)
    inside = np.argwhere(body)
    for label, (radius, value) in enumerate(((7.0, 260.0), (6.0, -160.0), (6.5, 480.0)), start=1):
        for _ in range(50):
            p = inside[rng.integers(len(inside))]
            centre = (p[0] * sz, p[1] * sy, p[2] * sx)
            ball = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2
            if (ball & body).sum() == ball.sum() and not labels[ball].any():
                break
        labels[ball & body] = label
        if label == 3:
            image[ball] = value + 80 * np.sign(np.sin(y[ball] / 1.5))
        else:
            image[ball] = value + rng.normal(0, 10, int(ball.sum()))
    image[~body] = 0
    labels[~body] = 0
    return image.astype(np.float32), labels


def _write_nifti(path: Path, array: np.ndarray, spacing_xyz) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(float(s) for s in spacing_xyz))
    sitk.WriteImage(img, str(path))


def write_raw(raw: Path, n_train: int) -> None:
    folder = raw / DATASET
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(n_train):
        spacing = (rng.uniform(2.8, 3.6), rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1))
        image, labels = synthetic_case(TRAIN_SHAPE, spacing, seed=i)
        _write_nifti(folder / "imagesTr" / f"blob_{i:03d}_0000.nii.gz", image, spacing)
        _write_nifti(folder / "labelsTr" / f"blob_{i:03d}.nii.gz", labels, spacing)
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": LABELS,
        "numTraining": n_train,
        "file_ending": ".nii.gz",
        "name": "Blobs",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))


def write_cases(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (shape, spacing, seed) in enumerate(HELD_OUT):
        image, labels = synthetic_case(shape, spacing, seed)
        np.savez(folder / f"case_{i}.npz", image=image, labels=labels, spacing_xyz=spacing)


def _plan(root: Path):
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (
        ExperimentPlanner,
    )
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

    class SmallPlanner(ExperimentPlanner):
        """nnU-Net's planner with a reduced feature budget (8 to 32 features per stage)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.UNet_base_num_features = 8
            self.UNet_max_features_3d = 32
            self.UNet_max_features_2d = 32

    extract_fingerprint_dataset(DATASET_ID, num_processes=1, verbose=False, show_progress_bar=False)
    planner = SmallPlanner(DATASET_ID, plans_name="nnUNetPlansSmall")
    planner.plan_experiment()
    pre = root / "preprocessed" / DATASET
    return json.loads((pre / "nnUNetPlansSmall.json").read_text())


def _checkpoint(network, plans: dict, dataset: dict, configuration: str, fold: int, mirror):
    import torch

    return {
        "network_weights": network.state_dict(),
        "optimizer_state": None,
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float32(0.4)]},
        "_best_ema": np.float64(0.4),
        "current_epoch": 1,
        "init_args": {
            "plans": plans,
            "configuration": configuration,
            "fold": fold,
            "dataset_json": dataset,
            "device": torch.device("cpu"),
        },
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": mirror,
    }


#: configuration -> folds written by ``build_random``
RANDOM_FOLDS = {"3d_fullres": (0, 1), "2d": (0,)}


def build_random(root: Path) -> dict[str, Path]:
    """Trained-model folders (3d_fullres with two folds, 2d with one) of seeded random weights
    (nnU-Net's own initialisation) on plans made by nnU-Net's planner."""
    write_raw(root / "raw", n_train=4)
    plans = _plan(root)
    dataset = json.loads((root / "raw" / DATASET / "dataset.json").read_text())
    write_cases(root / "cases")
    return {c: _random_folder(root, plans, dataset, c, folds) for c, folds in RANDOM_FOLDS.items()}


def _random_folder(root: Path, plans: dict, dataset: dict, configuration: str, folds) -> Path:
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    model = root / "model" / f"nnUNetTrainer__nnUNetPlansSmall__{configuration}"
    arch = plans["configurations"][configuration]["architecture"]
    dims = len(plans["configurations"][configuration]["patch_size"])
    for fold in folds:
        torch.manual_seed(100 + fold)
        net = get_network_from_plans(
            arch["network_class_name"],
            arch["arch_kwargs"],
            arch["_kw_requires_import"],
            1,
            len(LABELS),
            deep_supervision=False,
        )
        (model / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        ckpt = _checkpoint(net, plans, dataset, configuration, fold, tuple(range(dims)))
        torch.save(ckpt, model / f"fold_{fold}" / "checkpoint_final.pth")
    (model / "plans.json").write_text(json.dumps(plans, indent=2))
    (model / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return model


def build_trained(root: Path, epochs: int, iterations: int) -> Path:
    """Train fold 0 with nnU-Net's own trainer (few short epochs) on the generated data."""
    import torch
    from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    write_raw(root / "raw", n_train=12)
    plans = _plan(root)
    preprocess_dataset(DATASET_ID, "nnUNetPlansSmall", ["3d_fullres"], [1], verbose=False)
    os.environ["nnUNet_n_proc_DA"] = "0"  # augment in this process: no worker processes
    dataset = json.loads((root / "raw" / DATASET / "dataset.json").read_text())

    class ShortTrainer(nnUNetTrainer):
        # nnUNetTrainer records its init arguments by name: the signature must be spelled out
        def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cpu")):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs = epochs
            self.num_iterations_per_epoch = iterations
            self.num_val_iterations_per_epoch = 2
            self.initial_lr = 3e-2

        def perform_actual_validation(self, save_probabilities: bool = False):
            pass  # the equivalence test predicts its own held-out cases

    import random

    random.seed(0)  # initialisation and augmentation draw from these (one process, no workers)
    np.random.seed(0)
    torch.manual_seed(0)
    trainer_plans = {**plans, "continue_training": False}  # as nnU-Net's run_training sets it
    trainer = ShortTrainer(trainer_plans, "3d_fullres", 0, dataset, device=torch.device("cpu"))
    trainer.run_training()
    out = Path(trainer.output_folder)
    ckpt_path = out / "checkpoint_final.pth"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)  # our own file
    ckpt["trainer_name"] = "nnUNetTrainer"  # same network; lets nnUNetPredictor find it
    model = root / "model" / "nnUNetTrainer__nnUNetPlansSmall__3d_fullres"
    (model / "fold_0").mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, model / "fold_0" / "checkpoint_final.pth")
    (model / "plans.json").write_text(json.dumps(plans, indent=2))
    (model / "dataset.json").write_text(json.dumps(dataset, indent=2))
    write_cases(root / "cases")
    return model


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(key: str, fn, repeats: int) -> tuple[object, dict[str, np.generic]]:
    """Run ``fn`` ``repeats`` times: peak RSS of the first run (Linux's high-water mark,
    reset just before it, so loading and imports do not count), fastest time of all."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM
    except OSError:
        pass
    rss0 = current_rss_bytes()
    times = []
    result = None
    for i in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        if i == 0:
            peak = _vm_hwm()
    return result, {
        key + "_seconds": np.float64(min(times)),
        key + "_rss_before": np.int64(rss0),
        key + "_peak": np.int64(peak),
    }


def _vm_hwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reference(
    model: Path, cases: Path, out: Path, mirroring: bool, folds, repeats: int = 1
) -> None:
    """nnUNetPredictor's label maps (+ time, peak RSS) for every case; one case per call
    when ``out`` is a file name (the benchmark measures peak RSS per process)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(max(1, torch.get_num_threads()))
    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=mirroring,
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(str(model), use_folds=folds)
    results = {}
    files = sorted(cases.glob("case_*.npz")) if cases.is_dir() else [cases]
    for path in files:
        case = np.load(path)
        image = case["image"][None].astype(np.float32)
        spacing_zyx = [float(s) for s in case["spacing_xyz"][::-1]]
        seg, stats = measure(
            path.stem,
            lambda image=image, spacing=spacing_zyx: predictor.predict_single_npy_array(
                image, {"spacing": spacing}, None, None, False
            ),
            repeats,
        )
        results[path.stem] = np.asarray(seg).astype(np.uint8)
        results.update(stats)
    np.savez(out, **results)


def radlens(package: Path, case_path: Path, out: Path, mirroring: bool, repeats: int) -> None:
    """RadLens's side of the benchmark: one case, time and peak RSS of the process."""
    import scipy.ndimage  # noqa: F401 - loaded before measuring, as nnU-Net's side loads its own

    from inference.nnunet import load_package, predict

    model = load_package(package)
    case = np.load(case_path)
    image = case["image"]
    spacing = tuple(case["spacing_xyz"])
    (seg, _), stats = measure(
        case_path.stem, lambda: predict(image, spacing, None, model, mirroring=mirroring), repeats
    )
    np.savez(out, **{case_path.stem: seg, **stats})


def build_many(root: Path, n_labels: int) -> Path:
    """A many-label model (seeded random weights, nnU-Net checkpoint format) and one CT-like
    case that needs resampling: where nnU-Net's per-class full-resolution arrays show."""
    plans = tiny_plans(features=(8, 16, 32), patch=(24, 64, 64))
    dataset = tiny_dataset(labels=tuple(f"structure_{i:02d}" for i in range(1, n_labels + 1)))
    model = root / "many" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    write_tiny_folder(model, plans, dataset)
    image, _ = synthetic_case((48, 160, 160), (0.8, 0.8, 2.5), seed=77)
    (root / "many_cases").mkdir(parents=True, exist_ok=True)
    np.savez(root / "many_cases" / "case_big.npz", image=image, spacing_xyz=(0.8, 0.8, 2.5))
    return model


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("root", type=Path)
    b.add_argument("--kind", choices=("random", "trained", "many"), default="random")
    b.add_argument("--labels", type=int, default=60)
    b.add_argument("--with-reference", action="store_true")
    b.add_argument("--epochs", type=int, default=6)
    b.add_argument("--iterations", type=int, default=25)
    r = sub.add_parser("reference")
    r.add_argument("model", type=Path)
    r.add_argument("cases", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--no-mirroring", action="store_true")
    r.add_argument("--folds", default="0,1")
    r.add_argument("--repeats", type=int, default=1)
    q = sub.add_parser("radlens")
    q.add_argument("package", type=Path)
    q.add_argument("case", type=Path)
    q.add_argument("out", type=Path)
    q.add_argument("--no-mirroring", action="store_true")
    q.add_argument("--repeats", type=int, default=1)
    a = p.parse_args(argv)
    if a.cmd == "build":
        for sub_dir in ("raw", "preprocessed", "results"):
            os.environ[f"nnUNet_{sub_dir}"] = str(a.root / sub_dir)
            (a.root / sub_dir).mkdir(parents=True, exist_ok=True)
        if a.kind == "random":
            models = build_random(a.root)
            if a.with_reference:
                for conf, model in models.items():
                    for mirror in (True, False) if conf == "3d_fullres" else (True,):
                        out = a.root / f"ref_{conf}_{'mirror' if mirror else 'plain'}.npz"
                        reference(model, a.root / "cases", out, mirror, RANDOM_FOLDS[conf])
        elif a.kind == "many":
            build_many(a.root, a.labels)
        else:
            build_trained(a.root, a.epochs, a.iterations)
    elif a.cmd == "radlens":
        radlens(a.package, a.case, a.out, not a.no_mirroring, a.repeats)
    else:
        folds = tuple(int(f) for f in a.folds.split(","))
        reference(a.model, a.cases, a.out, not a.no_mirroring, folds, a.repeats)
    return 0


# --- hand-made folders for the refusal tests (no nnunetv2 needed: torch + dna only) ---


def tiny_plans(features=(4, 8), patch=(8, 16, 16)) -> dict:
    """A plans.json as nnU-Net writes it (one 3d_fullres configuration), very small."""
    n = len(features)
    return {
        "dataset_name": "Dataset902_Tiny",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [3.0, 1.0, 1.0],
        "original_median_shape_after_transp": [10, 20, 20],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": list(patch),
                "median_image_size_in_voxels": [10, 20, 20],
                "spacing": [3.0, 1.0, 1.0],
                "normalization_schemes": ["CTNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {
                    "is_seg": False,
                    "order": 3,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "resampling_fn_seg_kwargs": {
                    "is_seg": True,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {
                    "is_seg": False,
                    "order": 1,
                    "order_z": 0,
                    "force_separate_z": None,
                },
                "architecture": {
                    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                    "arch_kwargs": {
                        "n_stages": n,
                        "features_per_stage": list(features),
                        "conv_op": "torch.nn.modules.conv.Conv3d",
                        "kernel_sizes": [[1, 3, 3]] + [[3, 3, 3]] * (n - 1),
                        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
                        "n_conv_per_stage": [1] * n,
                        "n_conv_per_stage_decoder": [1] * (n - 1),
                        "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                        "dropout_op": None,
                        "dropout_op_kwargs": None,
                        "nonlin": "torch.nn.LeakyReLU",
                        "nonlin_kwargs": {"inplace": True},
                    },
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 300.0,
                "mean": 100.0,
                "median": 90.0,
                "min": -200.0,
                "percentile_00_5": -180.0,
                "percentile_99_5": 280.0,
                "std": 120.0,
            }
        },
    }


def tiny_dataset(labels=("liver", "tumour")) -> dict:
    return {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{name: i + 1 for i, name in enumerate(labels)}},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }


def write_tiny_folder(
    folder: Path, plans: dict | None = None, dataset: dict | None = None, folds=(0,), seed: int = 0
) -> Path:
    """An nnU-Net trained-model folder with seeded weights built from ``plans``."""
    import torch

    from inference.nnunet.jsondata import Fields
    from inference.nnunet.network import check_network

    plans = plans or tiny_plans()
    dataset = dataset or tiny_dataset()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps(dataset))
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    for fold in folds:
        torch.manual_seed(seed + fold)
        spec = check_network(
            Fields("plans.json"),
            "a",
            arch["network_class_name"],
            arch["arch_kwargs"],
            1,
            len(dataset["labels"]),
        )
        net = spec.build()
        (folder / f"fold_{fold}").mkdir(exist_ok=True)
        ckpt = _checkpoint(net, plans, dataset, "3d_fullres", fold, (0, 1, 2))
        torch.save(ckpt, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


if __name__ == "__main__":
    os.environ.setdefault("nnUNet_n_proc_DA", "1")
    for name in ("raw", "preprocessed", "results"):
        os.environ.setdefault(f"nnUNet_{name}", "/nonexistent")
    sys.exit(main(sys.argv[1:]))
