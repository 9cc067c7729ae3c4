"""`radlens models publish MODELDIR [--replace]`: installs a package the listing then shows."""

from __future__ import annotations

import json
from pathlib import Path

from tests.inference_factory import SEG_KW, seg_card


def _package(folder, version="0.1"):
    from inference.networks import build_network
    from inference.weights import save_package

    return save_package(folder, seg_card(version=version), build_network("monai.UNet", SEG_KW))


def _listed(capsys) -> dict[str, str]:
    """id -> version of the packages `radlens models --json` finds in the user folder."""
    from radlens_core.paths import user_models_dir
    from viewer.cli import main

    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    user = user_models_dir().resolve()
    return {
        m["id"]: m["version"] for m in data["models"] if Path(m["path"]).resolve().parent == user
    }


def test_publish_installs_the_package_and_the_listing_shows_it(tmp_path, capsys):
    from radlens_core.paths import user_models_dir
    from viewer.cli import main

    _package(tmp_path / "pkg")
    assert main(["models", "publish", str(tmp_path / "pkg")]) == 0
    out = capsys.readouterr().out
    assert f"published to {user_models_dir() / 'tiny-seg'}" in out
    assert (user_models_dir() / "tiny-seg" / "model.json").is_file()
    assert _listed(capsys) == {"tiny-seg": "0.1"}


def test_publish_refuses_another_version_unless_replace(tmp_path, capsys):
    from viewer.cli import main

    _package(tmp_path / "v1", version="0.1")
    _package(tmp_path / "v2", version="0.2")
    assert main(["models", "publish", str(tmp_path / "v1")]) == 0
    capsys.readouterr()
    assert main(["models", "publish", str(tmp_path / "v2")]) == 2
    err = capsys.readouterr().err
    assert "already holds 'tiny-seg' as version 0.1" in err and "replace" in err
    assert _listed(capsys) == {"tiny-seg": "0.1"}
    assert main(["models", "publish", str(tmp_path / "v2"), "--replace"]) == 0
    capsys.readouterr()
    assert _listed(capsys) == {"tiny-seg": "0.2"}


def test_publish_of_a_folder_without_a_card_names_it(tmp_path, capsys):
    from viewer.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["models", "publish", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty") in err and "cannot publish" in err


def test_publish_of_tampered_weights_is_refused(tmp_path, capsys):
    from viewer.cli import main

    _package(tmp_path / "pkg")
    (tmp_path / "pkg" / "model.safetensors").write_bytes(b"not the weights the card hashed")
    assert main(["models", "publish", str(tmp_path / "pkg")]) == 2
    assert "cannot publish" in capsys.readouterr().err
    assert _listed(capsys) == {}
