"""The shipped demo models, through the engine, on phantoms they never saw (CPU)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import registry  # noqa: E402
from inference.engine import Engine  # noqa: E402
from phantoms.chest import LUNG, chest_ct  # noqa: E402


def _shipped(model_id: str):
    try:
        return registry.find_model(model_id)
    except KeyError:
        pytest.skip(f"{model_id} is not shipped in resources/models yet")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_shipped_ct_segmenter_finds_the_lungs_of_a_small_phantom():
    torch.set_num_threads(2)
    card = _shipped("radlens-ct-chest-seg")
    ct = chest_ct((40, 96, 96), seed=4321, n_nodules=2)
    hu, labels = ct.hu[12:28], ct.labels[12:28]  # a 16-slice slab keeps the test quick
    res = Engine("cpu").run(hu, ct.spacing, np.eye(3), "CT", card)
    assert res.label_map.array.shape == hu.shape
    lung_truth = labels > 0  # nodules sit inside the lungs
    lung_found = res.label_map.array > 0
    assert _dice(lung_found, lung_truth) > 0.8
    voxel_ml = float(np.prod(ct.spacing)) / 1000.0
    assert res.label_map.volumes_ml["lung"] == pytest.approx(
        (res.label_map.array == LUNG).sum() * voxel_ml
    )


def test_shipped_ct_detector_box_covers_a_phantom_nodule():
    torch.set_num_threads(2)
    card = _shipped("radlens-ct-nodule-det")
    ct = chest_ct((40, 96, 96), seed=4322, n_nodules=1, nodule_radius_mm=(8.0, 10.0))
    res = Engine("cpu").run(ct.hu, ct.spacing, np.eye(3), "CT", card)
    centre = np.asarray(ct.nodules[0].center_zyx)
    covering = [
        b
        for b in res.boxes
        if np.all(np.asarray(b.corners[:3]) - 1 <= centre)
        and np.all(centre <= np.asarray(b.corners[3:]) + 1)
    ]
    assert covering, f"no box covers the nodule at {centre}: {res.boxes}"


def test_shipped_radiograph_classifier_ranks_nodules_higher_with_a_gradcam_map():
    from phantoms.chest import chest_radiograph

    torch.set_num_threads(2)
    card = _shipped("radlens-cxr-nodule-cls")
    eng = Engine("cpu")
    scores = {True: [], False: []}
    for seed in (9001, 9002, 9003):
        for nodule in (True, False):
            xr = chest_radiograph(128, seed=seed, nodule=nodule)
            res = eng.run(xr.image, (*xr.spacing, 1.0), np.eye(3), "DX", card)
            scores[nodule].append(res.classification.probabilities["nodule"])
            assert res.heat_map.array.shape == xr.image.shape
            assert 0.0 <= res.heat_map.array.min() and res.heat_map.array.max() <= 1.0
            if nodule:  # Grad-CAM weight sits on the nodule, above the image average
                y0, x0, y1, x1 = (int(round(v)) for v in xr.box_yx)
                heat = res.heat_map.array
                assert heat[y0 : y1 + 1, x0 : x1 + 1].mean() > heat.mean()
    assert np.mean(scores[True]) > np.mean(scores[False])


def test_shipped_ct_models_do_not_admit_a_head_ct_and_state_their_ranges():
    from radlens_core.admission import SeriesFacts

    head = SeriesFacts("CT", 3, (96, 256, 256), "HEAD")
    for model_id in ("radlens-ct-chest-seg", "radlens-ct-nodule-det"):
        card = _shipped(model_id)
        assert card.ood and card.plausibility, f"{model_id} states no measured ranges"
        (why,) = registry.admission(card, head).reasons
        assert why == "it is made for the chest; this series is of the head (BodyPartExamined HEAD)"
    assert _shipped("radlens-cxr-nodule-cls").ood["score"] == "max_probability"


def test_shipped_segmenter_flags_a_look_it_never_saw_and_not_its_own():
    """Issue 11: "a chest phantom the model never saw gets 24 nodules" is shown flagged."""
    torch.set_num_threads(2)
    card = _shipped("radlens-ct-chest-seg")
    own = chest_ct((48, 128, 128), seed=4321)
    res = Engine("cpu").run(own.hu, own.spacing, np.eye(3), "CT", card)
    assert res.run.flags == (), [f.message for f in res.run.flags]
    shifted = chest_ct((48, 128, 128), seed=1001, contrast=0.6, noise_hu=40.0)
    res = Engine("cpu").run(shifted.hu, shifted.spacing, np.eye(3), "CT", card)
    codes = {f.code: f.message for f in res.run.flags}
    assert "out_of_distribution" in codes and res.run.ood_score < res.run.ood_range[0]
    assert "unlike this model's validation data" in codes["out_of_distribution"]
    assert "too_many_findings" in codes
