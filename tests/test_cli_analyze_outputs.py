"""What `radlens analyze` writes: a heat map only when asked or small, NIfTI that reads back."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from phantoms.chest import chest_ct  # noqa: E402
from radlens_core.paths import user_models_dir  # noqa: E402
from tests.dicom_factory import write_ct_series  # noqa: E402
from tests.inference_factory import save_seg_package  # noqa: E402
from viewer.cli import main  # noqa: E402
from viewer.commands import analyze as analyze_cmd  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_engine_cache")


@pytest.fixture
def folder(tmp_path):
    save_seg_package(user_models_dir() / "seg")
    ct = chest_ct((12, 32, 32), seed=1, n_nodules=1)
    write_ct_series(tmp_path / "dicom", shape=ct.hu.shape, spacing=(4.0, 4.0, 5.0), values=ct.hu)
    return tmp_path / "dicom"


def _analyze(folder, out, *extra):
    args = ["analyze", str(folder), "--model", "tiny-seg", "--out", str(out), "--quiet"]
    return main([*args, "--device", "cpu", "--threads", "1", *extra])


def test_a_big_heat_map_is_written_only_when_asked(folder, tmp_path, monkeypatch, capsys):
    from viewer.study.formats import read_image

    monkeypatch.setattr(analyze_cmd, "HEATMAP_AUTO_VOXELS", 12 * 32 * 32 - 1)
    assert _analyze(folder, tmp_path / "plain") == 0
    data = json.loads((tmp_path / "plain" / "findings.json").read_text())
    assert data["files"] == {"mask": "mask.nii.gz"}
    assert not (tmp_path / "plain" / "heatmap.nii.gz").exists()
    assert (
        data["heatmap_not_written"] == "the heat map has 12,288 voxels; add --heatmap to write it"
    )
    assert "not written: the heat map has 12,288 voxels" in capsys.readouterr().out

    assert _analyze(folder, tmp_path / "asked", "--heatmap") == 0
    data = json.loads((tmp_path / "asked" / "findings.json").read_text())
    assert data["files"] == {"mask": "mask.nii.gz", "heatmap": "heatmap.nii.gz"}
    heat = read_image(tmp_path / "asked" / "heatmap.nii.gz")
    assert heat.shape == (12, 32, 32) and heat.array.dtype == np.float32
    assert "heatmap_not_written" not in data


def test_outputs_are_fast_gzip_nifti_with_the_engine_label_map(folder, tmp_path):
    from radlens_core.nifti import read_nifti

    out = tmp_path / "out"
    assert _analyze(folder, out) == 0
    raw = (out / "mask.nii.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[8] == 4  # gzip, XFL 4 = fastest compression
    assert int.from_bytes(gzip.decompress(raw)[:4], "little") == 348  # a NIfTI-1 header
    mask, grid = read_nifti(out / "mask.nii.gz")
    assert mask.shape == (12, 32, 32) and np.allclose(grid.spacing, (4.0, 4.0, 5.0))
    data = json.loads((out / "findings.json").read_text())
    vox_ml = 4.0 * 4.0 * 5.0 / 1000.0
    for entry in data["labels"]:
        assert data["volumes_ml"][entry["name"]] == pytest.approx(
            np.count_nonzero(mask == entry["index"]) * vox_ml, abs=1e-3
        )


def test_a_process_started_for_analyze_ends_with_its_outputs_and_exit_code(folder, tmp_path):
    """`python -m viewer analyze` ends without the interpreter's teardown (see _end_process):
    the exit code, the printed summary and every output file are all there."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    base = [sys.executable, "-m", "viewer", "analyze", str(folder), "--device", "cpu"]
    out = tmp_path / "out"
    done = subprocess.run(
        [*base, "--model", "tiny-seg", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "tiny-seg@0.1 on cpu" in done.stdout and "100.0%" in done.stderr
    data = json.loads((out / "findings.json").read_text())
    assert data["files"] == {"mask": "mask.nii.gz", "heatmap": "heatmap.nii.gz"}
    assert gzip.decompress((out / "heatmap.nii.gz").read_bytes())[:4] == (348).to_bytes(4, "little")
    refused = subprocess.run(
        [*base, "--model", "no-such-model", "--out", str(tmp_path / "other")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "no-such-model" in refused.stderr
