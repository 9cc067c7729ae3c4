import numpy as np

from phantoms.chest import LUNG, NODULE, chest_ct, chest_radiograph


def test_chest_ct_is_deterministic_and_labelled():
    a = chest_ct((32, 64, 64), seed=3, n_nodules=2)
    b = chest_ct((32, 64, 64), seed=3, n_nodules=2)
    assert np.array_equal(a.hu, b.hu) and np.array_equal(a.labels, b.labels)
    assert a.hu.dtype == np.int16
    lung_hu = a.hu[a.labels == LUNG].mean()
    assert lung_hu < -600
    assert len(a.nodules) == 2
    for n in a.nodules:
        z, y, x = (int(round(c)) for c in n.center_zyx)
        assert a.labels[z, y, x] == NODULE


def test_radiograph_box_covers_nodule():
    xr = chest_radiograph(96, seed=5, nodule=True)
    assert xr.has_nodule and xr.box_yx is not None
    y0, x0, y1, x1 = xr.box_yx
    assert 0 <= y0 < y1 < 96 and 0 <= x0 < x1 < 96
    neg = chest_radiograph(96, seed=5, nodule=False)
    assert not neg.has_nodule and neg.box_yx is None


def test_lung_label_stops_at_the_aorta_drawn_over_it():
    # Without vessels and noise a lung voxel is lung (-850 HU) or a nodule's soft edge (below
    # the nodule's 30 HU): the aorta (160 HU) crosses the medial edge of the left lung, and
    # that crescent is not lung.
    for seed in (0, 1, 2):
        ct = chest_ct((48, 128, 128), seed=seed, noise_hu=0.0, vessels=False, lung_hu=-850.0)
        lung = ct.labels == LUNG
        assert lung.sum() > 10_000
        assert ct.hu[lung].max() <= 30, f"seed {seed}: lung label on denser tissue"
        assert not np.any(lung[ct.hu == 160]), f"seed {seed}: aorta labelled lung"
