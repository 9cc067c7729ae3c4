"""Fast checks of packaging/: scripts parse, the install is offline, the wheel carries resources."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "packaging"
SCRIPTS = ["build_wheelhouse.sh", "install_offline.sh", "check_offline_install.sh"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_bash_that_parses(name):
    path = PKG / name
    assert os.access(path, os.X_OK), f"{name} is not executable"
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    result = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_offline_install_never_consults_an_index():
    text = (PKG / "install_offline.sh").read_text()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs and all("--no-index" in line for line in installs)


def test_wheelhouse_pins_a_cpu_torch_by_default():
    text = (PKG / "build_wheelhouse.sh").read_text()
    assert "TORCH_VARIANT=${TORCH_VARIANT:-cpu}" in text
    assert "torch==${TORCH_VERSION}+${TORCH_VARIANT}" in text


def test_desktop_entry_has_the_required_keys_and_runs_the_console_script():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # desktop keys are case-sensitive
    parser.read(PKG / "radlens.desktop")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] == "RadLens"
    assert entry["Exec"].split()[0] == "radlens"
    assert 'radlens = "viewer.cli:main"' in (ROOT / "pyproject.toml").read_text()
    assert entry["Categories"].endswith(";")


def test_pyinstaller_spec_compiles_and_bundles_resources():
    source = (PKG / "radlens.spec").read_text()
    compile(source, "radlens.spec", "exec")
    assert '"resources"' in source and "viewer" in source and "__main__.py" in source


def _resource_patterns() -> list[str]:
    """package_data patterns for radlens_resources, read from setup.py without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            return list(ast.literal_eval(node.value)["radlens_resources"])
    raise AssertionError("setup.py has no package_data for radlens_resources")


def test_every_shipped_model_file_matches_a_package_data_pattern():
    patterns = _resource_patterns()
    models = ROOT / "resources" / "models"
    files = [
        p.relative_to(ROOT / "resources").as_posix()
        for p in models.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert files, "resources/models is empty"
    # setuptools' "**/" also matches files at the top level of the package.
    unmatched = [
        f
        for f in files
        if not any(
            fnmatch.fnmatch(f, pat) or fnmatch.fnmatch(f, pat.removeprefix("**/"))
            for pat in patterns
        )
    ]
    assert not unmatched, f"would be left out of the wheel: {unmatched}"
