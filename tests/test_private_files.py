"""User data at rest is the user's alone: data and settings folders 0700, their files 0600,
whatever the umask, also when an older install left them wider."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def wide_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_user_data_folder_is_created_0700_and_tightened(tmp_path, monkeypatch, wide_umask):
    from radlens_core.paths import user_data_dir, user_models_dir

    data = tmp_path / "new" / "radlens"
    monkeypatch.setenv("RADLENS_DATA_DIR", str(data))
    assert user_data_dir() == data and _mode(data) == 0o700
    assert _mode(user_models_dir()) == 0o700
    os.chmod(data, 0o755)  # an older install
    user_data_dir()
    assert _mode(data) == 0o700


def test_default_user_data_folder_is_0700(tmp_path, monkeypatch, wide_umask):
    import platformdirs

    from radlens_core.paths import user_data_dir

    monkeypatch.delenv("RADLENS_DATA_DIR")
    target = tmp_path / "share" / "RadLens"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *a, **k: str(target))
    assert user_data_dir() == target and _mode(target) == 0o700


def test_atomic_writes_are_0600_whatever_the_umask(tmp_path, wide_umask):
    import numpy as np

    from radlens_core.files import (
        atomic_copy,
        atomic_write_bytes,
        atomic_write_json,
        atomic_write_npz,
        atomic_write_text,
    )

    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_text(tmp_path / "b.txt", "x")
    atomic_write_json(tmp_path / "c.json", {"x": 1})
    atomic_write_npz(tmp_path / "d.npz", {"x": np.zeros(2)})
    atomic_copy(tmp_path / "a.bin", tmp_path / "e.bin")
    (tmp_path / "f.txt").write_text("old")
    os.chmod(tmp_path / "f.txt", 0o644)
    atomic_write_text(tmp_path / "f.txt", "replaced")  # a replaced file is private too
    assert {p.name: _mode(p) for p in tmp_path.iterdir()} == dict.fromkeys(
        ["a.bin", "b.txt", "c.json", "d.npz", "e.bin", "f.txt"], 0o600
    )


def test_deid_salt_is_0600(_isolated_user_data, wide_umask):
    from viewer.labels.deid import installation_salt

    installation_salt()
    assert _mode(_isolated_user_data / "deid_salt") == 0o600


def test_settings_file_with_recent_folders_is_0600(_isolated_user_data, wide_umask, qapp):
    from viewer.ui.settings import Settings

    os.chmod(_isolated_user_data, 0o755)
    s = Settings()
    assert _mode(_isolated_user_data) == 0o700
    s.add_recent("/data/Smith^John/CT")
    ini = _isolated_user_data / "settings.ini"
    assert ini.is_file() and _mode(ini) == 0o600
    os.chmod(ini, 0o644)  # as an older version left it
    s.set("view/layout", "2x2")
    assert _mode(ini) == 0o600
    s.clear_recent()
    assert _mode(ini) == 0o600 and Settings().recent_folders() == []


def test_settings_in_the_user_config_folder_are_private(tmp_path, monkeypatch, wide_umask, qapp):
    from PySide6.QtCore import QSettings

    from viewer.ui.settings import Settings

    monkeypatch.delenv("RADLENS_DATA_DIR")
    config = tmp_path / "config"
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(config)
    )  # what XDG_CONFIG_HOME sets, for this process
    try:
        s = Settings()
        s.add_recent(tmp_path / "Doe^Jane")
        assert s.path.is_file() and s.path.is_relative_to(config)
        assert _mode(s.path) == 0o600 and _mode(s.path.parent) == 0o700
    finally:
        QSettings.setPath(
            QSettings.Format.IniFormat,
            QSettings.Scope.UserScope,
            str(Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))),
        )
