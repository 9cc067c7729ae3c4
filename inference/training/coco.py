"""Boxes and categories from a COCO detection file (``coco.json`` of a RadLens 2D export).

COCO ``bbox`` is ``[x, y, width, height]`` in pixels, measured from pixel edges; the loader's
boxes are inclusive voxel *centres* ``(z0, y0, x0, z1, y1, x1)``. The exporter writes
``[x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1]``, so the inverse is
``x0 = x + 0.5`` and ``x1 = x + width - 0.5`` (likewise for y).
"""

from __future__ import annotations

import math
from typing import Any


class CocoError(ValueError):
    """A coco.json that cannot be used; the message names the case and the problem."""


def coco_boxes(
    data: Any, case_id: str
) -> tuple[list[tuple[float, ...]], list[int], dict[int, str]]:
    """(boxes as zyx inclusive voxel corners, their category ids, category id -> name)."""
    where = f"case {case_id}: coco.json"
    if not isinstance(data, dict) or not isinstance(data.get("annotations", []), list):
        raise CocoError(f"{where} is not a COCO object with a list of annotations")
    # A RadLens export records the slice of each image; a plain COCO file is one 2D image.
    slices: dict[Any, float] = {}
    for im in data.get("images", []) or []:
        if isinstance(im, dict) and "id" in im:
            slices[im["id"]] = float(im.get("slice_index", 0) or 0)
    names: dict[int, str] = {}
    for c in data.get("categories", []) or []:
        try:
            names[int(c["id"])] = str(c.get("name", c["id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CocoError(f"{where} has a malformed category {c!r} ({exc})") from exc
    names.pop(0, None)  # 0 is background in a RadLens label map
    boxes: list[tuple[float, ...]] = []
    labels: list[int] = []
    for a in data.get("annotations", []):
        if not isinstance(a, dict) or a.get("status") == "rejected":
            continue
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
            label = int(a.get("category_id", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise CocoError(f"{where} has a malformed annotation {a!r} ({exc})") from exc
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise CocoError(f"{where} has a box with no extent or a non-finite value {a!r}")
        if a.get("image_id") is not None and slices and a["image_id"] not in slices:
            raise CocoError(
                f"{where}: annotation {a.get('id')} names unknown image {a['image_id']}"
            )
        z = slices.get(a.get("image_id"), 0.0)
        boxes.append((z, y + 0.5, x + 0.5, z, y + h - 0.5, x + w - 0.5))
        labels.append(label)
    return boxes, labels, names
