"""The status bar names the device that actually ran the model, fallback included."""

from __future__ import annotations

import pytest

from viewer.ui.analyze_feature import device_words

pytestmark = pytest.mark.gui


def test_status_bar_says_cpu_after_a_cuda_out_of_memory_fallback():
    assert device_words("cpu (after CUDA out of memory)") == "the CPU (after CUDA out of memory)"
    assert device_words("cuda, stitching on cpu (after CUDA out of memory)") == (
        "CUDA, stitching on CPU (after CUDA out of memory)"
    )


def test_status_bar_plain_devices_read_as_before():
    assert device_words("cpu") == "the CPU"
    assert device_words("cuda") == "CUDA"
    assert device_words("mps") == "MPS"
