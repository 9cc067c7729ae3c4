"""Click-to-segment refining a label (``RegionGrower.refine``) and the box-grown connected
component under it (``edit_ops.component_at``), on generated volumes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from viewer.labels.edit_ops import bounding_region, component_at
from viewer.labels.model import LabelError
from viewer.labels.region_grow import RegionGrower

ISO = (1.0, 1.0, 1.0)


def grid(shape):
    return np.ogrid[: shape[0], : shape[1], : shape[2]]


def dice(a, b) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


# ---- the connected component on a growing box -------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_component_at_equals_labelling_the_whole_array(seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((30, 50, 60)) > 0.35)
    labels, _ = ndimage.label(mask)
    at = tuple(int(v) for v in np.argwhere(mask)[len(np.argwhere(mask)) // 2])
    expected = labels == labels[at]
    region, sub = component_at(lambda box: mask[box], at, mask.shape, start=(2, 3, 3))
    got = np.zeros(mask.shape, bool)
    got[region] = sub
    assert np.array_equal(got, expected)
    assert region == bounding_region(expected)


def test_component_at_reaches_the_array_edges_and_refuses_an_empty_seed():
    mask = np.zeros((10, 40, 40), bool)
    mask[:, 20, :] = True  # a sheet spanning the array
    region, sub = component_at(lambda box: mask[box], (5, 20, 20), mask.shape, start=(1, 1, 1))
    assert region == (slice(0, 10), slice(20, 21), slice(0, 40)) and sub.all()
    with pytest.raises(LabelError):
        component_at(lambda box: mask[box], (5, 0, 0), mask.shape)


@pytest.mark.parametrize("seed", [3, 4])
def test_bounding_region_is_the_extent_on_every_axis(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((20, 30, 40), bool)
    pts = rng.integers(0, (20, 30, 40), size=(5, 3))
    mask[tuple(pts.T)] = True
    expected = tuple(slice(int(pts[:, a].min()), int(pts[:, a].max()) + 1) for a in range(3))
    assert bounding_region(mask) == expected
    padded = bounding_region(mask, (1, 2, 100))
    assert padded[2] == slice(0, 40)
    assert padded[0] == slice(max(expected[0].start - 1, 0), min(expected[0].stop + 1, 20))
    assert bounding_region(np.zeros((3, 3, 3), bool)) is None


# ---- a positive click at the border ------------------------------------------------------------
@pytest.fixture
def rimmed_nodule():
    """A nodule (100) of radius 8 with a partial-volume rim (60) out to radius 10, in lung
    (-800) with noise; the label holds the core only, as a first click leaves it."""
    shape = (40, 40, 40)
    zz, yy, xx = grid(shape)
    d2 = (zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2
    core, nodule = d2 <= 64, d2 <= 100
    rng = np.random.default_rng(5)
    image = np.where(core, 100.0, np.where(nodule, 60.0, -800.0)) + rng.normal(0, 3, shape)
    labels = np.zeros(shape, np.uint8)
    labels[core] = 1
    return image.astype(np.float32), labels, core, nodule


def test_a_border_click_adds_the_missed_rim_all_round_and_nothing_else(rimmed_nodule):
    image, labels, core, nodule = rimmed_nodule
    grower = RegionGrower(image, ISO)
    click = (20, 20, 29)  # in the rim
    added = grower.refine(click, labels, 1, positive=True).full(image.shape)
    after = core | added
    assert np.array_equal(after, nodule)
    # On the slice shown: the rim of that slice only.
    flat = RegionGrower(image, ISO).refine(click, labels, 1, positive=True, axis=0)
    got = flat.full(image.shape)
    assert got.sum() == got[20].sum()
    assert np.array_equal(core[20] | got[20], nodule[20])


def test_a_click_of_another_tissue_next_to_the_label_grows_a_new_part():
    """A lung (-800) labelled; a vessel (40) inside it is clicked: the vessel is added
    whole, none of the lung's border with the chest wall."""
    shape = (30, 60, 60)
    zz, yy, xx = grid(shape)
    lung = (yy >= 10) & (yy < 50) & (xx >= 10) & (xx < 50) & (zz >= 0)
    vessel = ((yy - 30) ** 2 + (xx - 30) ** 2 <= 4) & (zz >= 0)
    rng = np.random.default_rng(6)
    image = np.where(vessel, 40.0, np.where(lung, -800.0, 40.0)) + rng.normal(0, 2, shape)
    # the vessel runs into the chest wall only through the slab's ends: not at all
    labels = np.where(lung & ~vessel, 1, 0).astype(np.uint8)
    grower = RegionGrower(image.astype(np.float32), ISO)
    added = grower.refine((15, 30, 30), labels, 1, positive=True).full(shape)
    assert np.array_equal(added, vessel)


def test_a_click_where_a_vessel_enters_the_label_from_the_wall_adds_only_its_part_inside():
    """A lung (-800) labelled but for a vessel (40) that enters it from the chest wall (40):
    a positive click on the vessel inside the lung adds the vessel up to the lung's outline,
    none of the chest wall it runs on into (a phantom's click took 95,000 voxels of body
    into a 70,000-voxel lung)."""
    shape = (20, 60, 60)
    zz, yy, xx = grid(shape)
    lung = (yy >= 10) & (yy < 50) & (xx >= 10) & (xx < 50) & (zz >= 0)
    vessel = ((yy - 30) ** 2 + (zz - 10) ** 2 <= 2) & (xx < 30)
    rng = np.random.default_rng(8)
    image = np.where(lung & ~vessel, -800.0, 40.0) + rng.normal(0, 2, shape)
    labels = np.where(lung & ~vessel, 1, 0).astype(np.uint8)
    grower = RegionGrower(image.astype(np.float32), ISO)
    # clicked where it enters: on the wall's rim, where a vessel is not told from the wall
    added = grower.refine((10, 30, 11), labels, 1, positive=True).full(shape)
    inside = vessel & lung
    assert added[10, 30, 11] and not (added & ~lung).any()  # no chest wall
    assert (added & inside).sum() >= 0.9 * inside.sum()  # the vessel inside, nearly all


# ---- a negative click ------------------------------------------------------------------------
def test_a_negative_click_carves_the_thick_body_a_thin_part_leaked_into():
    """A labelled tube (radius 2) leaked into a round body (radius 12, same intensity: the
    aorta) through its end: a negative click in the body removes it, the tube stays."""
    shape = (40, 40, 90)
    zz, yy, xx = grid(shape)
    tube = ((zz - 20) ** 2 + (yy - 20) ** 2 <= 4) & (xx < 60)
    body = (zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 70) ** 2 <= 144
    rng = np.random.default_rng(7)
    image = np.where(tube | body, 40.0, -800.0) + rng.normal(0, 2, shape)
    labels = np.where(tube | body, 1, 0).astype(np.uint8)
    removed = (
        RegionGrower(image.astype(np.float32), ISO)
        .refine((20, 20, 70), labels, 1, positive=False)
        .full(shape)
    )
    assert removed[body].mean() > 0.97
    assert not removed[tube & (xx < 50)].any()


def test_a_negative_click_spares_what_is_nearer_an_earlier_positive_click():
    """One uniform tube, clicked in at one end, then out at the other: the half nearer the
    positive click stays (geodesically: the tube is bent)."""
    shape = (20, 60, 60)
    zz, yy, xx = grid(shape)
    arm1 = ((zz - 10) ** 2 + (yy - 10) ** 2 <= 9) & (xx >= 10) & (xx <= 50)
    arm2 = ((zz - 10) ** 2 + (xx - 50) ** 2 <= 9) & (yy >= 10) & (yy <= 50)
    tube = arm1 | arm2  # an L: 40 + 40 voxels long
    rng = np.random.default_rng(8)
    image = (np.where(tube, 40.0, -800.0) + rng.normal(0, 2, shape)).astype(np.float32)
    grower = RegionGrower(image, ISO)
    labels = np.zeros(shape, np.uint8)
    grown = grower.refine((10, 10, 12), labels, 1, positive=True)  # remembered
    labels[grown.region][grown.mask] = 1
    assert dice(labels == 1, tube) > 0.95
    removed = grower.refine((10, 48, 50), labels, 1, positive=False).full(shape)
    assert removed[(10, 48, 50)] and removed[(10, 30, 50)]
    assert not removed[arm1 & (xx <= 40)].any()
    # Without the positive click to spare, the same click removes the whole tube.
    fresh = RegionGrower(image, ISO).refine((10, 48, 50), labels, 1, positive=False)
    assert fresh.full(shape)[tube].mean() > 0.97


def test_a_negative_click_on_a_border_voxel_trims_the_border_as_far_out(rimmed_nodule):
    """The label took the rim (60) and a shell of lung partial volume (-300) beyond it: a
    negative click on the shell removes the shell all round, the rim stays."""
    image, _, _, nodule = rimmed_nodule
    zz, yy, xx = grid(image.shape)
    shell = ((zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 144) & ~nodule
    image = np.where(shell, -300.0, image).astype(np.float32)
    labels = (nodule | shell).astype(np.uint8)
    removed = RegionGrower(image, ISO).refine((20, 20, 31), labels, 1, positive=False)
    assert np.array_equal(removed.full(image.shape), shell)


def test_a_negative_click_off_the_label_removes_nothing(rimmed_nodule):
    image, labels, _, _ = rimmed_nodule
    removed = RegionGrower(image, ISO).refine((2, 2, 2), labels, 1, positive=False)
    assert not removed.full(image.shape).any()
    with pytest.raises(LabelError):
        RegionGrower(image, ISO).refine((2, 2, 2), labels[:-1], 1)


# ---- a tube ------------------------------------------------------------------------------------
def test_a_click_on_a_vessel_follows_it_not_the_wall_it_runs_into():
    """A vessel (radius 2) crossing lung (-800) from a thick wall (40) to another: the click
    takes the vessel (and the wall's rim where it meets it), not the walls."""
    shape = (30, 40, 90)
    zz, yy, xx = grid(shape)
    wall = np.broadcast_to((xx < 15) | (xx >= 75), shape)
    vessel = ((zz - 15) ** 2 + (yy - 20) ** 2 <= 4) & (xx >= 15) & (xx < 75)
    rng = np.random.default_rng(9)
    image = (np.where(wall | vessel, 40.0, -800.0) + rng.normal(0, 2, shape)).astype(np.float32)
    grown = RegionGrower(image, ISO).grow((15, 20, 45)).full(shape)
    assert grown[vessel & (xx >= 20) & (xx < 70)].all()
    assert not grown[wall & ((xx < 10) | (xx >= 80))].any()  # the walls' bulk
    assert grown.sum() < 1.5 * vessel.sum()
    # In 2D (the slice along the vessel) the same holds.
    flat = RegionGrower(image, ISO).grow((15, 20, 45), axis=0).full(shape)
    assert flat[15][vessel[15] & (xx[0] >= 20) & (xx[0] < 70)].all()
    assert not flat[15][wall[15] & ((xx[0] < 10) | (xx[0] >= 80))].any()
