"""Engine end to end on tiny random networks saved as real packages (CPU, no sockets)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import engine as engine_mod  # noqa: E402
from inference.engine import Cancelled, Engine, EngineError, choose_device  # noqa: E402
from inference.networks import build_network  # noqa: E402
from inference.weights import save_package  # noqa: E402
from tests.inference_factory import SEG_KW, ct_volume, save_seg_package, seg_card  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")
torch.set_num_threads(1)


@pytest.fixture
def seg_package(tmp_path):
    return save_seg_package(tmp_path / "seg")


def test_segmentation_results_are_in_the_input_grid(seg_package):
    img = ct_volume()
    messages = []
    res = Engine("cpu").run(
        img, (1.5, 1.5, 2.5), np.eye(3), "CT", seg_package, lambda f, m: messages.append((f, m))
    )
    assert res.label_map.array.shape == img.shape and res.label_map.array.dtype == np.uint8
    assert set(np.unique(res.label_map.array)) <= {0, 1, 2}
    assert res.heat_map.array.shape == img.shape and res.heat_map.array.dtype == np.float32
    assert 0.0 <= res.heat_map.array.min() and res.heat_map.array.max() <= 1.0
    assert res.device == "cpu" and res.precision == "float32"
    voxel_ml = 1.5 * 1.5 * 2.5 / 1000
    assert res.label_map.volumes_ml["lung"] == pytest.approx(
        (res.label_map.array == 1).sum() * voxel_ml
    )
    assert any(m.startswith("window 1 of ") for _, m in messages)
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"load", "preprocess", "inference", "postprocess", "total"} <= set(res.timings)


def test_flipped_direction_gives_the_flipped_answer(seg_package):
    """A volume stored feet-first (z direction -S) is reoriented for the model and mapped back."""
    img = ct_volume((16, 32, 32))
    eng = Engine("cpu")
    a = eng.run(img, (2, 2, 3), np.eye(3), "CT", seg_package)
    flipped = np.diag([1.0, 1.0, -1.0])
    b = eng.run(img[::-1].copy(), (2, 2, 3), flipped, "CT", seg_package)
    assert np.array_equal(a.label_map.array, b.label_map.array[::-1])


def test_cancel_after_first_window_stops_within_one_step(seg_package):
    windows = []

    def progress(_f, msg):
        if msg.startswith("window"):
            windows.append(msg)

    with pytest.raises(Cancelled):
        Engine("cpu").run(
            ct_volume(),
            (1.5, 1.5, 2.5),
            np.eye(3),
            "CT",
            seg_package,
            progress,
            lambda: bool(windows),
        )
    assert 1 <= len(windows) <= 2


def test_tampered_weights_are_refused(seg_package):
    weights = seg_package.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="model.safetensors.*SHA-256"):
        Engine("cpu").run(ct_volume(), (1, 1, 1), np.eye(3), "CT", seg_package)


def test_missing_weights_file_is_named(seg_package):
    (seg_package.path / "model.safetensors").unlink()
    with pytest.raises(EngineError, match="model.safetensors.*missing"):
        Engine("cpu").run(ct_volume(), (1, 1, 1), np.eye(3), "CT", seg_package)


def test_wrong_modality_and_dimensionality_are_user_errors(seg_package):
    with pytest.raises(EngineError, match="for CT.*MR"):
        Engine("cpu").run(ct_volume(), (1, 1, 1), np.eye(3), "MR", seg_package)
    with pytest.raises(EngineError, match="needs a volume"):
        Engine("cpu").run(np.zeros((32, 32), np.int16), (1, 1, 1), np.eye(3), "CT", seg_package)


def test_simulated_out_of_memory_falls_back_to_batch_one(tmp_path, monkeypatch):
    torch.manual_seed(0)
    card = save_package(
        tmp_path / "p",
        seg_card(inference={"sw_batch_size": 4}),
        build_network("monai.UNet", SEG_KW),
    )
    real = engine_mod.forward
    batched_calls = [0]

    def flaky(net, x):
        if x.shape[0] > 1:
            batched_calls[0] += 1
            # The first batch of 4 windows fits, the second does not: a retry mid-run.
            if batched_calls[0] > 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(net, x)

    fractions = []
    img = ct_volume((40, 80, 80))  # 12 windows: three batches of 4
    monkeypatch.setattr("inference.tasks.segment.forward", flaky)
    res = Engine("cpu").run(
        img, (1.5, 1.5, 2.5), np.eye(3), "CT", card, lambda f, _m: fractions.append(f)
    )
    assert res.label_map.array.shape == img.shape and batched_calls[0] == 2
    assert res.warnings == (
        "out of memory with sw_batch_size 4 on cpu; retried with sw_batch_size 1 on cpu",
    )
    assert fractions == sorted(fractions)


def test_out_of_memory_everywhere_is_an_engine_error(seg_package, monkeypatch):
    def always(net, x):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("inference.tasks.segment.forward", always)
    with pytest.raises(EngineError, match="out of memory even with"):
        Engine("cpu").run(ct_volume(), (1.5, 1.5, 2.5), np.eye(3), "CT", seg_package)


def test_cuda_ladder_walks_batch_then_cpu_stitching_then_cpu():
    steps = engine_mod.fallback_steps("cuda", 4)
    tried, warnings = [], []

    def attempt(step):
        tried.append(step)
        if len(tried) < 4:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "ok"

    assert engine_mod.run_with_fallback(attempt, steps, warnings) == "ok"
    assert [(s.sw_batch_size, s.sw_device, s.device) for s in tried] == [
        (4, "cuda", "cuda"),
        (1, "cuda", "cuda"),
        (1, "cuda", "cpu"),
        (1, "cpu", "cpu"),
    ]
    assert len(warnings) == 3 and "stitching on cpu" in warnings[2]


def test_errors_that_are_not_out_of_memory_are_not_retried():
    def attempt(step):
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError):
        engine_mod.run_with_fallback(attempt, engine_mod.fallback_steps("cuda", 2), [])


def test_device_choice_on_a_cpu_machine_and_explicit_override():
    if not torch.cuda.is_available():
        assert choose_device("auto") in ("cpu", "mps")
        with pytest.raises(EngineError, match="CUDA"):
            choose_device("cuda")
    assert choose_device("cpu") == "cpu"


def test_network_is_cached_per_model_and_device(seg_package):
    assert Engine("cpu").load(seg_package) == "cpu"  # a warm-up load fills the cache
    a = engine_mod.loaded_network(seg_package, "cpu")
    b = engine_mod.loaded_network(seg_package, "cpu")
    assert a is b
    assert len(engine_mod._CACHE) == 1


def test_runs_on_one_model_from_two_threads_are_serialised(seg_package, monkeypatch):
    import threading

    real = engine_mod.forward
    active, peak = [0], [0]
    guard = threading.Lock()

    def counting(net, x):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return real(net, x)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr("inference.tasks.segment.forward", counting)
    eng = Engine("cpu")
    img = ct_volume((16, 32, 32))
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(eng.run(img, (2, 2, 3), np.eye(3), "CT", seg_package))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and peak[0] == 1
    assert np.array_equal(results[0].label_map.array, results[1].label_map.array)
