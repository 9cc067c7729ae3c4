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


#: The user's data holds patients' labels and names: readable by the user alone.
PRIVATE_DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0700, also when it already existed
    with wider permissions (an older install); a folder owned by someone else is left as is."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if os.name == "posix":
        st = path.stat()
        if st.st_mode & 0o777 != PRIVATE_DIR_MODE and st.st_uid == os.getuid():
            os.chmod(path, PRIVATE_DIR_MODE)
    return path


def user_data_dir() -> Path:
    """Per-user data folder (label stores, results, user models), created 0700;
    ``RADLENS_DATA_DIR`` overrides it."""
    override = os.environ.get("RADLENS_DATA_DIR")
    if override:
        path = Path(override)
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("RadLens", "RadLens"))
    return private_dir(path)


def shipped_models_dir() -> Path:
    return resources_dir() / "models"


def user_models_dir() -> Path:
    return private_dir(user_data_dir() / "models")
