"""Segment editor speed on a 300 x 512 x 512 chest CT, whole paths (click -> edit applied to
the label Document), each beside the alternative it was chosen over, in the same run:

- click-to-segment 2D and 3D (tool press -> one undo step) vs SimpleITK's flood fill and
  vs the first release's full-series threshold + ndimage.label (the grower now labels a
  box grown around the click); a refining click at the lung's border and a negative click
  (``RegionGrower.refine``) on the labelled lungs;
- islands 2D (slice shown) and 3D (keep largest of both lungs) vs ndimage.label + bincount;
- grow from seeds: the first preview (gradient + watershed on a strided copy), a later
  update (cached gradient) and the full-resolution accept, vs a full-resolution watershed
  from scratch.

Budgets (issue 16): click and islands <= 0.3 s in 2D, <= 1 s in 3D; grow from seeds first
preview <= 3 s, later updates <= 1 s.

Run: QT_QPA_PLATFORM=offscreen PYTHONPATH=. python -m pytest
     tests/benchmarks/test_bench_segment_tools.py --benchmark-enable --benchmark-only -q
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from phantoms.chest import LUNG, chest_ct
from viewer.labels.document import Document
from viewer.labels.grow import RegionGrower, SeedGrower
from viewer.ui.tools import PlaneEvent, ToolContext, make_tools
from viewer.ui.tools.document_sink import DocumentSink
from viewer.ui.tools.planes import Plane

SHAPE = (300, 512, 512)


@pytest.fixture(scope="module")
def chest():
    """A 150x256x256 phantom doubled along each axis: 300x512x512, 0.68 x 0.68 x 1 mm."""
    ct = chest_ct((150, 256, 256), seed=7)
    hu = ct.hu.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    labels = ct.labels.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    spacing = tuple(s / 2 for s in ct.spacing[::-1])
    lung = np.argwhere(labels[150] == LUNG)
    point = (150, *(int(v) for v in lung[len(lung) // 2]))
    return hu, labels, spacing, point


def _tools(chest, segment_3d: bool):
    hu, _, spacing, _ = chest
    doc = Document(SHAPE, "bench")
    ctx = ToolContext(sink=DocumentSink(doc), hu=hu, spacing_zyx=spacing, label=1)
    ctx.segment_3d = segment_3d
    return doc, ctx, make_tools(ctx)


def _event(point, spacing):
    plane = Plane("axial", SHAPE, spacing)
    return PlaneEvent(plane, point[0], float(point[1]), float(point[2]))


# ---- click to segment -------------------------------------------------------------------------
@pytest.mark.parametrize("dims", ["2D", "3D"])
def test_bench_click_to_segment(benchmark, chest, dims):
    benchmark.group = f"click-to-segment {dims}"
    doc, _, tools = _tools(chest, dims == "3D")
    ev = _event(chest[3], chest[2])
    tools["click_segment"].press(ev)  # the SimpleITK copy of the series is made once

    def click():
        tools["click_segment"].press(ev)
        doc.undo()

    benchmark.pedantic(click, rounds=3, iterations=1)


@pytest.mark.parametrize("dims", ["2D", "3D"])
def test_bench_click_reference_simpleitk_connected_threshold(benchmark, chest, dims):
    """The alternative: SimpleITK's flood fill from the click (the series converted once)."""
    import SimpleITK as sitk

    benchmark.group = f"click-to-segment {dims}"
    hu, _, spacing, point = chest
    lo, hi = RegionGrower(hu, spacing).band(point, 2.5, 0 if dims == "2D" else None)
    image = sitk.GetImageFromArray(hu[point[0]] if dims == "2D" else hu)
    seed = list(point[1:][::-1]) if dims == "2D" else list(point[::-1])

    def reference():
        grown = sitk.ConnectedThreshold(image, seedList=[seed], lower=lo, upper=hi)
        return sitk.GetArrayViewFromImage(grown).astype(bool)

    benchmark.pedantic(reference, rounds=3, iterations=1)


@pytest.mark.parametrize("dims", ["2D", "3D"])
def test_bench_click_reference_full_series_label(benchmark, chest, dims):
    """The first release: threshold the whole series (slice), label every component."""
    benchmark.group = f"click-to-segment {dims}"
    hu, _, spacing, point = chest
    lo, hi = RegionGrower(hu, spacing).band(point, 2.5, 0 if dims == "2D" else None)
    image = hu[point[0]] if dims == "2D" else hu
    seed = tuple(point[1:]) if dims == "2D" else point

    def reference():
        labels, _ = ndimage.label((image >= lo) & (image <= hi))
        return labels == labels[seed]

    benchmark.pedantic(reference, rounds=3, iterations=1)


@pytest.mark.parametrize("positive", [True, False], ids=["border", "negative"])
def test_bench_click_refine_3d(benchmark, chest, lungs_doc, positive):
    """A refining click on the labelled lungs: at the lung's border (a voxel just outside
    it), or a negative click inside it."""
    benchmark.group = "click-to-segment 3D"
    hu, labels, spacing, point = chest
    array = lungs_doc[0].labelmap.array
    z, y, x = point
    if positive:
        row = np.flatnonzero(array[z, y] == 1)
        at = (z, y, int(row.max()) + 1)  # the first voxel past the lung along the row
    else:
        at = point
    grower = RegionGrower(hu, spacing)
    result = benchmark.pedantic(
        grower.refine, args=(at, array, 1, positive), rounds=3, iterations=1
    )
    benchmark.extra_info["voxels"] = int(result.mask.sum())


# ---- islands --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lungs_doc(chest):
    _, labels, spacing, _ = chest
    doc = Document(SHAPE, "bench")
    doc.labelmap.array[labels == LUNG] = 1
    ctx = ToolContext(sink=DocumentSink(doc), hu=chest[0], spacing_zyx=spacing, label=1)
    return doc, ctx, make_tools(ctx)


@pytest.mark.parametrize("dims", ["2D", "3D"])
def test_bench_island_keep_clicked(benchmark, chest, lungs_doc, dims):
    benchmark.group = f"islands {dims}"
    doc, ctx, tools = lungs_doc
    ctx.segment_3d = dims == "3D"
    ctx.island_mode = "keep_selected"
    ev = _event(chest[3], chest[2])

    def click():
        tools["island"].press(ev)
        doc.undo()

    benchmark.pedantic(click, rounds=3, iterations=1)


@pytest.mark.parametrize("dims", ["2D", "3D"])
def test_bench_island_reference_ndimage(benchmark, chest, lungs_doc, dims):
    benchmark.group = f"islands {dims}"
    doc = lungs_doc[0]
    point = chest[3]

    def reference():
        mask = doc.labelmap.array[point[0]] == 1 if dims == "2D" else doc.labelmap.array == 1
        labels, _ = ndimage.label(mask)
        np.bincount(labels.ravel())
        return labels == labels[tuple(point[1:] if dims == "2D" else point)]

    benchmark.pedantic(reference, rounds=3, iterations=1)


# ---- grow from seeds ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strokes(chest):
    """Strokes in one lung, in the mediastinum and the chest wall on three axial slices,
    and a sagittal stroke down the lung: the region spans most of the chest."""
    hu, labels, _, point = chest
    seeds = np.zeros(SHAPE, np.uint8)
    z, y, x = point
    for dz in (-60, 0, 60):
        seeds[z + dz, y - 20 : y + 20, x - 3 : x + 3] = 1
    seeds[z - 80 : z + 80, y, x] = 1
    seeds[z, y, 200:312] = np.where(labels[z, y, 200:312] == LUNG, 0, 2)
    seeds[z, 40:46, 150:360] = 2
    return seeds


def test_bench_seeds_first_preview(benchmark, chest, strokes):
    benchmark.group = "grow from seeds"

    def first():
        return SeedGrower(chest[0], chest[2]).preview(strokes)

    result = benchmark.pedantic(first, rounds=2, iterations=1)
    benchmark.extra_info["region"] = [s.stop - s.start for s in result.region]
    benchmark.extra_info["step"] = list(result.step)


def test_bench_seeds_later_update(benchmark, chest, strokes):
    benchmark.group = "grow from seeds"
    grower = SeedGrower(chest[0], chest[2])
    grower.preview(strokes)
    more = strokes.copy()
    z, y, x = chest[3]
    more[z + 30, y - 10 : y + 10, x] = 1  # one more stroke inside the region

    benchmark.pedantic(grower.preview, args=(more,), rounds=3, iterations=1)


def test_bench_seeds_accept_full_resolution(benchmark, chest, strokes):
    benchmark.group = "grow from seeds"
    grower = SeedGrower(chest[0], chest[2])
    coarse = grower.preview(strokes)
    benchmark.pedantic(grower.refine, args=(strokes, coarse), rounds=1, iterations=1)


def test_bench_seeds_reference_full_resolution_from_scratch(benchmark, chest, strokes):
    """The alternative to a strided preview: every update at full resolution."""
    benchmark.group = "grow from seeds"
    benchmark.pedantic(
        lambda: SeedGrower(chest[0], chest[2]).refine(strokes), rounds=1, iterations=1
    )
