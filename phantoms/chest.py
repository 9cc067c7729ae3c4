"""Deterministic synthetic chest phantoms (numpy only): the demo study and the training data.

A chest CT phantom has body wall, fat, lungs that narrow towards the apex, a mediastinum
with heart and aorta, a spine, ribs, branching pulmonary vessels and a few spherical
nodules. It comes with its ground truth: a label map (1 = lung, 2 = nodule) and the nodule
list. A chest radiograph phantom is a digitally reconstructed radiograph (a line integral
of attenuation through a small CT phantom), with or without a nodule.

Everything is generated from a seed, so every figure in the shipped model cards can be
reproduced offline. Nothing here imports torch, Qt or ``viewer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LUNG, NODULE = 1, 2
LABEL_NAMES = {0: "background", LUNG: "lung", NODULE: "nodule"}


@dataclass(frozen=True)
class Nodule:
    center_zyx: tuple[float, float, float]  # voxel indices
    radius_mm: float

    def box_zyx(self, spacing_xyz: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive (lo, hi) voxel corners of the nodule's bounding box."""
        r = self.radius_mm / np.asarray(spacing_xyz[::-1], dtype=float)
        c = np.asarray(self.center_zyx, dtype=float)
        return c - r, c + r


@dataclass
class ChestCT:
    hu: np.ndarray  # int16 (z, y, x), Hounsfield units
    labels: np.ndarray  # uint8 (z, y, x): 0 background, 1 lung, 2 nodule
    spacing: tuple[float, float, float]  # (x, y, z) mm
    nodules: list[Nodule] = field(default_factory=list)
    seed: int = 0


def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]):
    """Coordinates in mm, centred, broadcastable: z (Z,1,1), y (1,Y,1), x (1,1,X)."""
    nz, ny, nx = shape
    sx, sy, sz = spacing
    z = (np.arange(nz) - (nz - 1) / 2.0)[:, None, None] * sz
    y = (np.arange(ny) - (ny - 1) / 2.0)[None, :, None] * sy
    x = (np.arange(nx) - (nx - 1) / 2.0)[None, None, :] * sx
    return z, y, x


def _segment_distance(p0, p1, z, y, x):
    """Distance (mm) from grid points to the segment p0-p1 (both (z, y, x) in mm)."""
    d = np.asarray(p1, float) - np.asarray(p0, float)
    dd = float(d @ d) or 1e-9
    t = ((z - p0[0]) * d[0] + (y - p0[1]) * d[1] + (x - p0[2]) * d[2]) / dd
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt(
        (z - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (x - p0[2] - t * d[2]) ** 2
    )


def chest_ct(
    shape: tuple[int, int, int] = (64, 128, 128),
    spacing: tuple[float, float, float] | None = None,
    seed: int = 0,
    n_nodules: int | tuple[int, int] = (1, 4),
    nodule_radius_mm: tuple[float, float] = (3.0, 9.0),
    noise_hu: float = 15.0,
    lung_hu: float = -850.0,
    nodule_hu: float = 30.0,
    contrast: float = 1.0,
    vessels: bool = True,
) -> ChestCT:
    """A chest CT phantom of ``shape`` (z, y, x); the field of view is ~350 x 350 x 300 mm.

    ``contrast`` scales every tissue's difference from water (a different "scanner look"),
    ``noise_hu`` is the standard deviation of the added Gaussian noise.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    if spacing is None:
        spacing = (350.0 / nx, 350.0 / ny, 300.0 / nz)
    sx, sy, sz = spacing
    z, y, x = _grid(shape, spacing)
    half_z = (nz - 1) / 2.0 * sz

    # Small per-patient variation of anatomy.
    body_a, body_b = 160.0 * rng.uniform(0.9, 1.05), 115.0 * rng.uniform(0.9, 1.05)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = (x / body_a) ** 2 + (y / body_b) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    inner = np.broadcast_to((x / (body_a - 12)) ** 2 + (y / (body_b - 12)) ** 2 <= 1.0, shape)
    hu[body] = -100.0  # subcutaneous fat
    hu[inner] = 40.0  # muscle / soft tissue

    # Lungs: ellipsoids either side of the mediastinum, narrower at the apex (top, high z).
    lungs = np.zeros(shape, dtype=bool)
    zfrac = np.clip((z + half_z) / (2 * half_z + 1e-9), 0, 1)  # 0 at bottom (feet), 1 at top
    taper = np.sqrt(np.clip(1.0 - zfrac**2.2, 0.0, 1.0)) * 0.85 + 0.15
    for side in (-1, 1):
        cx = side * body_a * rng.uniform(0.42, 0.48)
        ax, ay = body_a * 0.36 * taper, body_b * 0.70 * taper
        cy = rng.uniform(-4.0, 4.0)
        ell = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0
        zext = (z > -half_z * 0.92) & (z < half_z * 0.95)
        lungs |= ell & zext
    hu[lungs] = lung_hu

    # Heart (lower half) and aorta, spine posterior.
    heart = ((x + 10) / 55.0) ** 2 + ((y + 15) / 45.0) ** 2 + (
        (z + half_z * 0.35) / (half_z * 0.45)
    ) ** 2 <= 1.0
    hu[heart & ~lungs] = 45.0
    aorta = np.broadcast_to((x - 12) ** 2 + (y - 35) ** 2 <= 13.0**2, shape)
    hu[aorta] = 160.0
    # The aorta is drawn over the medial edge of the left lung (+x, LPS): that crescent is aorta, not
    # lung. Nodule sites are still drawn from the lungs as first outlined, so each seed keeps
    # its nodules (a site whose margin now touches the aorta is redrawn).
    sites = np.argwhere(lungs[:, ::2, ::2])
    lungs &= ~aorta
    spine_c = (x**2 + (y - body_b * 0.72) ** 2) <= 17.0**2
    spine_c = np.broadcast_to(spine_c, shape)
    vertebra = np.broadcast_to(((np.abs(z) % 30.0) > 3.0), shape)
    hu[spine_c & vertebra] = 650.0
    hu[spine_c & ~vertebra] = 80.0  # discs

    # Ribs: arcs of the body wall, every ~30 mm along z, sloping downwards to the front.
    r_norm = np.sqrt((x / (body_a - 6)) ** 2 + (y / (body_b - 6)) ** 2)
    ring = np.abs(r_norm - 1.0) < (5.0 / body_b)
    rib_phase = (z + 0.25 * y) % 30.0
    ribs = ring & (rib_phase < 7.0) & (y < body_b * 0.6)
    hu[np.broadcast_to(ribs, shape) & body] = 700.0

    # Pulmonary vessels: branching tubes from each hilum, clipped to the lungs.
    if vessels:
        vmask = np.zeros(shape, dtype=bool)
        for side in (-1, 1):
            hilum = np.array([rng.uniform(-20, 20), rng.uniform(-10, 10), side * body_a * 0.22])
            stack = [(hilum, rng.normal(size=3), 4.0, 0)]
            while stack:
                start, dirv, radius, depth = stack.pop()
                dirv = dirv / (np.linalg.norm(dirv) + 1e-9)
                dirv[2] = side * abs(dirv[2]) + side * 0.6
                dirv = dirv / np.linalg.norm(dirv)
                length = rng.uniform(25, 55) * (0.8**depth)
                end = start + dirv * length
                lo = np.minimum(start, end) - radius - 1
                hi = np.maximum(start, end) + radius + 1
                iz = _index_range(lo[0], hi[0], sz, nz)
                iy = _index_range(lo[1], hi[1], sy, ny)
                ix = _index_range(lo[2], hi[2], sx, nx)
                if iz and iy and ix:
                    sub = _segment_distance(
                        start, end, z[iz[0] : iz[1]], y[:, iy[0] : iy[1]], x[:, :, ix[0] : ix[1]]
                    )
                    vmask[iz[0] : iz[1], iy[0] : iy[1], ix[0] : ix[1]] |= sub <= radius
                if depth < 3 and radius > 1.2:
                    for _ in range(2):
                        stack.append(
                            (end, dirv + rng.normal(scale=0.7, size=3), radius * 0.7, depth + 1)
                        )
        hu[vmask & lungs] = 40.0

    # Nodules: spheres wholly inside a lung, away from each other.
    labels = lungs.astype(np.uint8) * LUNG
    count = (
        n_nodules
        if isinstance(n_nodules, int)
        else int(rng.integers(n_nodules[0], n_nodules[1] + 1))
    )
    nodules: list[Nodule] = []
    lung_idx = sites
    attempts = 0
    while len(nodules) < count and attempts < 500 and len(lung_idx):
        attempts += 1
        r = float(rng.uniform(*nodule_radius_mm))
        cz, cy2, cx2 = lung_idx[rng.integers(len(lung_idx))]
        c = np.array([cz, cy2 * 2, cx2 * 2], dtype=float) + rng.uniform(-0.5, 0.5, 3)
        c_mm = (c - (np.array(shape) - 1) / 2.0) * np.array([sz, sy, sx])
        rz, ry, rx = r / sz, r / sy, r / sx
        lo = np.floor(c - [rz, ry, rx] - 1).astype(int)
        hi = np.ceil(c + [rz, ry, rx] + 2).astype(int)
        if np.any(lo < 0) or np.any(hi > np.array(shape)):
            continue
        sub_l = lungs[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        d = np.sqrt(
            (z[lo[0] : hi[0]] - c_mm[0]) ** 2
            + (y[:, lo[1] : hi[1]] - c_mm[1]) ** 2
            + (x[:, :, lo[2] : hi[2]] - c_mm[2]) ** 2
        )
        ball = d <= r
        shell = d <= r + 4.0
        if not sub_l[shell].all():
            continue  # must sit inside the lung with a margin
        if any(
            np.linalg.norm((np.array(n.center_zyx) - c) * [sz, sy, sx]) < r + n.radius_mm + 8
            for n in nodules
        ):
            continue
        sub_hu = hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        # Soft edge: partial-volume blend over ~1 mm.
        w = np.clip((r + 0.5 - d) / 1.0, 0.0, 1.0)
        sub_hu[:] = sub_hu * (1 - w) + nodule_hu * w
        labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][ball] = NODULE
        labels[tuple(int(round(v)) for v in c)] = (
            NODULE  # a nodule smaller than a voxel still shows
        )
        nodules.append(Nodule(center_zyx=(float(c[0]), float(c[1]), float(c[2])), radius_mm=r))

    if contrast != 1.0:
        hu = np.where(hu > -1000.0, hu * contrast, hu)
    if noise_hu > 0:
        hu += rng.normal(0.0, noise_hu, size=shape).astype(np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return ChestCT(
        hu=hu,
        labels=labels,
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        nodules=nodules,
        seed=seed,
    )


def _index_range(lo_mm: float, hi_mm: float, step: float, n: int) -> tuple[int, int] | None:
    centre = (n - 1) / 2.0
    a = max(int(np.floor(lo_mm / step + centre)), 0)
    b = min(int(np.ceil(hi_mm / step + centre)) + 1, n)
    return (a, b) if b > a else None


@dataclass
class ChestXR:
    image: np.ndarray  # float32 (y, x) in [0, 1], bright = dense (as displayed)
    has_nodule: bool
    box_yx: tuple[float, float, float, float] | None  # (y0, x0, y1, x1) pixels, or None
    spacing: tuple[float, float] = (1.0, 1.0)  # (x, y) mm per pixel


def chest_radiograph(
    size: int = 128, seed: int = 0, nodule: bool | None = None, noise: float = 0.01
) -> ChestXR:
    """A PA chest radiograph (DRR of a CT phantom), ``size`` x ``size`` pixels."""
    rng = np.random.default_rng(seed + 1_000_003)
    if nodule is None:
        nodule = bool(rng.integers(0, 2))
    ct = chest_ct(
        shape=(size, size // 2, size),
        spacing=(350.0 / size, 350.0 / (size // 2), 350.0 / size),
        seed=seed,
        n_nodules=1 if nodule else 0,
        nodule_radius_mm=(9.0, 16.0),
        noise_hu=0.0,
        nodule_hu=120.0,
    )
    mu = np.clip((ct.hu.astype(np.float32) + 1000.0) / 1000.0, 0.0, None)  # relative to water
    path = mu.sum(axis=1) * ct.spacing[1] / 10.0  # line integral along y (AP), in cm-water
    img = 1.0 - np.exp(-0.09 * path)
    img = img[::-1]  # head at the top of the image
    img = (img - img.min()) / (np.ptp(img) + 1e-9)
    img = img + rng.normal(0.0, noise, size=img.shape)
    img = np.clip(img, 0, 1).astype(np.float32)
    box = None
    if nodule and ct.nodules:
        n = ct.nodules[0]
        lo, hi = n.box_zyx(ct.spacing)
        # image rows = flipped z, columns = x
        y0, y1 = size - 1 - hi[0], size - 1 - lo[0]
        box = (float(y0), float(lo[2]), float(y1), float(hi[2]))
    return ChestXR(
        image=img,
        has_nodule=bool(nodule and ct.nodules),
        box_yx=box,
        spacing=(ct.spacing[0], ct.spacing[2]),
    )
