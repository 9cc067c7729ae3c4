"""Segment editor operations on generated masks with known answers, and their undo."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.labels import edit_ops
from viewer.labels.document import Document
from viewer.labels.mask_edits import apply_label_mask, apply_split
from viewer.labels.model import LabelError

ISO = (1.0, 1.0, 1.0)
ANISO = (3.0, 1.0, 0.5)  # (z, y, x) mm: thick slices, fine columns


def ball(shape, centre, radius_mm, spacing=ISO) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    sz, sy, sx = spacing
    d2 = ((zz - centre[0]) * sz) ** 2 + ((yy - centre[1]) * sy) ** 2 + ((xx - centre[2]) * sx) ** 2
    return d2 <= radius_mm**2


def box(shape, lo, hi) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return m


def extent(mask) -> tuple[tuple[int, int], ...]:
    region = edit_ops.bounding_region(mask)
    assert region is not None
    return tuple((s.start, s.stop) for s in region)


# ---- margin ---------------------------------------------------------------------------------
def test_margin_grows_by_physical_mm_on_anisotropic_voxels():
    shape = (20, 40, 60)
    m = box(shape, (8, 15, 20), (12, 25, 40))
    grown = edit_ops.margin(m, 3.0, ANISO)
    # 3 mm is 1 slice, 3 rows, 6 columns.
    assert extent(grown) == ((7, 13), (12, 28), (14, 46))
    assert grown[m].all()
    # Along the axes through the box's centre the growth is exactly the margin.
    assert grown[10, 20, 14] and not grown[10, 20, 13]
    assert grown[7, 20, 30] and not grown[6, 20, 30]
    # A box corner grows round (Euclidean), not square: the diagonal corner stays out.
    assert not grown[7, 12, 14]


def test_margin_shrinks_by_physical_mm_and_zero_changes_nothing():
    shape = (20, 40, 60)
    m = box(shape, (4, 10, 10), (16, 30, 50))
    shrunk = edit_ops.margin(m, -3.0, ANISO)
    assert extent(shrunk) == ((5, 15), (13, 27), (16, 44))
    assert not (shrunk & ~m).any()
    assert np.array_equal(edit_ops.margin(m, 0.0, ANISO), m)


def test_margin_refuses_unbounded_distances_and_bad_spacing():
    m = box((4, 4, 4), (1, 1, 1), (3, 3, 3))
    with pytest.raises(LabelError, match="margin"):
        edit_ops.margin(m, 1e6, ISO)
    with pytest.raises(LabelError, match="spacing"):
        edit_ops.margin(m, 1.0, (1.0, 0.0, 1.0))


# ---- islands --------------------------------------------------------------------------------
@pytest.fixture
def two_islands():
    shape = (30, 40, 40)
    big = ball(shape, (15, 12, 12), 8.0)
    small = ball(shape, (15, 30, 30), 3.0)
    return big, small


def test_keep_largest_and_remove_small_islands_by_volume(two_islands):
    big, small = two_islands
    both = big | small
    assert np.array_equal(edit_ops.islands(both, "keep_largest", ISO), big)
    small_mm3 = small.sum()  # 1 mm³ voxels
    assert np.array_equal(edit_ops.islands(both, "remove_small", ISO, small_mm3 + 1), big)
    assert np.array_equal(edit_ops.islands(both, "remove_small", ISO, small_mm3), both)
    # Anisotropic voxels: the same voxel count is 8x the volume.
    assert np.array_equal(
        edit_ops.islands(both, "remove_small", (2.0, 2.0, 2.0), small_mm3 * 8), both
    )


def test_keep_or_remove_the_island_clicked(two_islands):
    big, small = two_islands
    both = big | small
    assert np.array_equal(edit_ops.islands(both, "keep_selected", ISO, at_zyx=(15, 30, 30)), small)
    assert np.array_equal(edit_ops.islands(both, "remove_selected", ISO, at_zyx=(15, 30, 30)), big)
    with pytest.raises(LabelError, match="no island"):
        edit_ops.islands(both, "keep_selected", ISO, at_zyx=(0, 0, 0))


def test_split_islands_numbers_them_by_size(two_islands):
    big, small = two_islands
    parts = edit_ops.split_islands(big | small, ISO)
    assert np.array_equal(parts == 1, big) and np.array_equal(parts == 2, small)
    only_big = edit_ops.split_islands(big | small, ISO, min_mm3=small.sum() + 1)
    assert only_big.max() == 1


def test_split_islands_adds_labels_in_one_undo_step(two_islands):
    big, small = two_islands
    doc = Document(big.shape)
    apply_label_mask(doc, 1, big | small, "paint")
    before_classes = doc.label_set
    used = apply_split(doc, 1, edit_ops.split_islands(doc.labelmap.array == 1, ISO))
    assert used[0] == 1 and len(used) == 2 and used[1] not in before_classes
    assert np.array_equal(doc.labelmap.array == used[1], small)
    assert doc.label_set.get(used[1]).name == "lung 2"
    doc.undo()
    assert doc.label_set == before_classes
    assert np.array_equal(doc.labelmap.array == 1, big | small)


# ---- hollow, smoothing, fill holes ----------------------------------------------------------
def test_hollow_inside_outside_and_centred():
    shape = (30, 30, 30)
    m = ball(shape, (15, 15, 15), 10.0)
    inside = edit_ops.hollow(m, 2.0, ISO, "inside")
    outside = edit_ops.hollow(m, 2.0, ISO, "outside")
    medial = edit_ops.hollow(m, 2.0, ISO, "medial")
    assert not (inside & ~m).any() and not (outside & m).any()
    assert not inside[15, 15, 15] and inside[15, 15, 5]
    assert outside[15, 15, 3] and not outside[15, 15, 2]
    assert medial[15, 15, 5] and medial[15, 15, 4] and not medial[15, 15, 15]


def test_opening_removes_a_spur_closing_fills_a_gap_median_drops_a_speck():
    shape = (20, 40, 40)
    m = box(shape, (5, 10, 10), (15, 30, 30))
    spur = m.copy()
    spur[10, 20, 30:36] = True  # one-voxel-thin spur
    opened = edit_ops.smooth(spur, "opening", 3.0, ISO)
    assert not opened[10, 20, 33] and opened[10, 20, 20]
    gap = m.copy()
    gap[:, 19:21, :] = False  # a 2-voxel slit through the box
    closed = edit_ops.smooth(gap, "closing", 5.0, ISO)
    assert closed[10, 20, 20] and closed[10, 19, 20]
    speck = m.copy()
    speck[2, 2, 2] = True
    assert not edit_ops.smooth(speck, "median", 3.0, ISO)[2, 2, 2]
    gauss = edit_ops.smooth(speck, "gaussian", 3.0, ISO)
    assert not gauss[2, 2, 2] and gauss[10, 20, 20]


def test_smoothing_kernel_below_a_voxel_is_refused():
    with pytest.raises(LabelError, match="smaller than a voxel"):
        edit_ops.smooth(np.ones((4, 4, 4), bool), "median", 1.0, (3.0, 3.0, 3.0))


def test_fill_holes_in_3d_and_per_slice():
    shape = (20, 30, 30)
    solid = ball(shape, (10, 15, 15), 8.0)
    shell = solid & ~ball(shape, (10, 15, 15), 5.0)
    assert np.array_equal(edit_ops.fill_holes(shell), solid)
    # A tube along z is open at both ends: no 3D hole, but a hole on every axial slice.
    ring = box(shape, (2, 5, 5), (18, 25, 25)) & ~box(shape, (0, 10, 10), (20, 20, 20))
    assert np.array_equal(edit_ops.fill_holes(ring), ring)
    filled = edit_ops.fill_holes(ring, axis=0)
    assert np.array_equal(filled, box(shape, (2, 5, 5), (18, 25, 25)))
    # Per coronal slice the tube's walls are two bars: nothing to fill.
    assert np.array_equal(edit_ops.fill_holes(ring, axis=1), ring)


# ---- logical operators ----------------------------------------------------------------------
def test_logical_operators_and_invert_within_the_body():
    shape = (10, 20, 20)
    a = box(shape, (2, 2, 2), (8, 12, 12))
    b = box(shape, (2, 8, 8), (8, 18, 18))
    assert edit_ops.combine(a, b, "union").sum() == a.sum() + b.sum() - (a & b).sum()
    assert np.array_equal(edit_ops.combine(a, b, "subtract"), a & ~b)
    assert np.array_equal(edit_ops.combine(a, b, "intersect"), a & b)
    image = np.full(shape, -1000, np.int16)
    body = box(shape, (0, 1, 1), (10, 19, 19))
    image[body] = 40
    image[box(shape, (3, 5, 5), (7, 9, 9))] = -850  # an air-filled organ inside
    found = edit_ops.body_mask(image)
    assert np.array_equal(found, body)
    inverted = edit_ops.combine(a, None, "invert", within=found)  # type: ignore[arg-type]
    assert np.array_equal(inverted, body & ~a)


# ---- writing into the document ---------------------------------------------------------------
def test_apply_label_mask_is_one_undo_step_and_protects_other_labels():
    shape = (10, 20, 20)
    doc = Document(shape)
    apply_label_mask(doc, 2, box(shape, (0, 0, 0), (10, 5, 20)), "paint other")
    apply_label_mask(doc, 1, box(shape, (2, 2, 2), (8, 8, 8)), "paint")
    before = doc.labelmap.array.copy()
    grown = edit_ops.margin(doc.labelmap.array == 1, 2.0, ISO)
    edit = apply_label_mask(doc, 1, grown, "margin")
    assert edit.description == "margin" and len(edit.diffs) > 0
    arr = doc.labelmap.array
    assert (arr[:, :5, :] == 2).all()  # the other label kept its voxels
    assert np.array_equal(arr == 1, grown & ~(before == 2))
    doc.undo()
    assert np.array_equal(doc.labelmap.array, before)
    doc.redo()
    assert np.array_equal(doc.labelmap.array == 1, grown & ~(before == 2))


def test_unchanged_result_records_no_undo_step():
    doc = Document((4, 4, 4))
    m = box((4, 4, 4), (1, 1, 1), (3, 3, 3))
    apply_label_mask(doc, 1, m, "paint")
    n = len(doc._undo)
    assert apply_label_mask(doc, 1, m, "again").empty
    assert len(doc._undo) == n
