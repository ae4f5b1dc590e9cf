"""Separation by contour arcs: concave points split the outline, circles fit the arcs.

For compact clusters (three discs in a triangle, a disc wedged between others) the
distance map has a single maximum in the middle and UECS collapses into one marker, but
the outline still shows one convex arc per particle between concave points. On one
region's crop:

1. The outer contour (marching squares on the lightly smoothed crop, in nm) and its
   convex hull.
2. Concave points: the deepest contour point of every bay (a run of contour points
   away from the hull), and further clearly separated local maxima of the same bay,
   when deeper than ``max(1 px, 4 % of sqrt(area))``.
3. The contour is cut at the concave points into arcs; a circle is fitted to each arc
   (algebraic least squares, Kasa), the ends of each arc (near the necks) left out.
4. Circles of the same particle (a disc in the middle of a chain shows two arcs) are
   merged when their centres and radii agree within 30 % of the radius. Circles whose
   arc points scatter by more than 8 % of the radius are dropped, and the whole split is
   rejected when a circle lies less than 85 % inside the region (the outline is not made
   of round particles: on real EMPS label maps an unchecked arc split invented about as
   many false particles as it found true ones).
5. Each particle is the part of the region inside its circle; particles may overlap.

The split is rejected (``None``) when fewer than two plausible circles remain or they
cover less than ``min_coverage`` of the region.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import find_contours

from antema_scale.particles.geometry import convex_hull_points, smoothed_field

_MIN_ARC_POINTS = 6
MAX_FIT_RMS = 0.08
"""A circle is kept when the rms distance of its arc points is below this fraction of r."""
MIN_INSIDE_FRACTION = 0.85
"""A circle is kept when at least this fraction of its area lies inside the region."""


def outer_contour_nm(crop: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Longest closed 0.5 iso-contour of the smoothed crop, ``(N, 2)`` in nm (crop frame)."""
    contours = find_contours(smoothed_field(crop), 0.5, fully_connected="high")
    longest = max(contours, key=len)[:-1]
    return (longest - 4.0) * np.asarray(spacing, dtype=float)


def hull_depth(points: np.ndarray) -> np.ndarray:
    """Distance of each point to the boundary of the convex hull of all points."""
    hull = convex_hull_points(points)
    if len(hull) < 3:
        return np.zeros(len(points))
    edges = np.concatenate([hull[1:], hull[:1]]) - hull
    normals = np.column_stack([edges[:, 1], -edges[:, 0]])
    normals /= np.hypot(normals[:, 0], normals[:, 1])[:, None]
    # inside a convex polygon the distance to its boundary is the smallest edge distance
    distances = np.abs((points[:, None, :] - hull[None, :, :]) * normals[None, :, :]).sum(-1)
    signed = ((points[:, None, :] - hull[None, :, :]) * normals[None, :, :]).sum(-1)
    return np.where(np.abs(signed) < distances + 1e-12, np.abs(signed), distances).min(axis=1)


def _bay_maxima(depth: np.ndarray, run: np.ndarray, min_depth: float) -> list[int]:
    """Concave points inside one bay: its deepest point and any other local maximum
    deeper than ``min_depth`` that is separated from the ones kept by a dip to below
    60 % of its own depth (two necks opening into the same bay)."""
    values = depth[run]
    if len(values) >= 5:
        padded = np.concatenate([np.full(2, values[0]), values, np.full(2, values[-1])])
        smooth = np.convolve(padded, np.ones(5) / 5, mode="valid")
    else:
        smooth = values
    before = np.concatenate([smooth[:1], smooth[:-1]])
    after = np.concatenate([smooth[1:], smooth[-1:]])
    local = np.flatnonzero((values >= min_depth) & (smooth >= before) & (smooth >= after))
    kept: list[int] = []
    for k in local[np.argsort(-values[local], kind="stable")].tolist():
        separated = all(values[min(k, j) : max(k, j) + 1].min() < 0.6 * values[k] for j in kept)
        if separated:
            kept.append(k)
    return [int(run[k]) for k in kept]


def concave_points(depth: np.ndarray, min_depth: float) -> np.ndarray:
    """Indices of the concave points of the contour (cyclic), see :func:`_bay_maxima`."""
    inside = depth > 0.25 * min_depth
    if inside.all() or not inside.any():
        return np.zeros(0, dtype=int)
    start = int(np.argmin(inside))  # a point on the hull: runs do not wrap around it
    order = np.roll(np.arange(len(depth)), -start)
    rolled = inside[order]
    edges = np.flatnonzero(np.diff(rolled.astype(np.int8)))
    picks: list[int] = []
    for begin, end in zip(edges[::2] + 1, edges[1::2] + 1, strict=False):
        picks.extend(_bay_maxima(depth, order[begin:end], min_depth))
    return np.sort(np.array(picks, dtype=int))


def count_necks(region: np.ndarray, spacing: tuple[float, float], *, relative_depth: float) -> int:
    """Number of concave points deeper than ``relative_depth * sqrt(area)`` (and 1 px).

    Two overlapping discs of radius ``r`` show two such points at their neck, each
    ``r - sqrt(r² - d²/4)`` deep: ``0.2 r`` at 40 % linear overlap, about ``0.09
    sqrt(area)``.

    Parameters
    ----------
    region : numpy.ndarray of bool
        Region crop (hole-filled).
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    relative_depth : float
        Minimum depth as a fraction of the square root of the region's area.

    Returns
    -------
    int
        Number of concave points.
    """
    area_nm2 = np.count_nonzero(region) * spacing[0] * spacing[1]
    contour = outer_contour_nm(region, spacing)
    min_depth = max(max(spacing), relative_depth * np.sqrt(area_nm2))
    return len(concave_points(hull_depth(contour), min_depth))


def fit_circle(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares circle through points: ``(centre, radius, rms residual)``."""
    a = np.column_stack([2 * points, np.ones(len(points))])
    b = (points**2).sum(axis=1)
    (cy, cx, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    centre = np.array([cy, cx])
    radius = float(np.sqrt(max(c + cy**2 + cx**2, 0.0)))
    residual = np.hypot(*(points - centre).T) - radius
    return centre, radius, float(np.sqrt(np.mean(residual**2)))


def _arcs(contour: np.ndarray, cuts: np.ndarray, trim: float = 0.15) -> list[np.ndarray]:
    """Contour pieces between consecutive cut indices, trimmed at both ends."""
    pieces = []
    n = len(contour)
    for k, begin in enumerate(cuts):
        end = cuts[(k + 1) % len(cuts)]
        length = (end - begin) % n or n
        margin = int(trim * length)
        index = (begin + np.arange(margin, length - margin + 1)) % n
        if len(index) >= _MIN_ARC_POINTS:
            pieces.append(contour[index])
    return pieces


def _merge_circles(arcs: list[np.ndarray]) -> list[tuple[np.ndarray, float]]:
    """Fit a circle per arc and merge arcs that describe the same circle."""
    groups: list[list[np.ndarray]] = []
    fits: list[tuple[np.ndarray, float, float]] = []
    for arc in arcs:
        centre, radius, rms = fit_circle(arc)
        for g, (other_centre, other_radius, _) in enumerate(fits):
            scale = 0.3 * min(radius, other_radius)
            if np.hypot(*(centre - other_centre)) < scale and abs(radius - other_radius) < scale:
                groups[g].append(arc)
                fits[g] = fit_circle(np.vstack(groups[g]))
                break
        else:
            groups.append([arc])
            fits.append((centre, radius, rms))
    return [(centre, radius) for centre, radius, rms in fits if rms < MAX_FIT_RMS * radius]


def arc_separate(
    region: np.ndarray,
    spacing: tuple[float, float],
    *,
    min_coverage: float = 0.9,
    min_particle_px: float = 10.0,
) -> list[np.ndarray] | None:
    """Split a region into overlapping discs fitted to its outline arcs.

    Parameters
    ----------
    region : numpy.ndarray of bool
        The region crop (hole-filled outline is used).
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    min_coverage : float
        Fraction of the region the particles must cover together.
    min_particle_px : float
        Smallest particle kept, in pixels.

    Returns
    -------
    list of numpy.ndarray of bool, or None
        Particle masks (same shape as ``region``), or None when the outline does not
        support a split into two or more discs.
    """
    area = int(np.count_nonzero(region))
    contour = outer_contour_nm(region, spacing)
    depth = hull_depth(contour)
    min_depth = max(max(spacing), 0.04 * np.sqrt(area * spacing[0] * spacing[1]))
    cuts = concave_points(depth, min_depth)
    if len(cuts) < 2:
        return None
    circles = _merge_circles(_arcs(contour, cuts))
    if len(circles) < 2:
        return None
    rows, cols = np.nonzero(region)
    y, x = rows * spacing[0], cols * spacing[1]
    particles = []
    for centre, radius in circles:
        inside = (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius**2
        circle_px = np.pi * radius**2 / (spacing[0] * spacing[1])
        if inside.sum() < min_particle_px or inside.sum() < MIN_INSIDE_FRACTION * circle_px:
            return None  # not round particles: an arc split would invent outlines
        mask = np.zeros_like(region)
        mask[rows[inside], cols[inside]] = True
        particles.append(mask)
    if len(particles) < 2:
        return None
    covered = np.count_nonzero(np.logical_or.reduce(particles)) / area
    return particles if covered >= min_coverage else None
