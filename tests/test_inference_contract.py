"""The engine answers with the core contract (radlens_core.results), raises the core Cancelled,
and its user-facing errors are UserErrors; the inference modules import one another in one
direction only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference.card import CardError, ModelCard  # noqa: E402
from inference.engine import Cancelled, Engine, EngineError  # noqa: E402
from inference.networks import UnknownArchitecture, build_network  # noqa: E402
from inference.weights import WeightsError, verify_files  # noqa: E402
from radlens_core import progress  # noqa: E402
from radlens_core.errors import UserError  # noqa: E402
from radlens_core.files import sha256_file  # noqa: E402
from radlens_core.results import (  # noqa: E402
    AnalysisResult,
    Box,
    HeatMap,
    LabelClass,
    LabelMap,
    RunInfo,
    Task,
)
from tests.inference_factory import ct_volume, save_det_package, save_seg_package  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")
torch.set_num_threads(1)


def test_segmentation_result_is_the_frozen_core_record_with_its_run(tmp_path):
    card = save_seg_package(tmp_path / "seg")
    res = Engine("cpu").run(ct_volume((16, 32, 32)), (2, 2, 3), np.eye(3), "CT", card)
    assert type(res) is AnalysisResult and type(res.run) is RunInfo
    assert type(res.label_map) is LabelMap and type(res.heat_map) is HeatMap
    assert res.run.model_id == "tiny-seg" and res.run.model_version == "0.1"
    assert res.run.model_name == "Tiny segmenter" and res.run.task is Task.SEGMENTATION
    assert res.run.intended_use == "test only" and res.run.warnings == ()
    assert res.run.device == "cpu" and res.run.precision == "float32"
    assert res.run.timings["total"] >= res.run.timings["inference"] > 0
    assert res.label_map.labels == card.labels
    assert all(type(e) is LabelClass for e in res.label_map.labels)
    assert res.boxes == () and res.classification is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.label_map = None  # type: ignore[misc]


def test_detector_boxes_are_core_boxes(tmp_path, monkeypatch):
    card = save_det_package(tmp_path / "det", thresholds={"score": 0.5}, patch_size=[20, 20, 10])

    def one_peak(net, x):
        out = torch.full((x.shape[0], 4, *x.shape[2:]), -20.0)
        out[:, 0, 5, 6, 7] = 20.0
        out[:, 1:, 5, 6, 7] = 2.0
        return out

    monkeypatch.setattr("inference.tasks.segment.forward", one_peak)
    res = Engine("cpu").run(ct_volume((20, 40, 40)), (2, 2, 2), np.eye(3), "CT", card)
    assert res.boxes and all(type(b) is Box and b.ndim == 3 for b in res.boxes)
    assert res.run.task is Task.DETECTION and res.layers()[-1] == "boxes"


def test_cancel_raises_the_one_core_cancelled(tmp_path):
    assert Cancelled is progress.Cancelled
    card = save_seg_package(tmp_path / "seg")
    with pytest.raises(progress.Cancelled):
        Engine("cpu").run(ct_volume(), (1, 1, 1), np.eye(3), "CT", card, None, lambda: True)


@pytest.mark.parametrize(
    "error, also",
    [
        (CardError, ValueError),
        (EngineError, RuntimeError),
        (WeightsError, RuntimeError),
        (UnknownArchitecture, ValueError),
    ],
)
def test_user_facing_errors_are_user_errors_and_keep_their_old_base(error, also):
    assert issubclass(error, UserError) and issubclass(error, also)


def test_each_user_error_is_raised_as_one(tmp_path):
    card = save_seg_package(tmp_path / "seg")
    (card.path / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(UserError, match="SHA-256 mismatch"):
        verify_files(card)
    with pytest.raises(UserError, match="not a model package"):
        ModelCard.load(tmp_path / "nothing")
    with pytest.raises(UserError, match="not allowed"):
        build_network("os.system", {})


def test_package_files_are_hashed_with_the_core_hash(tmp_path):
    card = save_seg_package(tmp_path / "seg")
    assert card.files == {"model.safetensors": sha256_file(card.path / "model.safetensors")}
    assert not list(card.path.glob("*.tmp")) and not list(card.path.glob(".*"))


def test_inference_modules_import_each_other_in_one_direction_only():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("inference")
    modules = {m for m in graph.modules if not m.startswith("inference.training")}
    cycles = [
        (a, b)
        for a in modules
        for b in graph.find_modules_directly_imported_by(a)
        if b in modules and graph.chain_exists(importer=b, imported=a)
    ]
    assert cycles == []
