"""Drawing particle geometries and placing them on the field of view (all in nm).

Placement honours the overlap rule of :class:`~antema_scale.synth.config.OverlapSpec`:
a particle is either put against an already placed *partner* at a drawn linear overlap
depth ``1 - d / (r1 + r2)`` (``d`` centre distance, ``r`` equivalent radii), or put at a
free spot where its bounding circle clears every other particle by at least one pixel.
Whether particles really overlap is decided afterwards from the truth masks
(:mod:`antema_scale.synth.truth`), never from this plan.

The scene helpers (:func:`pair_specs`, :func:`chain_specs`, :func:`cluster_specs`) build
exact configurations such as "two 5 nm discs at 25 % overlap" for separation benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from antema_scale.synth.config import SynthConfig
from antema_scale.synth.shapes import ParticleSpec

#: Lattice spacings (nm) of common fcc metals used for fringes: Au/Ag {111}, {200}, {220}.
LATTICE_SPACINGS_NM: tuple[float, ...] = (0.235, 0.204, 0.144)

_MAX_PARTICLES = 50_000
_FREE_TRIES = 48
_PARTNER_TRIES = 24


def lognormal_diameters(
    rng: np.random.Generator, n: int, mean_nm: float, spread: float
) -> np.ndarray:
    """Draw ``n`` diameters (nm) from a lognormal with the given mean and relative spread."""
    sigma2 = np.log1p(spread**2)
    mu = np.log(mean_nm) - sigma2 / 2.0
    return rng.lognormal(mu, np.sqrt(sigma2), size=n)


def draw_particle_specs(
    config: SynthConfig, rng: np.random.Generator, n: int
) -> list[ParticleSpec]:
    """Draw ``n`` particle geometries (centres at 0) from the configuration's distributions.

    Parameters
    ----------
    config : SynthConfig
        Shape mix, size distribution (nm), aspect range, irregularity, thickness.
    rng : numpy.random.Generator
        Source of randomness.
    n : int
        Number of particles.

    Returns
    -------
    list of ParticleSpec
        Geometries with ``center_*_nm = 0``; placement sets the centres.
    """
    names = sorted(config.shapes)
    weights = np.array([config.shapes[s] for s in names], dtype=float)
    kinds = rng.choice(len(names), size=n, p=weights / weights.sum())
    diameters = lognormal_diameters(rng, n, config.diameter_mean_nm, config.diameter_spread)
    aspects = rng.uniform(*config.aspect_range, size=n)
    angles = rng.uniform(0.0, np.pi, size=n)
    profile = np.clip(config.profile_exponent * rng.uniform(0.8, 1.2, size=n), 0.05, 1.0)
    specs: list[ParticleSpec] = []
    for i in range(n):
        shape = names[kinds[i]]
        radius = diameters[i] / 2.0
        aspect = 1.0
        harmonics = np.zeros((0, 3))
        thickness = diameters[i] * config.thickness_ratio
        if shape == "ellipsoid":
            aspect = aspects[i]
            thickness = diameters[i] / aspect * config.thickness_ratio
        elif shape == "rod":
            aspect = 2.0 * aspects[i] + 1.0
            radius = diameters[i] * aspect / 4.0
            thickness = 2.0 * radius / aspect * config.thickness_ratio
        elif shape == "prism":
            radius = diameters[i] * 0.6
            thickness = max(diameters[i] * 0.25, 1.0) * config.thickness_ratio
        elif shape == "cube":
            radius = diameters[i] * 0.45
            thickness = 2.0 * radius * config.thickness_ratio
        elif shape == "irregular":
            orders = np.arange(2, 6)
            amplitudes = config.irregularity * rng.uniform(0.2, 1.0, size=4) / np.sqrt(orders - 1)
            phases = rng.uniform(0.0, 2.0 * np.pi, size=4)
            harmonics = np.column_stack([orders, amplitudes, phases])
        specs.append(
            ParticleSpec(
                shape=shape,
                center_y_nm=0.0,
                center_x_nm=0.0,
                radius_nm=float(radius),
                aspect=float(aspect),
                angle_rad=float(angles[i]),
                thickness_nm=float(thickness),
                profile_exponent=float(profile[i]),
                harmonics=harmonics,
                squareness=float(rng.uniform(4.0, 10.0)),
            )
        )
    return specs


def _count_for_area_fraction(config: SynthConfig, rng: np.random.Generator) -> int:
    """Number of particles whose expected equivalent area covers ``area_fraction``."""
    if config.n_particles is not None:
        return int(config.n_particles)
    rows, cols = config.shape
    field_nm2 = rows * cols * config.pixel_size_nm**2
    probe = draw_particle_specs(config, np.random.default_rng(rng.integers(2**63)), 256)
    mean_area = float(np.mean([np.pi * s.equivalent_radius_nm**2 for s in probe]))
    wanted = round(config.area_fraction * field_nm2 / mean_area)
    return int(min(max(wanted, 1 if config.area_fraction > 0 else 0), _MAX_PARTICLES))


class _Placed:
    """Placed centres and radii (nm), with a uniform grid for neighbour look-ups.

    ``cell_nm`` must be at least the largest distance at which two particles can still
    interact (twice the largest bounding radius plus a pixel), so a candidate's possible
    conflicts all lie in the 3 x 3 cells around it.
    """

    def __init__(self, capacity: int, cell_nm: float) -> None:
        self.y = np.empty(capacity)
        self.x = np.empty(capacity)
        self.r_bound = np.empty(capacity)
        self.r_eq = np.empty(capacity)
        self.n = 0
        self.cell_nm = cell_nm
        self.grid: dict[tuple[int, int], list[int]] = {}

    def _key(self, y: float, x: float) -> tuple[int, int]:
        return int(np.floor(y / self.cell_nm)), int(np.floor(x / self.cell_nm))

    def add(self, y: float, x: float, r_bound: float, r_eq: float) -> None:
        self.y[self.n], self.x[self.n] = y, x
        self.r_bound[self.n], self.r_eq[self.n] = r_bound, r_eq
        self.grid.setdefault(self._key(y, x), []).append(self.n)
        self.n += 1

    def neighbours(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Indices of placed particles in the 3 x 3 cells around any of the candidates."""
        keys = {self._key(y, x) for y, x in zip(ys, xs, strict=True)}
        cells = {(ky + dy, kx + dx) for ky, kx in keys for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
        found = [i for cell in cells for i in self.grid.get(cell, ())]
        return np.array(sorted(found), dtype=np.int64)

    def distances(self, ys: np.ndarray, xs: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Distances (candidates x ``idx``), nm."""
        return np.hypot(ys[:, None] - self.y[None, idx], xs[:, None] - self.x[None, idx])


def _inside_field(
    ys: np.ndarray,
    xs: np.ndarray,
    r_bound: float,
    extent_nm: tuple[float, float],
    margin_nm: float,
    border_particles: bool,
) -> np.ndarray:
    """Which candidate centres keep the particle acceptable w.r.t. the image border."""
    if border_particles:
        return (
            (ys > -0.5 * r_bound)
            & (ys < extent_nm[0] + 0.5 * r_bound)
            & (xs > -0.5 * r_bound)
            & (xs < extent_nm[1] + 0.5 * r_bound)
        )
    lo = r_bound + margin_nm
    return (ys > lo) & (ys < extent_nm[0] - lo) & (xs > lo) & (xs < extent_nm[1] - lo)


def _raft_sites(
    config: SynthConfig, rng: np.random.Generator, n: int, extent_nm: tuple[float, float]
) -> np.ndarray:
    """Hexagonal lattice sites (nm) inside blob-shaped domains, best-first, for rafts."""
    spacing = config.diameter_mean_nm * (
        1.0 + 1.5 * config.diameter_spread + rng.uniform(0.04, 0.25)
    )
    theta = rng.uniform(0.0, np.pi / 3.0)
    reach = np.hypot(*extent_nm)
    n_a = int(reach / spacing) + 2
    n_b = int(reach / (spacing * np.sqrt(3.0) / 2.0)) + 2
    i, j = np.meshgrid(np.arange(-n_a, n_a + 1), np.arange(-n_b, n_b + 1), indexing="ij")
    a = (i + 0.5 * (j % 2)) * spacing
    b = j * spacing * np.sqrt(3.0) / 2.0
    ys = extent_nm[0] / 2.0 + a * np.sin(theta) + b * np.cos(theta)
    xs = extent_nm[1] / 2.0 + a * np.cos(theta) - b * np.sin(theta)
    keep = (ys > 0) & (ys < extent_nm[0]) & (xs > 0) & (xs < extent_nm[1])
    ys, xs = ys[keep], xs[keep]
    coarse = ndimage.gaussian_filter(rng.normal(size=(12, 12)), 1.5, mode="wrap")
    coarse_y = np.clip(ys / extent_nm[0] * 11.0, 0, 11)
    coarse_x = np.clip(xs / extent_nm[1] * 11.0, 0, 11)
    level = ndimage.map_coordinates(coarse, [coarse_y, coarse_x], order=1)
    order = np.argsort(-level, kind="stable")[: max(n, 1)]
    jitter = rng.normal(scale=0.07 * spacing, size=(order.size, 2))
    return np.column_stack([ys[order], xs[order]]) + jitter


@dataclass(frozen=True)
class Hole:
    """A circular hole in the support film, nm (centre may lie outside the image)."""

    center_y_nm: float
    center_x_nm: float
    radius_nm: float

    def contains(self, ys: np.ndarray, xs: np.ndarray, margin_nm: float = 0.0) -> np.ndarray:
        """Which points (nm) lie inside the hole shrunk by ``margin_nm``."""
        return np.hypot(ys - self.center_y_nm, xs - self.center_x_nm) < self.radius_nm - margin_nm


def draw_hole(config: SynthConfig, rng: np.random.Generator) -> Hole | None:
    """A hole covering about ``config.holes`` of the field, its edge crossing the image.

    The centre is drawn outside the field (beyond a random side) and the radius solved so
    that the covered fraction, evaluated on a coarse grid, matches ``config.holes``.
    Returns None when ``config.holes`` is 0 (and then draws nothing from ``rng``).
    """
    if config.holes <= 0:
        return None
    rows, cols = config.shape
    h, w = rows * config.pixel_size_nm, cols * config.pixel_size_nm
    side = int(rng.integers(4))
    along = rng.uniform(0.1, 0.9)
    reach = rng.uniform(0.3, 1.5) * max(h, w)
    cy, cx = [
        (-reach, along * w),
        (h + reach, along * w),
        (along * h, -reach),
        (along * h, w + reach),
    ][side]
    gy, gx = np.meshgrid(np.linspace(0, h, 48), np.linspace(0, w, 48), indexing="ij")
    distance = np.sort(np.hypot(gy - cy, gx - cx).ravel())
    radius = float(distance[min(int(config.holes * distance.size), distance.size - 1)])
    return Hole(float(cy), float(cx), radius)


def place_particles(
    config: SynthConfig, rng: np.random.Generator, hole: Hole | None = None
) -> list[ParticleSpec]:
    """Draw and place the particles of one micrograph.

    Parameters
    ----------
    config : SynthConfig
        Size, arrangement, overlap rule, border handling.
    rng : numpy.random.Generator
        Source of randomness.
    hole : Hole, optional
        Vacuum region of the support: no particle centre inside it (particles may hang
        over its edge by up to half their size).

    Returns
    -------
    list of ParticleSpec
        Placed particles; particles that found no acceptable spot are left out, so a
        very high ``area_fraction`` saturates instead of failing.
    """
    n = _count_for_area_fraction(config, rng)
    specs = draw_particle_specs(config, rng, n)
    # Big particles first: they are the hardest to fit.
    specs = [specs[i] for i in np.argsort([-s.bounding_radius_nm for s in specs], kind="stable")]
    rows, cols = config.shape
    px = config.pixel_size_nm
    extent = ((rows - 1) * px, (cols - 1) * px)
    rule = config.overlap_spec
    largest = max((sp.bounding_radius_nm for sp in specs), default=1.0)
    reach = 2.0 * largest * max(1.0, 1.0 - config.overlap_spec.depth_max)
    placed = _Placed(len(specs), reach + 2.0 * config.pixel_size_nm)
    out: list[ParticleSpec] = []
    sites = _raft_sites(config, rng, n, extent) if config.arrangement == "rafts" else None
    n_clusters = max(1, n // int(rng.integers(6, 25)))
    cluster_centres = rng.uniform((0, 0), extent, size=(n_clusters, 2))
    cluster_sigma = config.diameter_mean_nm * rng.uniform(1.5, 4.0)
    for spec in specs:
        rb, re = spec.bounding_radius_nm, spec.equivalent_radius_nm
        position = None
        if placed.n and rng.random() < rule.fraction:
            position = _partner_position(
                placed,
                rb,
                re,
                rule.depth_min,
                rule.depth_max,
                rng,
                extent,
                px,
                config.border_particles,
            )
        if (
            position is not None
            and hole is not None
            and hole.contains(np.array([position[0]]), np.array([position[1]]), -0.5 * rb).any()
        ):
            position = None
        if position is None:
            position = _free_position(
                config, placed, rb, rng, extent, px, sites, cluster_centres, cluster_sigma, hole
            )
        if position is None:
            continue
        y, x = position
        placed.add(y, x, rb, re)
        out.append(replace(spec, center_y_nm=float(y), center_x_nm=float(x)))
    return out


def _partner_position(
    placed: _Placed,
    rb: float,
    re: float,
    depth_min: float,
    depth_max: float,
    rng: np.random.Generator,
    extent: tuple[float, float],
    px: float,
    border_particles: bool,
) -> tuple[float, float] | None:
    """A centre against a random placed partner at a drawn overlap depth, or None."""
    partner = int(rng.integers(placed.n))
    depth = rng.uniform(depth_min, depth_max, size=_PARTNER_TRIES)
    distance = (re + placed.r_eq[partner]) * (1.0 - depth)
    phi = rng.uniform(0.0, 2.0 * np.pi, size=_PARTNER_TRIES)
    ys = placed.y[partner] + distance * np.sin(phi)
    xs = placed.x[partner] + distance * np.cos(phi)

    def acceptable(idx: slice) -> np.ndarray:
        y, x = ys[idx], xs[idx]
        ok = _inside_field(y, x, rb, extent, px, border_particles)
        near = placed.neighbours(y, x)
        near = near[near != partner]
        limit = (re + placed.r_eq[None, near]) * (1.0 - depth_max) - 1e-9
        return ok & np.all(placed.distances(y, x, near) >= limit, axis=1)

    return _first_acceptable(ys, xs, acceptable)


def _first_acceptable(
    ys: np.ndarray, xs: np.ndarray, acceptable: Callable[[slice], np.ndarray]
) -> tuple[float, float] | None:
    """The first candidate accepted by ``acceptable(slice) -> bool array``, checked in chunks."""
    for start in range(0, len(ys), 8):
        ok = acceptable(slice(start, start + 8))
        hits = np.flatnonzero(ok)
        if hits.size:
            return float(ys[start + hits[0]]), float(xs[start + hits[0]])
    return None


def _free_position(
    config: SynthConfig,
    placed: _Placed,
    rb: float,
    rng: np.random.Generator,
    extent: tuple[float, float],
    px: float,
    sites: np.ndarray | None,
    cluster_centres: np.ndarray,
    cluster_sigma: float,
    hole: Hole | None = None,
) -> tuple[float, float] | None:
    """A centre where the bounding circle clears every placed particle by 1 px, or None."""
    if config.arrangement == "rafts" and sites is not None and placed.n < len(sites):
        ys = sites[placed.n : placed.n + _FREE_TRIES, 0]
        xs = sites[placed.n : placed.n + _FREE_TRIES, 1]
        extra = rng.uniform((0, 0), extent, size=(_FREE_TRIES, 2))
        ys, xs = np.concatenate([ys, extra[:, 0]]), np.concatenate([xs, extra[:, 1]])
    elif config.arrangement == "clustered":
        which = rng.integers(len(cluster_centres), size=_FREE_TRIES)
        offsets = rng.normal(scale=cluster_sigma, size=(_FREE_TRIES, 2))
        ys = cluster_centres[which, 0] + offsets[:, 0]
        xs = cluster_centres[which, 1] + offsets[:, 1]
    else:
        pts = rng.uniform((0, 0), extent, size=(_FREE_TRIES, 2))
        ys, xs = pts[:, 0], pts[:, 1]

    def acceptable(idx: slice) -> np.ndarray:
        y, x = ys[idx], xs[idx]
        ok = _inside_field(y, x, rb, extent, px, config.border_particles)
        if hole is not None:
            ok &= ~hole.contains(y, x, -0.5 * rb)
        near = placed.neighbours(y, x)
        clearance = rb + placed.r_bound[None, near] + px
        return ok & np.all(placed.distances(y, x, near) >= clearance, axis=1)

    return _first_acceptable(ys, xs, acceptable)


def _disc(radius_nm: float, y: float, x: float, thickness_ratio: float = 1.0) -> ParticleSpec:
    return ParticleSpec(
        shape="sphere",
        center_y_nm=y,
        center_x_nm=x,
        radius_nm=radius_nm,
        thickness_nm=2.0 * radius_nm * thickness_ratio,
    )


def centre_distance_for_overlap(
    radius_a_nm: float, radius_b_nm: float, overlap: float, kind: str = "linear"
) -> float:
    """Centre distance (nm) of two discs at a given overlap.

    Parameters
    ----------
    radius_a_nm, radius_b_nm : float
        Disc radii, nm.
    overlap : float
        ``kind="linear"``: depth ``1 - d / (ra + rb)`` (0 touching, 1 concentric).
        ``kind="area"``: intersection area / area of the smaller disc (0 to 1).
    kind : {"linear", "area"}
        Which definition ``overlap`` uses.

    Returns
    -------
    float
        Centre distance, nm.
    """
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap}")
    ra, rb = radius_a_nm, radius_b_nm
    if kind == "linear":
        return (ra + rb) * (1.0 - overlap)
    if kind != "area":
        raise ValueError(f"overlap kind must be 'linear' or 'area', got {kind!r}")
    target = overlap * np.pi * min(ra, rb) ** 2
    lo, hi = abs(ra - rb), ra + rb
    for _ in range(80):  # bisection: intersection area decreases with distance
        mid = 0.5 * (lo + hi)
        if disc_intersection_area(ra, rb, mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def disc_intersection_area(ra: float, rb: float, d: float) -> float:
    """Area (nm²) of the intersection of two discs of radii ``ra``, ``rb`` at distance ``d``."""
    if d >= ra + rb:
        return 0.0
    if d <= abs(ra - rb):
        return float(np.pi * min(ra, rb) ** 2)
    a = ra**2 * np.arccos((d**2 + ra**2 - rb**2) / (2 * d * ra))
    b = rb**2 * np.arccos((d**2 + rb**2 - ra**2) / (2 * d * rb))
    c = 0.5 * np.sqrt((-d + ra + rb) * (d + ra - rb) * (d - ra + rb) * (d + ra + rb))
    return float(a + b - c)


def pair_specs(
    diameter_nm: float,
    overlap: float,
    *,
    center_nm: tuple[float, float],
    angle_rad: float = 0.0,
    kind: str = "linear",
    diameter_b_nm: float | None = None,
) -> list[ParticleSpec]:
    """Two discs at an exact overlap, centred on ``center_nm`` (nm)."""
    ra = diameter_nm / 2.0
    rb = (diameter_b_nm if diameter_b_nm is not None else diameter_nm) / 2.0
    d = centre_distance_for_overlap(ra, rb, overlap, kind)
    cy, cx = center_nm
    dy, dx = np.sin(angle_rad) * d / 2.0, np.cos(angle_rad) * d / 2.0
    return [_disc(ra, cy - dy, cx - dx), _disc(rb, cy + dy, cx + dx)]


def chain_specs(
    n: int,
    diameter_nm: float,
    overlap: float,
    *,
    center_nm: tuple[float, float],
    angle_rad: float = 0.0,
    kind: str = "linear",
    bend_rad: float = 0.0,
    rng: np.random.Generator | None = None,
) -> list[ParticleSpec]:
    """``n`` equal discs in a chain, each overlapping the next by ``overlap``.

    ``bend_rad`` is the largest random turn between successive links (needs ``rng``).
    """
    r = diameter_nm / 2.0
    d = centre_distance_for_overlap(r, r, overlap, kind)
    points = [np.zeros(2)]
    heading = angle_rad
    for _ in range(n - 1):
        if bend_rad and rng is not None:
            heading += rng.uniform(-bend_rad, bend_rad)
        points.append(points[-1] + d * np.array([np.sin(heading), np.cos(heading)]))
    pts = np.array(points)
    pts += np.asarray(center_nm) - pts.mean(axis=0)
    return [_disc(r, float(y), float(x)) for y, x in pts]


def cluster_specs(
    n: int,
    diameter_nm: float,
    overlap: float,
    *,
    center_nm: tuple[float, float],
    rng: np.random.Generator,
    kind: str = "linear",
) -> list[ParticleSpec]:
    """``n`` equal discs in a compact cluster: each touches a previous one at ``overlap``.

    No disc overlaps any other deeper than the requested overlap (plus 2 %).
    """
    r = diameter_nm / 2.0
    d = centre_distance_for_overlap(r, r, overlap, kind)
    pts = [np.zeros(2)]
    for _ in range(200 * n):
        if len(pts) == n:
            break
        base = pts[int(rng.integers(len(pts)))]
        phi = rng.uniform(0.0, 2.0 * np.pi)
        cand = base + d * np.array([np.sin(phi), np.cos(phi)])
        dist = np.hypot(*(np.array(pts) - cand).T)
        if np.all(dist >= d * 0.98):
            pts.append(cand)
    arr = np.array(pts)
    arr += np.asarray(center_nm) - arr.mean(axis=0)
    return [_disc(r, float(y), float(x)) for y, x in arr]
