"""After an out-of-memory fallback the result names the device and precision that produced it."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import engine as engine_mod  # noqa: E402
from inference.engine import Engine, Step, describe_run  # noqa: E402
from inference.runtime import Loaded  # noqa: E402
from radlens_core.paths import user_models_dir  # noqa: E402
from tests.inference_factory import ct_volume, save_seg_package  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")
torch.set_num_threads(1)


def pretend_cuda_runs_out_of_memory(monkeypatch, on: str) -> None:
    """Make this CPU machine look like a GPU one whose memory runs out.

    ``on="windows"``: any rung that runs windows on CUDA fails; ``on="stitching"``: only a rung
    that also stitches on CUDA fails. Windows a rung would run on CUDA run on the CPU instead,
    so the numbers are real; only the place the engine believes it ran is pretended."""
    from inference.tasks import segment

    real_loaded, real_sw = engine_mod.loaded_network, segment.sliding_window
    gpu_copies: dict[str, Loaded] = {}

    def loaded(card, device):
        if device == "cpu":
            return real_loaded(card, "cpu")
        # Its own entry (and lock), as a real second device would have.
        return gpu_copies.setdefault(device, Loaded(real_loaded(card, "cpu").net, device))

    def sliding(ctx, x, roi, step, lo, hi):
        failing = step.sw_device if on == "windows" else step.device
        if failing == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return real_sw(ctx, x, roi, Step(step.sw_batch_size, "cpu", "cpu"), lo, hi)

    monkeypatch.setattr(engine_mod, "choose_device", lambda preference="auto": "cuda")
    monkeypatch.setattr(engine_mod, "loaded_network", loaded)
    monkeypatch.setattr(segment, "sliding_window", sliding)


def test_result_says_cpu_after_cuda_ran_out_of_memory(tmp_path, monkeypatch):
    card = save_seg_package(tmp_path / "seg")
    pretend_cuda_runs_out_of_memory(monkeypatch, on="windows")
    res = Engine("cuda").run(ct_volume((16, 32, 32)), (2, 2, 3), np.eye(3), "CT", card)
    assert res.warnings[-1].endswith("retried with sw_batch_size 1 on cpu")
    assert res.device == "cpu (after CUDA out of memory)"
    assert res.precision == "float32"
    assert res.summary()["device"] == "cpu (after CUDA out of memory)"


def test_result_says_cuda_windows_with_cpu_stitching_and_autocast(tmp_path, monkeypatch):
    card = save_seg_package(tmp_path / "seg")
    pretend_cuda_runs_out_of_memory(monkeypatch, on="stitching")
    res = Engine("cuda").run(ct_volume((16, 32, 32)), (2, 2, 3), np.eye(3), "CT", card)
    assert res.device == "cuda, stitching on cpu (after CUDA out of memory)"
    assert res.precision == "float16 (autocast)"


def test_findings_json_names_the_device_that_produced_the_result(tmp_path, monkeypatch):
    from tests.dicom_factory import write_ct_series
    from viewer.cli import main

    save_seg_package(user_models_dir() / "seg")
    folder = tmp_path / "dicom"
    write_ct_series(folder, shape=(12, 32, 32), spacing=(4.0, 4.0, 5.0))
    pretend_cuda_runs_out_of_memory(monkeypatch, on="windows")
    out = tmp_path / "out"
    args = ["analyze", str(folder), "--model", "tiny-seg", "--device", "cuda", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    data = json.loads((out / "findings.json").read_text())
    assert data["device"] == "cpu (after CUDA out of memory)"
    assert data["precision"] == "float32"


def test_no_fallback_reports_the_device_as_is():
    ran = {"inference": (Step(4, "cuda", "cuda"), "float16 (autocast)")}
    assert describe_run("cuda", ran) == ("cuda", "float16 (autocast)")
    # A smaller batch on the same device is not a change of device.
    ran = {"inference": (Step(1, "cuda", "cuda"), "float16 (autocast)")}
    assert describe_run("cuda", ran) == ("cuda", "float16 (autocast)")


def test_stages_that_ran_in_different_places_are_named_one_by_one():
    ran = {
        "classification": (Step(1, "cuda", "cuda"), "float16 (autocast)"),
        "Grad-CAM": (Step(1, "cpu", "cpu"), "float32"),
    }
    device, precision = describe_run("cuda", ran)
    assert device == "classification: cuda; Grad-CAM: cpu (after CUDA out of memory)"
    assert precision == "classification: float16 (autocast); Grad-CAM: float32"


def test_model_too_big_to_load_on_the_gpu_runs_and_says_cpu(tmp_path, monkeypatch):
    card = save_seg_package(tmp_path / "seg")
    real_loaded = engine_mod.loaded_network

    def loaded(card, device):
        if device == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory while loading")
        return real_loaded(card, device)

    monkeypatch.setattr(engine_mod, "choose_device", lambda preference="auto": "cuda")
    monkeypatch.setattr(engine_mod, "loaded_network", loaded)
    res = Engine("cuda").run(ct_volume((16, 32, 32)), (2, 2, 3), np.eye(3), "CT", card)
    assert res.warnings[0] == "the model does not fit in cuda memory; running on the CPU"
    assert res.device == "cpu (after CUDA out of memory)" and res.precision == "float32"
