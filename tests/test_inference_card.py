"""Model cards, MONAI bundles read as data, and the registry."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from inference import registry  # noqa: E402
from inference.card import CardError, ModelCard  # noqa: E402
from inference.engine import Engine  # noqa: E402
from inference.networks import build_network  # noqa: E402
from tests.inference_factory import save_seg_package, seg_card  # noqa: E402


@pytest.fixture
def package(tmp_path):
    return save_seg_package(tmp_path / "pkg")


def _rewrite(card: ModelCard, **changes) -> None:
    path = card.path / "model.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        data[key] = value
    path.write_text(json.dumps(data))


def test_card_round_trips_through_json(package):
    again = ModelCard.from_dict(package.to_json(), package.path)
    assert again == package
    assert package.labels[1].name == "nodule" and package.target_spacing == (4.0, 4.0, 4.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task", "regression"),
        ("spatial_dims", 4),
        ("id", "Bad Id!"),
        ("modalities", []),
        ("target_spacing", [1.0, -2.0, 1.0]),
        ("patch_size", [16, 16]),
        ("labels", [{"index": 1, "name": "lung", "color": "blue"}]),
        ("thresholds", {"score": 2}),
        ("inference", {"mode": "median"}),
        ("preprocessing", {"steps": [{"op": "sharpen"}]}),
        ("files", {"model.safetensors": "abc"}),
    ],
)
def test_each_bad_field_is_named_with_the_package_path(package, field, value):
    _rewrite(package, **{field: value})
    with pytest.raises(CardError) as err:
        ModelCard.load(package.path)
    assert str(package.path) in str(err.value) and f"'{field}" in str(err.value)


def test_unlisted_architecture_is_refused(package):
    data = package.to_json()
    data["network"]["architecture"] = "torchvision.resnet50"
    with pytest.raises(CardError, match="network.architecture.*not allow-listed"):
        ModelCard.from_dict(data, package.path)


def test_expression_in_network_kwargs_is_refused(package):
    data = package.to_json()
    data["network"]["kwargs"]["channels"] = "$__import__('os').system('echo')"
    with pytest.raises(CardError, match="expressions are not allowed"):
        ModelCard.from_dict(data, package.path)


def test_weights_path_cannot_leave_the_package(package):
    data = package.to_json()
    data["network"]["weights"] = "../elsewhere.safetensors"
    with pytest.raises(CardError, match="network.weights"):
        ModelCard.from_dict(data, package.path)


def _bundle(tmp_path, network_def):
    root = tmp_path / "spleen_bundle"
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    meta = {
        "name": "Tiny spleen bundle",
        "version": "0.2.0",
        "intended_use": "test only",
        "network_data_format": {
            "inputs": {
                "image": {
                    "format": "hounsfield",
                    "modality": "CT",
                    "num_channels": 1,
                    "spatial_shape": [16, 16, 8],
                }
            },
            "outputs": {
                "pred": {"num_channels": 2, "channel_def": {"0": "background", "1": "spleen"}}
            },
        },
    }
    config = {
        "imports": ["$import glob"],  # never evaluated: we only read the fields we use
        "network_def": network_def,
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Spacingd", "keys": "image", "pixdim": [3.0, 3.0, 3.0]},
                {
                    "_target_": "ScaleIntensityRanged",
                    "keys": "image",
                    "a_min": -57,
                    "a_max": 164,
                    "b_min": 0,
                    "b_max": 1,
                    "clip": True,
                },
            ],
        },
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": [16, 16, 8],
            "sw_batch_size": 2,
            "overlap": 0.25,
        },
    }
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    kw = {k: v for k, v in network_def.items() if k != "_target_"}
    if all(not (isinstance(v, str) and v[:1] in "$@") for v in kw.values()):
        torch.save(build_network("monai.UNet", kw).state_dict(), root / "models" / "model.pt")
    else:
        torch.save({}, root / "models" / "model.pt")
    return root


BUNDLE_NET = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
}


def test_monai_bundle_is_read_as_data_and_runs(tmp_path):
    card = ModelCard.load(_bundle(tmp_path, BUNDLE_NET))
    assert card.source == "monai_bundle" and card.network["architecture"] == "monai.UNet"
    assert card.labels[0].name == "spleen" and card.target_spacing == (3.0, 3.0, 3.0)
    assert card.preprocessing["steps"][0]["a_min"] == -57.0 and card.patch_size == (16, 16, 8)
    import numpy as np

    res = Engine("cpu").run(np.zeros((12, 20, 20), np.int16), (2, 2, 2), np.eye(3), "CT", card)
    assert res.label_map.array.shape == (12, 20, 20)
    assert any("no published SHA-256" in w for w in res.warnings)


def test_dollar_expression_in_bundle_network_is_refused(tmp_path):
    net = {**BUNDLE_NET, "channels": "$[4, 8]"}
    with pytest.raises(CardError, match="network_def.channels.*expression.*refused"):
        ModelCard.load(_bundle(tmp_path, net))


def test_bundle_target_outside_the_allow_list_is_refused(tmp_path):
    net = {**BUNDLE_NET, "_target_": "os.system"}
    with pytest.raises(CardError, match="_target_.*not an allow-listed"):
        ModelCard.load(_bundle(tmp_path, net))


def test_registry_lists_good_packages_and_reports_bad_ones(tmp_path):
    save_seg_package(tmp_path / "models" / "good")
    bad = tmp_path / "models" / "bad"
    bad.mkdir()
    (bad / "model.json").write_text("{not json")
    scan = registry.scan_models([tmp_path / "models"])
    assert "tiny-seg" in [c.id for c in scan.cards]
    assert any(p == bad and "cannot read" in why for p, why in scan.problems)


def test_user_models_are_found_and_matched_by_modality_and_body_part():
    from radlens_core.paths import user_models_dir

    save_seg_package(user_models_dir() / "seg", id="user-seg")
    assert registry.find_model("user-seg").id == "user-seg"
    assert registry.find_model("user-seg@0.1").version == "0.1"
    best = registry.best_model("CT", 3, "CHEST", task="segmentation")
    assert best is not None and best.id == "user-seg"  # user models win ties over shipped ones
    assert registry.best_model("MR", 3, "BRAIN", task="segmentation") is None
    with pytest.raises(KeyError, match="installed"):
        registry.find_model("no-such-model")


@pytest.mark.parametrize(
    "model_id", ["radlens-ct-chest-seg", "radlens-ct-nodule-det", "radlens-cxr-nodule-cls"]
)
def test_shipped_cards_round_trip_through_to_json(model_id):
    from radlens_core.paths import shipped_models_dir

    card = ModelCard.load(shipped_models_dir() / model_id)
    written = json.loads(json.dumps(card.to_json()))  # exactly what a model.json would hold
    assert ModelCard.from_dict(written, card.path) == card


def _card_data(**over) -> dict:
    """A complete card dictionary (as model.json holds it) without writing any weights."""
    data = {**seg_card(**over), "files": {"model.safetensors": "0" * 64}}
    data["network"] = {**data["network"], "format": "safetensors", "weights": "model.safetensors"}
    return data


def test_a_non_classifier_card_may_spell_absent_classes_and_gradcam_layer(tmp_path):
    data = _card_data()
    card = ModelCard.from_dict({**data, "classes": [], "gradcam_layer": None}, tmp_path)
    assert card.classes == () and card.gradcam_layer is None
    assert card.to_json()["classes"] == [] and card.to_json()["gradcam_layer"] is None
    assert ModelCard.from_dict(card.to_json(), tmp_path) == card


def test_a_classifier_card_still_needs_its_classes(tmp_path):
    data = _card_data(task="classification")
    with pytest.raises(CardError, match="'classes' must be a non-empty list"):
        ModelCard.from_dict({**data, "classes": []}, tmp_path)
