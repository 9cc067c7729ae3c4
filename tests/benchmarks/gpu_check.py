"""GPU check for the engine (run by hand on a CUDA machine; CI has no GPU).

    python tests/benchmarks/gpu_check.py [--big]
    python tests/benchmarks/gpu_check.py --resampling   # issue 14: the segmenter's GPU/CPU ratio

For each shipped CT model: runs the engine on the demo-sized phantom (and, with --big, a
300x512x512 phantom) on the CPU (fp32) and on CUDA (autocast), prints wall times, the
device/precision the engine reports, and the agreement between the CPU fp32 and GPU AMP
results (Dice per label for masks; box matching for the detector). Also forces a real
out-of-memory on the GPU (an absurd sliding-window batch) to show the fallback ladder.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2.0 * np.logical_and(a, b).sum() / s)


def run(engine, vol, card):
    t = time.perf_counter()
    res = engine.run(vol.hu, vol.spacing, np.eye(3), "CT", card)
    return res, time.perf_counter() - t


def resampling_check(repeats: int = 2) -> None:
    """The shipped segmenter on a 300x512x512 CT: the CPU run against the CUDA run with
    resampling and mapping back on the GPU (the default there) and on the CPU (as before
    issue 14). Prints one JSON line per run and the ratios; goal: CPU / GPU >= 3."""
    import torch

    from inference.engine import Engine
    from inference.registry import find_model
    from phantoms.chest import chest_ct

    card = find_model("radlens-ct-chest-seg")
    ct = chest_ct((75, 128, 128), seed=7, n_nodules=3)  # repeated 4x per axis, as the benchmarks
    hu = np.repeat(np.repeat(np.repeat(ct.hu, 4, 0), 4, 1), 4, 2).astype(np.int16)
    spacing = tuple(s / 4 for s in ct.spacing)
    print(
        "torch",
        torch.__version__,
        torch.cuda.get_device_name(0),
        "cpu threads",
        torch.get_num_threads(),
    )
    best: dict[str, float] = {}
    results = {}
    runs = {
        "cpu": Engine("cpu"),
        "cuda, resampling on the GPU": Engine("cuda"),
        "cuda, resampling on the CPU": Engine("cuda", resample="numpy"),
    }
    for name, engine in runs.items():
        engine.run(hu, spacing, np.eye(3), "CT", card)  # warm-up: model load, CUDA context
        for _ in range(repeats):
            if name != "cpu":
                torch.cuda.synchronize()
            t = time.perf_counter()
            res = engine.run(hu, spacing, np.eye(3), "CT", card)
            if name != "cpu":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t
            if wall < best.get(name, float("inf")):
                best[name], results[name] = wall, res
        res = results[name]
        row = {"run": name, "s": round(best[name], 3), "device": res.device}
        row.update({k: round(v, 3) for k, v in res.timings.items()})
        print(json.dumps(row))
    cpu = results["cpu"].label_map.array
    for name in list(runs)[1:]:
        gpu = results[name].label_map.array
        dices = {e.name: round(dice(cpu == e.index, gpu == e.index), 4) for e in card.labels}
        print(
            json.dumps(
                {
                    "run": name,
                    "cpu_over_gpu": round(best["cpu"] / best[name], 2),
                    "dice_vs_cpu": dices,
                }
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--resampling", action="store_true", help="only the issue-14 ratio check")
    args = ap.parse_args()
    if args.resampling:
        resampling_check()
        return

    import torch

    from inference.engine import Engine
    from inference.registry import list_models
    from phantoms.chest import chest_ct

    print(
        "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0)
    )
    cases = {"demo 96x256x256": chest_ct((96, 256, 256), seed=2026, n_nodules=4)}
    if args.big:
        cases["300x512x512"] = chest_ct((300, 512, 512), seed=7, n_nodules=5, vessels=False)
    # The engine's one-shot tasks (the prompt model runs through inference.interactive).
    cards = [c for c in list_models() if "CT" in c.modalities and c.task != "interactive"]
    report = []
    cpu = Engine(device="cpu", num_threads=2)
    gpu = Engine(device="cuda")
    for card in cards:
        for name, vol in cases.items():
            run(cpu, vol, card)  # warm-up: imports, thread pools, model load
            rc, tc = run(cpu, vol, card)
            run(gpu, vol, card)  # warm-up: CUDA context, cuDNN autotune, model upload
            torch.cuda.synchronize()
            rg, tg = run(gpu, vol, card)
            row = {
                "model": card.id,
                "case": name,
                "cpu_s": round(tc, 3),
                "gpu_s": round(tg, 3),
                "speedup": round(tc / tg, 1),
                "gpu_precision": rg.precision,
                "gpu_device": rg.device,
            }
            if rc.label_map is not None:
                for entry in card.labels:
                    row[f"dice_cpu_vs_gpu_{entry.name}"] = round(
                        dice(rc.label_map.array == entry.index, rg.label_map.array == entry.index),
                        4,
                    )
            if rc.boxes or rg.boxes:
                row["boxes_cpu"] = len(rc.boxes)
                row["boxes_gpu"] = len(rg.boxes)
                row["max_corner_diff_vox"] = (
                    float(
                        np.max(
                            np.abs(
                                np.array(sorted(b.corners for b in rc.boxes))
                                - np.array(sorted(b.corners for b in rg.boxes))
                            )
                        )
                    )
                    if len(rc.boxes) == len(rg.boxes) and rc.boxes
                    else None
                )
            print(json.dumps(row))
            report.append(row)

    # 2D classifiers: probabilities and Grad-CAM on CPU fp32 vs CUDA autocast.
    from phantoms.chest import chest_radiograph

    for card in (c for c in list_models() if c.task == "classification"):
        diffs, cams, agree = [], [], 0
        for seed in range(20):
            xr = chest_radiograph(128, seed=90_000 + seed)
            args = (xr.image, (*xr.spacing, 1.0), np.eye(3), "DX", card)
            rc, rg = cpu.run(*args), gpu.run(*args)
            pc, pg = rc.classification.probabilities, rg.classification.probabilities
            diffs.append(max(abs(pc[k] - pg[k]) for k in pc))
            agree += max(pc, key=pc.get) == max(pg, key=pg.get)
            if rc.heat_map is not None and rg.heat_map is not None:
                cams.append(
                    float(np.corrcoef(rc.heat_map.array.ravel(), rg.heat_map.array.ravel())[0, 1])
                )
        print(
            json.dumps(
                {
                    "model": card.id,
                    "cases": 20,
                    "max_prob_diff": round(max(diffs), 5),
                    "same_class": agree,
                    "gradcam_corr_min": round(min(cams), 4) if cams else None,
                    "gpu_precision": rg.precision,
                }
            )
        )

    # A real CUDA out-of-memory: fill the GPU, leaving too little for one batch of windows,
    # then watch the engine walk its fallback ladder (smaller batch, CPU stitching, CPU).
    seg = next((c for c in cards if c.task == "segmentation"), None)
    if seg is not None:
        vol = cases["demo 96x256x256"]
        torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info()
        blocker = []
        for block_mib in (1024, 64, 4, 1):  # grab memory until the allocator refuses even 1 MiB
            try:
                while True:
                    blocker.append(
                        torch.empty(block_mib * 2**18, dtype=torch.float32, device="cuda")
                    )
            except torch.OutOfMemoryError:
                continue
        left = torch.cuda.mem_get_info()[0]
        print(f"GPU filled: {left / 2**20:.0f} MiB left of {total / 2**30:.1f} GiB")
        try:
            res, t = run(gpu, vol, seg)
            print(
                json.dumps(
                    {
                        "oom_test_seconds": round(t, 2),
                        "warnings": res.warnings,
                        "device": res.device,
                    }
                )
            )
            if rc_cpu := report[0].get("dice_cpu_vs_gpu_lung"):
                print("reference lung dice cpu vs gpu (no OOM):", rc_cpu)
        except Exception as exc:  # report, do not hide: this is a manual check script
            print("oom test raised:", type(exc).__name__, exc)
        finally:
            del blocker
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
