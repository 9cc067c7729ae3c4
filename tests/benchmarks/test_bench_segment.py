"""Segmentation speed on the CPU (2 threads): RadLens end to end vs plain MONAI, same network.

Run: PYTHONPATH=. python -m pytest tests/benchmarks/test_bench_segment.py --benchmark-enable -s
The default test run skips benchmarks (--benchmark-skip). Numbers go to extra_info and stdout.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import registry  # noqa: E402
from inference.engine import Engine, clear_cache  # noqa: E402
from inference.networks import build_network  # noqa: E402
from inference.weights import save_package  # noqa: E402
from phantoms.chest import chest_ct  # noqa: E402

SHIPPED_ID = "radlens-ct-chest-seg"
#: The size of network the README's example card describes, if nothing has shipped yet.
FALLBACK_KW = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 3,
    "channels": [8, 16, 32, 64],
    "strides": [2, 2, 2],
    "num_res_units": 2,
}


def _card(tmp_path):
    try:
        return registry.find_model(SHIPPED_ID)
    except KeyError:
        pass
    card = {
        "id": "bench-seg",
        "name": "Benchmark UNet (random weights)",
        "version": "0",
        "task": "segmentation",
        "spatial_dims": 3,
        "modalities": ["CT"],
        "target_spacing": [2.0, 2.0, 4.0],
        "patch_size": [96, 96, 48],
        "preprocessing": {"steps": [{"op": "clip_scale", "a_min": -1000, "a_max": 400}]},
        "labels": [
            {"index": 1, "name": "lung", "color": "#4fc3f7"},
            {"index": 2, "name": "nodule", "color": "#ff7043"},
        ],
        "inference": {"sw_batch_size": 4, "overlap": 0.25, "mode": "gaussian", "heatmap_label": 2},
        "network": {"architecture": "monai.UNet", "kwargs": FALLBACK_KW, "output": "softmax"},
    }
    torch.manual_seed(0)
    return save_package(tmp_path / "bench-seg", card, build_network("monai.UNet", FALLBACK_KW))


def _volume(size: str):
    if size == "demo":
        ct = chest_ct((96, 256, 256), seed=2026)
        return ct.hu, ct.spacing
    # 300 x 512 x 512 at 0.7 x 0.7 x 1.0 mm: a small phantom upsampled (cheap to build).
    ct = chest_ct((75, 128, 128), seed=7)
    hu = torch.nn.functional.interpolate(
        torch.from_numpy(ct.hu.astype(np.float32))[None, None], size=(300, 512, 512), mode="nearest"
    )[0, 0]
    return hu.numpy().astype(np.int16), (0.7, 0.7, 1.0)


def _reset_peak() -> None:
    try:  # Linux: "5" resets the peak resident set size (VmHWM) of this process
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_mib() -> float:
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _plain_monai(net, hu, card, native: bool):
    """What a script with MONAI alone would do: (resample,) window, sliding window, back, argmax."""
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(hu.astype(np.float32))[None, None]
    x = ((x + 1000.0) / 1400.0).clamp(0, 1)
    shape = tuple(hu.shape)
    if not native:
        sp = np.array(card["spacing"][::-1])
        tsp = np.array(card["target"][::-1])
        x = torch.nn.functional.interpolate(
            x,
            size=tuple(int(round(n * s / t)) for n, s, t in zip(shape, sp, tsp, strict=True)),
            mode="trilinear",
        )
    with torch.inference_mode():
        y = sliding_window_inference(
            x, card["roi"], card["batch"], net, overlap=card["overlap"], mode="gaussian"
        )
        if not native:
            y = torch.nn.functional.interpolate(y.softmax(1), size=shape, mode="trilinear")
        return y.argmax(1)[0].to(torch.uint8).numpy()


@pytest.mark.parametrize("size", ["demo", "300x512x512"])
def test_bench_segment_cpu(benchmark, tmp_path, size):
    torch.set_num_threads(2)
    card = _card(tmp_path)
    hu, spacing = _volume(size)
    eng = Engine("cpu", num_threads=2)
    eng.run(hu[:48, :96, :96], spacing, np.eye(3), "CT", card)  # load + warm up
    results = {}

    results["rss_before_mib"] = _status_mib("VmRSS")  # the input and libraries, before any run

    def radlens():
        _reset_peak()
        t = time.perf_counter()
        res = eng.run(hu, spacing, np.eye(3), "CT", card)
        results["radlens_s"] = time.perf_counter() - t
        results["radlens_peak_mib"] = _peak_mib()
        results["timings"] = {k: round(v, 2) for k, v in res.timings.items()}
        return res

    res = benchmark.pedantic(radlens, rounds=1, iterations=1)
    assert res.label_map.array.shape == hu.shape

    from inference.engine import loaded_network

    net = loaded_network(card, "cpu").net
    spec = {
        "spacing": spacing,
        "target": card.target_spacing,
        "roi": card.patch_size[::-1],
        "batch": card.inference.get("sw_batch_size", 4),
        "overlap": card.inference.get("overlap", 0.25),
    }
    _reset_peak()
    t = time.perf_counter()
    _plain_monai(net, hu, spec, native=False)
    results["monai_resampled_s"] = time.perf_counter() - t
    results["monai_resampled_peak_mib"] = _peak_mib()
    if size == "demo" or os.environ.get("RADLENS_BENCH_NATIVE"):
        _reset_peak()
        t = time.perf_counter()
        _plain_monai(net, hu, spec, native=True)
        results["monai_native_s"] = time.perf_counter() - t
        results["monai_native_peak_mib"] = _peak_mib()
    results["model"] = card.id
    benchmark.extra_info.update(results)
    print(f"\n{size}: {results}")
    clear_cache()
