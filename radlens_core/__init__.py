"""RadLens core: the numpy-only records and helpers that both ``viewer`` and ``inference`` import.

- ``grid``: the voxel grid (shape, spacing, origin, direction) and every LPS/RAS conversion;
- ``nifti``: the one NIfTI reader and writer (LPS inside, RAS in the file);
- ``results``: the result contract between engine and viewer (typed, frozen records);
- ``paths``: the application's folders (shipped resources, user data, models);
- ``files``: atomic writes with fsync, and hashing;
- ``progress``: the one ``Cancelled`` exception and the progress/cancel callback types;
- ``series``: the one key under which a series' stored data lives.

This package imports neither Qt nor torch nor ``viewer``/``inference`` (import-linter checks it).
"""
