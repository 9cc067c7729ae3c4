"""Where shipped resources and the user's folders live (never downloads anything)."""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    """The shipped resources folder: the repository's ``resources/`` or the installed package."""
    repo = Path(__file__).resolve().parents[1] / "resources"
    if repo.is_dir():
        return repo
    import radlens_resources  # installed wheel layout

    return Path(radlens_resources.__file__).resolve().parent


def user_data_dir() -> Path:
    """Per-user data folder (label stores, results, user models); ``RADLENS_DATA_DIR``
    overrides it."""
    override = os.environ.get("RADLENS_DATA_DIR")
    if override:
        path = Path(override)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("RadLens", "RadLens"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shipped_models_dir() -> Path:
    return resources_dir() / "models"


def user_models_dir() -> Path:
    path = user_data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
