"""Click-to-segment and grow from seeds on generated volumes, and the Qt-free tools that
apply them to a label Document (one undo step each)."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.labels.document import Document
from viewer.labels.grow import RegionGrower, SeedGrower
from viewer.labels.model import LabelError
from viewer.ui.tools import PlaneEvent, ToolContext, make_tools
from viewer.ui.tools.document_sink import DocumentSink
from viewer.ui.tools.planes import Plane
from viewer.ui.tools.segment import Operation, operation_work

SHAPE = (24, 48, 48)
SPACING = (2.0, 1.0, 1.0)  # (z, y, x) mm


def ball(shape, centre, radius_mm, spacing=SPACING) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    sz, sy, sx = spacing
    d2 = ((zz - centre[0]) * sz) ** 2 + ((yy - centre[1]) * sy) ** 2 + ((xx - centre[2]) * sx) ** 2
    return d2 <= radius_mm**2


def dice(a, b) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture
def scene():
    """Two bright spheres (100) apart in a dark background (0), with noise."""
    rng = np.random.default_rng(0)
    a = ball(SHAPE, (12, 16, 16), 10.0)
    b = ball(SHAPE, (12, 34, 34), 7.0)
    image = np.where(a | b, 100.0, 0.0) + rng.normal(0, 5, SHAPE)
    return image.astype(np.float32), a, b


def test_region_grows_in_3d_over_the_clicked_structure_only(scene):
    image, a, b = scene
    grown = RegionGrower(image).grow((12, 16, 16), tolerance=3.0)
    full = grown.full(SHAPE)
    assert dice(full, a) > 0.97 and not (full & b).any()
    assert grown.lower < 100 < grown.upper


def test_region_grows_in_2d_on_the_slice_shown(scene):
    image, a, _ = scene
    grower = RegionGrower(image)
    axial = grower.grow((12, 16, 16), tolerance=3.0, axis=0).full(SHAPE)
    assert axial[12].sum() > 0 and axial.sum() == axial[12].sum()
    assert dice(axial[12], a[12]) > 0.97
    coronal = grower.grow((12, 16, 16), tolerance=3.0, axis=1).full(SHAPE)
    assert coronal.sum() == coronal[:, 16, :].sum() and dice(coronal[:, 16], a[:, 16]) > 0.95


def test_region_grow_refuses_points_outside_and_silly_tolerances(scene):
    grower = RegionGrower(scene[0])
    with pytest.raises(LabelError, match="outside"):
        grower.grow((99, 0, 0))
    with pytest.raises(LabelError, match="tolerance"):
        grower.grow((1, 1, 1), tolerance=0)


def test_grow_from_two_labels_of_seeds_finds_the_sphere(scene):
    image, a, _ = scene
    seeds = np.zeros(SHAPE, np.uint8)
    seeds[12, 14:19, 12:21] = 1  # a stroke inside the big sphere
    seeds[12, 2, 2:46] = 2  # a stroke in the background
    seeds[3, 40:46, 5] = 2
    grower = SeedGrower(image, SPACING, preview_voxels=20_000)  # force a strided preview
    preview = grower.preview(seeds)
    assert preview.step != (1, 1, 1) and preview.labels == (1, 2)
    region = preview.region
    truth = a[region]
    assert dice(preview.values == 1, truth) > 0.85
    full = grower.refine(seeds, preview)
    assert full.step == (1, 1, 1) and full.region == region
    assert dice(full.values == 1, truth) > 0.95
    assert dice(full.values == 1, truth) >= dice(preview.values == 1, truth)
    # Every stroke keeps its own label.
    assert (full.values[seeds[region] == 1] == 1).all()


def test_one_label_of_seeds_grows_against_the_regions_border(scene):
    image, a, _ = scene
    seeds = np.zeros(SHAPE, np.uint8)
    seeds[12, 16, 8:25] = 1
    result = SeedGrower(image, SPACING).refine(seeds)
    grown = np.zeros(SHAPE, bool)
    grown[result.region] = result.values == 1
    assert dice(grown, a) > 0.9


def test_grow_from_seeds_needs_strokes():
    with pytest.raises(LabelError, match="strokes"):
        SeedGrower(np.zeros(SHAPE), SPACING).preview(np.zeros(SHAPE, np.uint8))


def test_preview_step_coarsens_the_finest_axis_first():
    grower = SeedGrower(np.zeros((10, 100, 100)), (5.0, 1.0, 1.0), preview_voxels=30_000)
    step = grower.step_for((slice(0, 10), slice(0, 100), slice(0, 100)))
    assert step[0] == 1 and step[1] > 1 and step[2] > 1


# ---- the tools on a Document ------------------------------------------------------------------
@pytest.fixture
def tools(scene):
    image, a, b = scene
    doc = Document(SHAPE)
    ctx = ToolContext(sink=DocumentSink(doc), hu=image, spacing_zyx=SPACING, label=1)
    return doc, ctx, make_tools(ctx)


def _event(zyx, shift=False, plane="axial"):
    p = Plane(plane, SHAPE, SPACING)
    r, c, s = p.from_volume(np.asarray(zyx, dtype=float))
    return PlaneEvent(p, int(round(s)), r, c, shift=shift)


def test_click_adds_a_grown_region_and_shift_click_removes_one(tools, scene):
    _, a, b = scene
    doc, ctx, all_tools = tools
    click = all_tools["click_segment"]
    ctx.tolerance = 3.0
    click.press(_event((12, 16, 16)))
    assert dice(doc.labelmap.array[12] == 1, a[12]) > 0.97
    assert (doc.labelmap.array[11] == 0).all()
    ctx.segment_3d = True
    click.press(_event((12, 34, 34)))
    assert dice((doc.labelmap.array == 1)[:, 25:, 25:], b[:, 25:, 25:]) > 0.97
    click.press(_event((12, 16, 16), shift=True))  # removes the 3D region around (12, 16, 16)
    assert not (doc.labelmap.array[:, :25, :25] == 1).any()
    doc.undo()
    assert dice(doc.labelmap.array[12] == 1, a[12] | b[12]) > 0.97
    doc.undo()
    doc.undo()
    assert not doc.labelmap.array.any()


def test_island_click_keeps_the_one_clicked(tools, scene):
    _, a, b = scene
    doc, ctx, all_tools = tools
    doc.labelmap.array[a | b] = 1
    ctx.island_mode = "keep_selected"
    all_tools["island"].press(_event((12, 34, 34)))  # on the slice shown (2D)
    arr = doc.labelmap.array
    assert np.array_equal(arr[12] == 1, b[12])
    assert np.array_equal(np.delete(arr, 12, axis=0) == 1, np.delete(a | b, 12, axis=0))
    doc.undo()
    assert np.array_equal(doc.labelmap.array == 1, a | b)
    ctx.segment_3d = True
    ctx.island_mode = "remove_selected"
    all_tools["island"].press(_event((12, 34, 34)))
    assert np.array_equal(doc.labelmap.array == 1, a)
    doc.undo()
    assert np.array_equal(doc.labelmap.array == 1, a | b)


def test_panel_operations_compute_one_edit_each(tools, scene):
    _, a, b = scene
    doc, ctx, _ = tools
    doc.labelmap.array[a | b] = 1
    edit = operation_work(
        Operation("islands", "keep_largest"), doc.labelmap.array, 1, SPACING, None
    )(lambda: False)
    ctx.sink.apply_mask_edit(edit)
    assert np.array_equal(doc.labelmap.array == 1, a)
    with pytest.raises(LabelError, match="empty"):
        operation_work(Operation("margin", mm=1), doc.labelmap.array, 3, SPACING, None)(
            lambda: False
        )


def test_grown_lung_never_reaches_the_air_outside_the_chest_wall():
    """Strokes in both lungs and background strokes in the mediastinum and the outside air of
    one slice: the lung label may not cross the chest wall into the air of other slices
    (scipy's watershed_ift did, hundreds of voxels)."""
    from phantoms.chest import LUNG, chest_ct

    ct = chest_ct(shape=(64, 192, 192), seed=11, n_nodules=2)
    lab, z = ct.labels, 32
    seeds = np.zeros(lab.shape, np.uint8)
    lung = np.argwhere(lab[z] == LUNG)
    y, x = lung[len(lung) // 4]
    seeds[z, y - 12 : y + 12, x - 1 : x + 2] = 1
    row = np.flatnonzero((lab[z, y] == 0) & (ct.hu[z, y] > -300))
    mx = int(row[np.argmin(np.abs(row - 96))])
    seeds[z, y - 15 : y + 15, mx - 1 : mx + 2] = 4
    seeds[z, 20:24, 60:130] = 4
    cols = np.arange(192)
    other = np.argwhere((lab[z] == LUNG) & ((cols > mx) if x < mx else (cols < mx)))
    oy, ox = other[len(other) // 2]
    seeds[z, oy - 10 : oy + 10, ox - 1 : ox + 2] = 1
    seeds[z + 12, oy - 10 : oy + 10, ox - 1 : ox + 2] = 1
    grower = SeedGrower(ct.hu, ct.spacing[::-1])
    for result in (grower.preview(seeds), grower.refine(seeds)):
        air = ct.hu[result.region] < -950
        assert not ((result.values == 1) & air).any()
        lungs = lab[result.region] == LUNG
        assert dice(result.values == 1, lungs) > 0.9


def test_click_on_a_nodule_does_not_leak_into_the_vessel_touching_it():
    """A 6 mm sphere with a 1.5 mm tube of the same intensity running from it to a big
    block: the click takes the sphere, not the tube and the block."""
    shape = (40, 80, 80)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    sphere = (zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 36
    tube = ((zz - 20) ** 2 + (yy - 20) ** 2 <= 2.25) & (xx >= 20)
    block = np.zeros(shape, bool)
    block[:, 8:33, 60:] = True  # the tube runs into it
    rng = np.random.default_rng(1)
    image = (np.where(sphere | tube | block, 40.0, -850.0) + rng.normal(0, 10, shape)).astype(
        np.float32
    )
    grown = RegionGrower(image, (1.0, 1.0, 1.0)).grow((20, 20, 20), tolerance=3.0).full(shape)
    assert dice(grown, sphere) > 0.9 and not (grown & block).any()
    # Clicked near its edge, the block (thicker than the guard's limit) is taken whole.
    whole = RegionGrower(image, (1.0, 1.0, 1.0)).grow((20, 28, 62), tolerance=3.0).full(shape)
    assert whole[block].mean() > 0.95 and whole[sphere].mean() > 0.95  # noise tails aside
