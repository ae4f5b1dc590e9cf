"""Geometry of one binary particle crop: hulls, Feret diameters and perimeters in nm.

All functions take a 2-D boolean crop (``True`` = particle) and a pixel spacing
``(dy, dx)`` in nm per pixel, so anisotropic pixels give correct physical lengths: every
point is scaled per axis *before* any distance is taken.

Conventions
-----------
* Feret diameters use the convex hull of the pixel **corners** (each pixel is a unit
  square), so a one-pixel particle has a minimum Feret diameter of one pixel and a maximum
  of one pixel diagonal, and a digital disc of diameter ``d`` pixels has Feret ~``d``.
* The convex area (for solidity) counts the pixel **centres** inside the convex hull of the
  region's pixel centres (the digital convex hull, as MATLAB's ``ConvexArea``), computed
  exactly with Pick's theorem, without rasterising the hull.
* Perimeter estimators (see :func:`perimeter_nm`):

  ``"contour"`` (default)
      Length of the iso-0.5 marching-squares contour of the hole-filled crop after a
      Gaussian blur of sigma 0.7 px (8-connected particle). The blur removes the pixel
      staircase, which makes raw chain-code / crack contours over-estimate a disc
      perimeter by 4-6 % (and caps the convexity of a perfect digital disc near 0.955,
      dangerously close to the 0.95 threshold). Measured against the true outline:
      digital discs of radius 5-30 px +0.6..+1.4 % (3 px: -1.4 %); axis-aligned squares
      of 10 / 20 / 50 px -5.8 / -2.9 / -1.2 % (the blur rounds corners); rotated squares
      of 30-60 px within +0.5 %. Convexity of digital discs >= 0.985. Coordinates are
      scaled per axis, so it is valid for anisotropic pixels. The same contour and its
      convex hull give the convexity.
  ``"matlab"``
      MATLAB ``regionprops`` ``'Perimeter'``: the 8-connected outer boundary pixels are
      traced and the distances between consecutive pixel *centres* are summed (steps of 1
      or sqrt(2) px). It under-estimates the true perimeter by about half a pixel of
      radius, so MATLAB circularities of small discs exceed 1 and a single pixel has
      perimeter 0 (its circularity is then reported as ``inf``, as in MATLAB). Use it to
      reproduce the reference program's circularity values.

  In both cases only the outer boundary counts (holes are filled first), as in MATLAB.
"""

from __future__ import annotations

from math import gcd

import numpy as np
import scipy.ndimage as ndi
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import find_contours

PERIMETER_ESTIMATORS: tuple[str, ...] = ("contour", "matlab")

_CROSS = ndi.generate_binary_structure(2, 1)
_CORNER_OFFSETS = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])


def boundary_pixels(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the particle pixels that touch the background.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.

    Returns
    -------
    rows, cols : numpy.ndarray of int
        Pixel indices (px) of the 4-connected inner boundary.
    """
    inner = ndi.binary_erosion(crop, _CROSS, border_value=0)
    return np.nonzero(crop & ~inner)


def _ordered_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull vertices of 2-D points (``(N, 2)`` array)."""
    hull = ConvexHull(points)
    return points[hull.vertices]


def corner_hull_nm(crop: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Convex hull of the pixel corners of a particle, in nm.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop (at least one ``True`` pixel).
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.

    Returns
    -------
    numpy.ndarray
        ``(M, 2)`` hull vertices ``(y, x)`` in nm relative to the crop origin, in
        counter-clockwise order.
    """
    rows, cols = boundary_pixels(crop)
    centres = np.column_stack([rows, cols]).astype(float)
    corners = (centres[:, None, :] + _CORNER_OFFSETS[None, :, :]).reshape(-1, 2)
    corners = np.unique(corners, axis=0) * np.asarray(spacing, dtype=float)
    return _ordered_hull(corners)


def feret_diameters_nm(hull: np.ndarray) -> tuple[float, float]:
    """Minimum and maximum Feret (caliper) diameters of a convex polygon.

    The maximum is the largest distance between two hull vertices; the minimum is found
    with rotating calipers: for each hull edge, the width of the polygon perpendicular to
    that edge, minimised over edges.

    Parameters
    ----------
    hull : numpy.ndarray
        ``(M, 2)`` convex polygon vertices in order (nm), ``M >= 3``.

    Returns
    -------
    min_feret, max_feret : float
        Diameters in the unit of ``hull`` (nm).
    """
    diffs = hull[:, None, :] - hull[None, :, :]
    max_feret = float(np.sqrt((diffs**2).sum(axis=-1)).max())
    edges = np.roll(hull, -1, axis=0) - hull
    lengths = np.hypot(edges[:, 0], edges[:, 1])
    keep = lengths > 0
    normals = np.column_stack([-edges[keep, 1], edges[keep, 0]]) / lengths[keep, None]
    # widths[i] = max_j |(p_j - p_i) . n_i|
    rel = hull[None, :, :] - hull[keep][:, None, :]
    widths = np.abs((rel * normals[:, None, :]).sum(axis=-1)).max(axis=1)
    return float(widths.min()), max_feret


def polygon_length(points: np.ndarray, closed: bool = True) -> float:
    """Length of a polyline (``(N, 2)``), closing it when ``closed``."""
    if len(points) < 2:
        return 0.0
    pts = np.vstack([points, points[:1]]) if closed else points
    steps = np.diff(pts, axis=0)
    return float(np.hypot(steps[:, 0], steps[:, 1]).sum())


def convex_area_px(crop: np.ndarray) -> float:
    """Number of pixel centres inside the convex hull of the particle's pixel centres.

    Uses Pick's theorem on the lattice polygon: ``count = A + B/2 + 1`` with ``A`` the
    polygon area and ``B`` the number of lattice points on its edges.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.

    Returns
    -------
    float
        Convex area in pixels (multiply by ``dy * dx`` for nm²).
    """
    rows, cols = boundary_pixels(crop)
    points = np.column_stack([rows, cols]).astype(float)
    if len(points) == 0:
        return 0.0
    try:
        hull = _ordered_hull(points)
    except (QhullError, ValueError):
        # collinear (a line or a single pixel): the lattice points on the segment
        span = points.max(axis=0) - points.min(axis=0)
        return float(gcd(int(span[0]), int(span[1])) + 1)
    area = 0.5 * abs(
        float(
            np.dot(hull[:, 0], np.roll(hull[:, 1], -1))
            - np.dot(hull[:, 1], np.roll(hull[:, 0], -1))
        )
    )
    edges = np.abs(np.roll(hull, -1, axis=0) - hull).astype(int)
    on_edges = sum(gcd(int(a), int(b)) for a, b in edges)
    return area + on_edges / 2.0 + 1.0


CONTOUR_SMOOTHING_PX = 0.7
"""Gaussian sigma (px) applied to the binary crop before the marching-squares contour."""


def contours_nm(crop: np.ndarray, spacing: tuple[float, float]) -> list[np.ndarray]:
    """Smoothed marching-squares outer contours of the hole-filled crop, in nm.

    The crop is blurred with a Gaussian of sigma :data:`CONTOUR_SMOOTHING_PX` pixels and
    contoured at 0.5, which removes the pixel staircase (a raw crack or chain-code contour
    over-estimates a disc perimeter by 4-6 %). Particles too small to survive the blur
    (a few pixels) fall back to the unsmoothed contour.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.

    Returns
    -------
    list of numpy.ndarray
        Closed contours, ``(N, 2)`` points ``(y, x)`` in nm.
    """
    filled = ndi.binary_fill_holes(crop)
    padded = np.pad(filled, 4).astype(np.float32)
    contours = find_contours(
        ndi.gaussian_filter(padded, CONTOUR_SMOOTHING_PX), 0.5, fully_connected="high"
    )
    if not contours:
        contours = find_contours(padded, 0.5, fully_connected="high")
    scale = np.asarray(spacing, dtype=float)
    return [c * scale for c in contours]


def contour_perimeters_nm(crop: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float]:
    """Perimeter and convex-hull perimeter of the smoothed outer contour, in nm.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.

    Returns
    -------
    perimeter, hull_perimeter : float
        Both in nm; ``hull_perimeter <= perimeter``.
    """
    contours = contours_nm(crop, spacing)
    perimeter = float(sum(polygon_length(c, closed=False) for c in contours))
    points = np.vstack(contours)
    try:
        hull_perimeter = polygon_length(_ordered_hull(points), closed=True)
    except (QhullError, ValueError):
        hull_perimeter = float(2.0 * np.hypot(*np.ptp(points, axis=0)))
    return perimeter, min(hull_perimeter, perimeter)


def convexity(crop: np.ndarray, spacing: tuple[float, float]) -> float:
    """Convexity = convex-hull perimeter / perimeter (smoothed contour), 1 for convex shapes.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.

    Returns
    -------
    float
        Dimensionless, in ``(0, 1]``.
    """
    perimeter, hull_perimeter = contour_perimeters_nm(crop, spacing)
    return hull_perimeter / perimeter if perimeter > 0 else 1.0


_MOORE = np.array([(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)])


def trace_outer_boundary(crop: np.ndarray) -> np.ndarray:
    """Trace the 8-connected outer boundary of the first particle in raster order.

    Moore-neighbour tracing with Jacob's stopping criterion (stop when the start pixel is
    re-entered from the same direction), as MATLAB's ``bwboundaries``.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` integer pixel centres ``(row, col)`` in order; a single pixel gives one
        point.
    """
    padded = np.pad(crop, 1)
    fg = np.argwhere(padded)
    if len(fg) == 0:
        return np.zeros((0, 2), dtype=int)
    start = (int(fg[0, 0]), int(fg[0, 1]))
    # we entered the start pixel from its west neighbour (background by raster order)
    path = [start]
    current = start
    search_from = 6  # direction index of the west neighbour
    first_move: tuple[tuple[int, int], int] | None = None
    limit = 4 * padded.size + 8
    for _ in range(limit):
        nxt = None
        for k in range(8):
            d = (search_from + k) % 8
            r, c = current[0] + _MOORE[d, 0], current[1] + _MOORE[d, 1]
            if padded[r, c]:
                nxt = ((int(r), int(c)), d)
                break
        if nxt is None:  # isolated pixel
            break
        if first_move is None:
            first_move = nxt
        elif current == start and nxt == first_move:
            break
        current = nxt[0]
        path.append(current)
        # next search starts from the neighbour after the backtrack direction
        search_from = (nxt[1] + 5) % 8 if nxt[1] % 2 == 0 else (nxt[1] + 6) % 8
    points = np.asarray(path[:-1] if len(path) > 1 else path, dtype=int) - 1
    return points


def perimeter_nm(
    crop: np.ndarray, spacing: tuple[float, float], estimator: str = "contour"
) -> float:
    """Perimeter of a particle in nm (outer boundary only).

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    estimator : {"contour", "matlab"}
        See the module docstring.

    Returns
    -------
    float
        Perimeter in nm.
    """
    if estimator == "contour":
        return contour_perimeters_nm(crop, spacing)[0]
    if estimator == "matlab":
        return matlab_perimeter_nm(crop, spacing)
    raise ValueError(
        f"unknown perimeter estimator {estimator!r}; choose one of {PERIMETER_ESTIMATORS}"
    )


def matlab_perimeter_nm(crop: np.ndarray, spacing: tuple[float, float]) -> float:
    """MATLAB ``regionprops`` perimeter: summed centre-to-centre steps of the outer trace.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.

    Returns
    -------
    float
        Perimeter in nm; 0 for a single pixel.
    """
    trace = trace_outer_boundary(ndi.binary_fill_holes(crop))
    if len(trace) < 2:
        return 0.0
    return polygon_length(trace * np.asarray(spacing, dtype=float), closed=True)
