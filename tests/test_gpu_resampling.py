"""Resampling to the model grid and mapping back in torch (the path a CUDA run takes) gives
the CPU path's answer: on CPU tensors everywhere, and on a CUDA device where there is one
(CI has none; the device machine runs them), on the demo and on a tilted anisotropic CT."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import postprocess, preprocess  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.registry import find_model  # noqa: E402
from phantoms.chest import chest_ct  # noqa: E402
from tests.inference_factory import save_det_package  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")

#: Where the torch path runs: CPU tensors always, CUDA when there is a device.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s


def rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def tilted_ct() -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """A chest phantom on a coarse-slice grid (0.9 x 0.9 x 3.1 mm), its rows running along
    -P, columns along L, slices feet-first, tilted 17 degrees: reorientation permutes and
    flips axes, and every axis is resampled by a different factor."""
    ct = chest_ct((30, 72, 64), seed=11, n_nodules=2)
    hu = np.ascontiguousarray(np.transpose(ct.hu, (0, 2, 1)))  # (z, y, x) with x and y swapped
    d = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]) @ rotation(0, 17)
    return hu.astype(np.int16), (0.9, 0.9, 3.1), d


def cases():
    from viewer.study.demo import demo_volume

    demo = demo_volume()
    yield "demo", demo.array, demo.spacing, np.asarray(demo.direction)
    yield ("tilted", *tilted_ct())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["demo", "tilted"])
def test_torch_resampling_gives_the_cpu_model_input(name, device):
    image, spacing, direction = next(c[1:] for c in cases() if c[0] == name)
    card = find_model("radlens-ct-chest-seg")
    x_cpu, frame = preprocess.prepare(image, spacing, direction, card)
    x_t, frame_t = preprocess.prepare(image, spacing, direction, card, device=device)
    assert frame_t == frame
    if name == "tilted":
        assert frame.reoriented and len(set(frame.scale)) == 3
    assert x_t.shape == x_cpu.shape and x_t.dtype == torch.float32
    assert x_t.device.type == device
    assert torch.allclose(x_t.cpu(), x_cpu, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["demo", "tilted"])
def test_torch_mapping_back_gives_the_cpu_labels_and_heat_map(name, device):
    """The shipped segmenter end to end, once per path (the network on the same device for
    both): same label map, same heat map."""
    image, spacing, direction = next(c[1:] for c in cases() if c[0] == name)
    card = find_model("radlens-ct-chest-seg")
    cpu = Engine(device, resample="numpy").run(image, spacing, direction, "CT", card)
    tor = Engine(device, resample="torch").run(image, spacing, direction, "CT", card)
    assert tor.device == device  # no fallback hid the path under test
    a, b = cpu.label_map.array, tor.label_map.array
    assert a.shape == b.shape == image.shape
    for entry in card.labels:
        if (a == entry.index).any():
            assert dice(a == entry.index, b == entry.index) >= 0.999, entry.name
    assert (a > 0).any()
    # On CUDA the network runs in float16 (autocast): the two paths' model inputs differ by
    # float32 rounding (<= 1e-5, the test above), which float16 arithmetic turns into small
    # differences of probability (4.7e-4 and 1.1e-3 at most on an H200); the mapping back
    # itself is compared to 1e-6 on the device below.
    diff = float(np.abs(cpu.heat_map.array - tor.heat_map.array).max())
    print(f"{name} on {device}: heat maps differ by at most {diff:.2e}")
    if device == "cpu":
        assert np.allclose(cpu.heat_map.array, tor.heat_map.array, atol=1e-5)
    else:
        assert diff <= 1e-2
    assert cpu.label_map.volumes_ml == pytest.approx(tor.label_map.volumes_ml, rel=1e-3)


def test_default_path_on_the_cpu_stays_numpy(monkeypatch):
    """Without a GPU the default engine never takes the torch path (the CPU path as it was)."""
    calls = []
    original = preprocess.resample_on
    monkeypatch.setattr(
        preprocess, "resample_on", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    assert Engine("cpu").resample_device("cpu") is None
    image, spacing, direction = tilted_ct()
    Engine("cpu").run(image, spacing, direction, "CT", find_model("radlens-ct-chest-seg"))
    assert calls == []
    assert Engine("cpu", resample="torch").resample_device("cpu") == "cpu"
    with pytest.raises(ValueError):
        Engine("cpu", resample="gpu")


@pytest.mark.parametrize("device", DEVICES)
def test_detector_heat_map_and_boxes_agree_on_both_paths(tmp_path, device):
    card = save_det_package(tmp_path / "det")
    image, spacing, direction = tilted_ct()
    cpu = Engine(device, resample="numpy").run(image, spacing, direction, "CT", card)
    tor = Engine(device, resample="torch").run(image, spacing, direction, "CT", card)
    assert cpu.heat_map.array.shape == image.shape
    assert np.allclose(cpu.heat_map.array, tor.heat_map.array, atol=1e-5)
    assert len(cpu.boxes) == len(tor.boxes)
    a = np.array([b.corners for b in cpu.boxes])
    b = np.array([b.corners for b in tor.boxes])
    assert np.allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_sigmoid_labels_and_2d_maps_agree_on_both_paths(device):
    rng = np.random.default_rng(5)
    probs = torch.from_numpy(rng.random((2, 6, 9, 7)).astype(np.float32))
    frame = preprocess.make_frame((17, 30, 20), (0.7, 0.9, 2.5), rotation(2, 30), (2.0, 2.0, 6.0))
    assert frame.model_shape != frame.oriented_shape
    probs = torch.from_numpy(rng.random((2, *frame.model_shape)).astype(np.float32))
    for output in ("sigmoid", "softmax"):
        a = postprocess.labels_to_input(probs, frame, output, [1, 2], 0.6)
        b = postprocess.labels_to_input(probs, frame, output, [1, 2], 0.6, device=device)
        assert a.shape == (17, 30, 20) and np.mean(a == b) >= 0.999
    flat = preprocess.make_frame((40, 50), (0.5, 0.8), None, (1.0, 1.0))
    p2 = torch.from_numpy(rng.random((3, *flat.model_shape)).astype(np.float32))
    a = postprocess.labels_to_input(p2, flat, "softmax", [0, 1, 2])
    b = postprocess.labels_to_input(p2, flat, "softmax", [0, 1, 2], device=device)
    assert np.array_equal(a, b)
    h1 = postprocess.heat_to_input(p2[1], flat)
    h2 = postprocess.heat_to_input(p2[1], flat, device=device)
    assert np.allclose(h1, h2, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_labels_resample_by_nearest_neighbour_on_both_paths(device):
    lab = np.random.default_rng(1).integers(0, 4, (7, 11, 9)).astype(np.uint8)
    for shape in ((14, 22, 18), (5, 8, 4), (7, 11, 9)):
        a = preprocess.resample_labels(lab, shape)
        b = preprocess.resample_labels_on(lab, shape, device)
        assert np.array_equal(a, b) and b.dtype == np.uint8
        assert set(np.unique(b)) <= set(np.unique(lab))
