"""The model boundary (issue 11): what may run, where, and the sentence a user reads when not."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from inference import registry  # noqa: E402
from inference.card import CardError, ModelCard  # noqa: E402
from inference.engine import Engine, EngineError  # noqa: E402
from inference.weights import WeightsError, verify_files  # noqa: E402
from radlens_core.admission import SeriesFacts  # noqa: E402
from radlens_core.paths import user_models_dir  # noqa: E402
from tests.inference_factory import ct_volume, save_seg_package, seg_card  # noqa: E402
from tests.test_inference_card import BUNDLE_NET, _bundle  # noqa: E402
from viewer.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")

CT_CHEST = SeriesFacts("CT", 3, (20, 40, 36), "CHEST")


def _card_json(folder) -> dict:
    return json.loads((folder / "model.json").read_text())


def _write_card(folder, data: dict) -> None:
    (folder / "model.json").write_text(json.dumps(data))


def _models_json(capsys, *extra) -> dict:
    assert main(["models", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


# ---- TorchScript ---------------------------------------------------------------------------
def test_torchscript_card_is_refused_listed_never_published_never_chosen(tmp_path, capsys):
    pkg = save_seg_package(user_models_dir() / "ts", id="ts-seg")
    data = _card_json(pkg.path)
    data["network"] = {**data["network"], "format": "torchscript"}
    _write_card(pkg.path, data)
    listing = _models_json(capsys)
    assert "ts-seg" not in [m["id"] for m in listing["models"]]
    (why,) = [p["problem"] for p in listing["problems"] if p["path"] == str(pkg.path)]
    assert "TorchScript is refused" in why and "ONNX" in why and "runs with your rights" in why
    assert registry.best_model(CT_CHEST, task="segmentation") is None or (
        registry.best_model(CT_CHEST, task="segmentation").id != "ts-seg"
    )
    assert main(["models", "publish", str(pkg.path)]) == 2
    assert "TorchScript is refused" in capsys.readouterr().err


def test_monai_bundle_with_only_model_ts_is_refused_pointing_to_onnx(tmp_path, capsys):
    root = _bundle(tmp_path, BUNDLE_NET)
    (root / "models" / "model.pt").rename(root / "models" / "model.ts")
    with pytest.raises(CardError, match=r"model\.ts.*refused.*runs with your rights.*ONNX"):
        ModelCard.load(root)
    assert main(["models", "publish", str(root)]) == 2
    err = capsys.readouterr().err
    assert "TorchScript" in err and "ONNX" in err
    assert not (user_models_dir() / "spleen_bundle").exists()


# ---- weights are regular files inside the package -------------------------------------------
def test_weights_symlink_leaving_the_package_is_refused(tmp_path):
    pkg = save_seg_package(tmp_path / "pkg")
    outside = tmp_path / "elsewhere.safetensors"
    (pkg.path / "model.safetensors").rename(outside)
    (pkg.path / "model.safetensors").symlink_to(outside)
    with pytest.raises(WeightsError, match="points outside the model package.*refused"):
        verify_files(ModelCard.load(pkg.path))
    with pytest.raises(EngineError, match="points outside the model package"):
        Engine("cpu").run(ct_volume(), (1.5, 1.5, 2.5), np.eye(3), "CT", ModelCard.load(pkg.path))


def test_weights_that_are_a_fifo_are_refused_without_being_opened(tmp_path):
    pkg = save_seg_package(tmp_path / "pkg")
    (pkg.path / "model.safetensors").unlink()
    os.mkfifo(pkg.path / "model.safetensors")  # opening it for reading would block forever
    with pytest.raises(WeightsError, match="not a regular file.*refused"):
        verify_files(ModelCard.load(pkg.path))


# ---- card and metadata caps; one bad package never hides the others ------------------------
def test_deeply_nested_card_is_refused_and_the_others_still_listed(tmp_path, capsys):
    save_seg_package(tmp_path / "models" / "good")
    deep = tmp_path / "models" / "deep"
    deep.mkdir()
    (deep / "model.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    big = tmp_path / "models" / "big"
    big.mkdir()
    (big / "model.json").write_text('{"pad": "' + "x" * 1_100_000 + '"}')
    listing = _models_json(capsys, "--dir", str(tmp_path / "models"))
    assert "tiny-seg" in [m["id"] for m in listing["models"]]
    problems = {p["path"]: p["problem"] for p in listing["problems"]}
    assert "nests 100001 levels deep; the limit is 32" in problems[str(deep)]
    assert "the limit is 1,000,000 bytes" in problems[str(big)]


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        (
            {"inputs": []},
            "field 'network_data_format.inputs' must be an object, got list",
        ),
        (
            {"inputs": {"image": {"num_channels": "abc"}}},
            "field 'network_data_format.inputs.image.num_channels' must be a whole number",
        ),
    ],
)
def test_bad_bundle_metadata_is_refused_with_a_sentence(tmp_path, capsys, change, sentence):
    root = _bundle(tmp_path / "bundles", BUNDLE_NET)
    meta_path = root / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["network_data_format"] = {**meta.get("network_data_format", {}), **change}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CardError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        ModelCard.load(root)
    save_seg_package(tmp_path / "bundles" / "good")
    listing = _models_json(capsys, "--dir", str(tmp_path / "bundles"))
    assert "tiny-seg" in [m["id"] for m in listing["models"]]
    assert any(sentence in p["problem"] for p in listing["problems"])


def test_control_characters_in_card_text_are_refused(tmp_path):
    pkg = save_seg_package(tmp_path / "pkg")
    data = _card_json(pkg.path)
    _write_card(pkg.path, {**data, "name": "Lung\x1b[31m segmenter"})
    with pytest.raises(CardError, match="'name' holds a control character \\(U\\+001B\\)"):
        ModelCard.load(pkg.path)
    _write_card(pkg.path, {**data, "intended_use": "Research\u202e only"})
    with pytest.raises(CardError, match="'intended_use' holds a control character"):
        ModelCard.load(pkg.path)
    _write_card(pkg.path, {**data, "intended_use": "Research only.\nNot for diagnosis."})
    assert ModelCard.load(pkg.path).intended_use.endswith("Not for diagnosis.")


# ---- every field checked before anything is allocated ---------------------------------------
def _card_data(network: dict | None = None, **over) -> dict:
    data = {**seg_card(**over), "files": {"model.safetensors": "0" * 64}}
    data["network"] = {
        **data["network"],
        "format": "safetensors",
        "weights": "model.safetensors",
        **(network or {}),
    }
    return data


def test_a_huge_patch_size_is_refused_when_the_card_is_read(tmp_path):
    with pytest.raises(CardError, match=r"patch_size' \[2048, 2048, 1024\] asks for 4,294,967,296"):
        ModelCard.from_dict(_card_data(patch_size=[2048, 2048, 1024]), tmp_path)


def test_absurd_network_kwargs_are_refused_before_the_network_is_built(tmp_path, monkeypatch):
    import inference.networks as networks

    monkeypatch.setattr(networks, "build_network", lambda *a, **k: pytest.fail("built"))
    kw = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3}
    net = {"kwargs": {**kw, "channels": [100000, 200000], "strides": [2]}}
    with pytest.raises(CardError, match=r"network.kwargs' asks for about [\d,]+ parameters"):
        ModelCard.from_dict(_card_data(network=net), tmp_path)


def test_a_run_that_would_not_fit_in_memory_is_refused_with_a_sentence(tmp_path, monkeypatch):
    import inference.engine as engine

    monkeypatch.setenv("RADLENS_MEMORY_LIMIT_MB", "2000")
    card = save_seg_package(tmp_path / "pkg", target_spacing=[0.05, 0.05, 0.05])
    monkeypatch.setattr(engine, "load_network", lambda c: pytest.fail("weights were loaded"))
    with pytest.raises(EngineError) as err:
        Engine("cpu").run(np.zeros((30, 51, 51), np.int16), (0.7, 0.7, 1.0), np.eye(3), "CT", card)
    msg = str(err.value)
    assert "model 'Tiny segmenter' would need about" in msg
    assert "resampled to 714×714×600 voxels" in msg and "has 2.0 GB available" in msg


def test_the_cli_prints_the_memory_sentence_without_a_traceback(tmp_path, capsys, monkeypatch):
    from radlens_core.grid import Grid
    from radlens_core.nifti import write_nifti

    monkeypatch.setenv("RADLENS_MEMORY_LIMIT_MB", "2000")
    save_seg_package(user_models_dir() / "fine", target_spacing=[0.05, 0.05, 0.05])
    write_nifti(
        tmp_path / "ct.nii.gz",
        np.zeros((30, 51, 51), np.int16),
        Grid((30, 51, 51), (0.7, 0.7, 1.0)),
    )
    rc = main(
        [
            "analyze",
            str(tmp_path / "ct.nii.gz"),
            "--model",
            "tiny-seg",
            "--modality",
            "CT",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert "would need about" in err and "available, so the run was refused" in err


# ---- hashes ------------------------------------------------------------------------------
def test_a_package_failing_its_hashes_is_refused_never_offered_or_chosen(capsys):
    pkg = save_seg_package(user_models_dir() / "tampered", id="tampered-seg", body_part="CHEST")
    (pkg.path / "model.safetensors").write_bytes(b"changed after it was published")
    listing = _models_json(capsys)
    assert "tampered-seg" not in [m["id"] for m in listing["models"]]
    (why,) = [p["problem"] for p in listing["problems"] if p["path"] == str(pkg.path)]
    assert "SHA-256 mismatch" in why
    assert main(["models"]) == 0
    assert f"refused {pkg.path}" in capsys.readouterr().out
    best = registry.best_model(CT_CHEST)
    assert best is None or best.id != "tampered-seg"
    offered = {a.model_id: a for a in registry.offer(CT_CHEST)}
    assert not offered["tampered-seg"].admitted
    assert "fail their check" in offered["tampered-seg"].reasons[0]
    assert registry.offer(CT_CHEST)[-1].model_id == "tampered-seg"


def test_a_tampered_user_copy_does_not_hide_the_verified_package_of_the_same_id(tmp_path):
    save_seg_package(tmp_path / "extra" / "good", id="twin-seg")
    bad = save_seg_package(user_models_dir() / "twin", id="twin-seg")
    (bad.path / "model.safetensors").write_bytes(b"x")
    verdicts = registry.usable_models([tmp_path / "extra"])
    assert [c.path for c in verdicts.cards if c.id == "twin-seg"] == [tmp_path / "extra" / "good"]
    assert any(p == bad.path for p, _ in verdicts.problems)


# ---- publish a MONAI bundle --------------------------------------------------------------
def test_publishing_a_monai_bundle_folder_installs_a_verified_package(tmp_path, capsys):
    root = _bundle(tmp_path, BUNDLE_NET)
    assert main(["models", "publish", str(root)]) == 0
    assert "published to" in capsys.readouterr().out
    installed = ModelCard.load(user_models_dir() / "spleen_bundle")
    assert installed.source == "radlens" and installed.network["format"] == "safetensors"
    verify_files(installed)
    listing = _models_json(capsys)
    assert "spleen_bundle" in [m["id"] for m in listing["models"]]
    res = Engine("cpu").run(np.zeros((12, 20, 20), np.int16), (2, 2, 2), np.eye(3), "CT", installed)
    assert res.label_map.array.shape == (12, 20, 20)


# ---- where a model may run ----------------------------------------------------------------
def test_admission_says_why_in_sentences(tmp_path):
    card = save_seg_package(tmp_path / "pkg", max_input_size=[64, 64, 64])
    assert registry.admission(card, CT_CHEST).admitted
    cases = {
        SeriesFacts("CR", 3, (20, 40, 36), "CHEST"): "made for CT images; this series is CR",
        SeriesFacts("CT", 2, (1, 40, 36), "CHEST"): "made for 3D volumes; this series is a single",
        SeriesFacts(
            "CT", 3, (20, 40, 36), "HEAD"
        ): "made for the chest; this series is of the head",
        SeriesFacts("CT", 3, (20, 40, 36), "", has_spacing=False): "needs the pixel spacing",
        SeriesFacts("CT", 3, (20, 40, 100), ""): "this series is 100×40×20 voxels; the model"
        " takes at most 64×64×64",
    }
    for facts, sentence in cases.items():
        adm = registry.admission(card, facts)
        assert not adm.admitted and any(sentence in r for r in adm.reasons), (facts, adm.reasons)
    # Aliases of the same region are one body part; a series stating none is not refused.
    assert registry.admission(card, SeriesFacts("CT", 3, (20, 40, 36), "THORAX")).admitted
    assert registry.admission(card, SeriesFacts("CT", 3, (20, 40, 36), "")).admitted


def test_a_multichannel_model_does_not_admit_a_single_channel_series(tmp_path):
    card = save_seg_package(tmp_path / "pkg", input_channels=4)
    (why,) = registry.admission(card, CT_CHEST).reasons
    assert why == "it needs 4 input channels; this series has 1"


def test_best_model_never_falls_back_to_a_model_that_does_not_admit_the_series():
    save_seg_package(user_models_dir() / "seg", id="user-seg")
    leg = SeriesFacts("CR", 2, (1, 256, 256), "EXTREMITY")
    assert registry.best_model(leg) is None
    assert all(not a.admitted for a in registry.offer(leg))
    head = SeriesFacts("CT", 3, (40, 64, 64), "HEAD")
    assert registry.best_model(head) is None
    ranked = registry.offer(CT_CHEST)
    assert ranked[0].admitted and ranked[0].model_id == "user-seg"


@pytest.fixture
def head_ct(tmp_path):
    import pydicom

    from tests.dicom_factory import write_ct_series

    folder = tmp_path / "head"
    write_ct_series(folder, shape=(12, 32, 32), spacing=(4.0, 4.0, 5.0))
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.BodyPartExamined = "HEAD"
        ds.save_as(f)
    return folder


def test_analyze_on_a_series_no_model_admits_lists_each_model_and_why(head_ct, tmp_path, capsys):
    save_seg_package(user_models_dir() / "seg", id="user-seg")
    rc = main(["analyze", str(head_ct), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "no installed model is meant for this CT 3D series" in err
    assert "user-seg (Tiny segmenter): it is made for the chest; this series is of the head" in err
    assert "radlens-cxr-nodule-cls" in err  # every installed model is listed with its reason
    assert "--outside-intended-use" in err
    assert not (tmp_path / "o" / "findings.json").exists()


def test_explicit_override_runs_and_marks_findings_json(head_ct, tmp_path, capsys):
    save_seg_package(user_models_dir() / "seg", id="user-seg")
    out = tmp_path / "o"
    rc = main(["analyze", str(head_ct), "--model", "user-seg", "--out", str(out), "--quiet"])
    assert rc == 2 and "add --outside-intended-use" in capsys.readouterr().err
    rc = main(
        [
            "analyze",
            str(head_ct),
            "--model",
            "user-seg",
            "--outside-intended-use",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert "FLAGGED: outside intended use" in capsys.readouterr().out
    data = json.loads((out / "findings.json").read_text())
    assert data["outside_intended_use"] is True
    assert data["flags"][0]["code"] == "outside_intended_use"
    assert "outside intended use" in data["flags"][0]["message"]
    assert set(data) >= {"ood_score", "ood_range"}


def test_a_bundle_value_of_the_wrong_type_is_a_card_error_not_a_traceback(tmp_path):
    root = _bundle(tmp_path, BUNDLE_NET)
    config_path = root / "configs" / "inference.json"
    config = json.loads(config_path.read_text())
    config["preprocessing"]["transforms"][-1]["a_min"] = "abc"
    config_path.write_text(json.dumps(config))
    with pytest.raises(CardError, match="cannot read the MONAI bundle"):
        ModelCard.load(root)
