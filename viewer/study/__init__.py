"""Qt-free and torch-free: what was loaded (folder index, series, volumes, file formats)."""
