"""On CUDA the memory estimate is compared with the free GPU memory: the run starts on the
first rung of the ladder that fits, resamples on the GPU only when that fits too, runs on
the CPU when nothing does, and is refused (with a sentence) when the host cannot hold it
either. Free GPU memory is injected: the decision is arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from inference import memory
from inference.memory import GPU_HEADROOM, check_run, choose_rung
from inference.runtime import EngineError, Step, fallback_steps

MB = 10**6


@pytest.fixture
def card(tmp_path):
    pytest.importorskip("torch")
    from tests.inference_factory import save_seg_package

    inference = {"sw_batch_size": 4, "overlap": 0.25, "mode": "gaussian"}
    return save_seg_package(tmp_path / "seg", inference=inference)


def ladder() -> list[Step]:
    return fallback_steps("cuda", 4)  # batch 4, batch 1, stitching on cpu, cpu


def test_top_rung_when_it_fits_with_resampling():
    plan = choose_rung(ladder(), [900 * MB, 500 * MB, 300 * MB, 0], 200 * MB, free=2000 * MB)
    assert plan.rung == 0 and plan.resample_on_gpu and not plan.on_cpu
    assert plan.need == 1100 * MB and plan.note == ""


def test_smaller_batch_when_the_top_rung_does_not_fit():
    free = int(700 * MB / GPU_HEADROOM) + 1
    plan = choose_rung(ladder(), [900 * MB, 500 * MB, 300 * MB, 0], 150 * MB, free)
    assert plan.rung == 1 and plan.steps[1] == Step(1, "cuda", "cuda")
    assert plan.resample_on_gpu  # 500 + 150 <= 700
    assert "starts with sw_batch_size 1 on cuda" in plan.note
    assert "needs about 900.0 MB there with sw_batch_size 4 on cuda" in plan.note


def test_resampling_moves_to_the_cpu_before_the_windows_do():
    free = int(600 * MB / GPU_HEADROOM) + 1
    plan = choose_rung(ladder(), [500 * MB, 400 * MB, 300 * MB, 0], 200 * MB, free)
    assert plan.rung == 0 and not plan.resample_on_gpu and plan.need == 500 * MB
    assert plan.note.endswith("resampling runs on the CPU")


def test_cpu_stitching_then_the_cpu_as_memory_shrinks():
    needs = [900 * MB, 500 * MB, 300 * MB, 0]
    plan = choose_rung(ladder(), needs, 0, free=int(400 * MB / GPU_HEADROOM))
    assert plan.steps[plan.rung] == Step(1, "cuda", "cpu")
    plan = choose_rung(ladder(), needs, 0, free=100 * MB)
    assert plan.on_cpu and plan.rung == 3 and "it runs on the CPU" in plan.note
    assert plan.note.startswith("the GPU has 100.0 MB free")


def test_check_run_plans_from_the_card_and_the_injected_free_memory(card):
    shape, spacing = (300, 512, 512), (0.7, 0.7, 1.25)
    roomy = check_run(card, shape, spacing, "cuda", resample_on_gpu=True, gpu_free=80_000 * MB)
    assert roomy.gpu is not None and roomy.gpu.rung == 0 and roomy.gpu.resample_on_gpu
    n_in = int(np.prod(shape))
    # Enough for the windows but not for resampling a 300x512x512 volume there.
    tight_free = int((roomy.gpu.need - memory.resampling_bytes(n_in) // 2) / GPU_HEADROOM)
    tight = check_run(card, shape, spacing, "cuda", resample_on_gpu=True, gpu_free=tight_free)
    assert tight.gpu.rung == 0 and not tight.gpu.resample_on_gpu
    none = check_run(card, shape, spacing, "cuda", gpu_free=1000)
    assert none.gpu.on_cpu
    assert check_run(card, shape, spacing, "cpu").gpu is None


def test_refused_with_a_sentence_when_neither_gpu_nor_host_holds_it(card, monkeypatch):
    monkeypatch.setenv(memory.MEMORY_ENV, "50")
    with pytest.raises(EngineError) as err:
        check_run(card, (300, 512, 512), (0.7, 0.7, 1.25), "cuda", gpu_free=1000)
    msg = str(err.value)
    assert msg.startswith("model 'Tiny segmenter' would need about")
    assert "the GPU has 1 kB free, too little for it as well, so the run was refused" in msg


def test_engine_runs_on_the_cpu_with_the_sentence_when_the_gpu_is_full(tmp_path, monkeypatch):
    """A pretend CUDA machine whose GPU is full: the engine never touches the GPU."""
    pytest.importorskip("torch")
    from inference import engine as engine_mod
    from inference.engine import Engine
    from tests.inference_factory import ct_volume, save_seg_package

    engine_mod.clear_cache()
    pkg = save_seg_package(tmp_path / "seg")
    monkeypatch.setattr(engine_mod, "choose_device", lambda preference="auto": "cuda")
    monkeypatch.setattr(memory, "cuda_free_memory", lambda device: 1000)
    res = Engine("cuda").run(ct_volume((16, 32, 32)), (2, 2, 3), np.eye(3), "CT", pkg)
    engine_mod.clear_cache()
    assert res.label_map.array.shape == (16, 32, 32)
    assert res.device.startswith("cpu")
    assert any(w.startswith("the GPU has 1 kB free") for w in res.warnings)
