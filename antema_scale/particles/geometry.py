"""Geometry of one binary particle crop: hulls, Feret diameters and perimeters in nm.

All functions take a 2-D boolean crop (``True`` = particle) and a pixel spacing
``(dy, dx)`` in nm per pixel, so anisotropic pixels give correct physical lengths: every
point is scaled per axis *before* any distance is taken.

Conventions
-----------
* Feret diameters use the convex hull of the pixel **corners** (each pixel is a unit
  square), so a one-pixel particle has a minimum
  Feret diameter of one pixel and a maximum of one pixel diagonal, and a digital disc of
  diameter ``d`` pixels has Feret diameters between ``d`` and ``d + 1.5`` px. The corner
  hull is the Minkowski sum of the pixel-centre hull and one pixel, so both diameters
  come in closed form from the centre hull (no second hull is computed).
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
      scaled per axis, so it is valid for anisotropic pixels. The same contour and the
      perimeter of its convex hull (Cauchy's formula) give the convexity, whatever
      estimator is chosen for the reported perimeter.
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

import numpy as np
import scipy.ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

PERIMETER_ESTIMATORS: tuple[str, ...] = ("contour", "matlab")

CONTOUR_SMOOTHING_PX = 0.7
"""Gaussian sigma (px) applied to the binary crop before the marching-squares contour."""

_SMOOTHING_KERNEL = np.exp(-0.5 * (np.arange(-3, 4) / CONTOUR_SMOOTHING_PX) ** 2).astype(np.float32)
_SMOOTHING_KERNEL /= _SMOOTHING_KERNEL.sum()


def zero_pad(array: np.ndarray, width: int, dtype: type | None = None) -> np.ndarray:
    """``array`` with ``width`` zeros on every side (a fast ``np.pad`` for 2-D crops)."""
    out = np.zeros(
        (array.shape[0] + 2 * width, array.shape[1] + 2 * width), dtype=dtype or array.dtype
    )
    out[width : width + array.shape[0], width : width + array.shape[1]] = array
    return out


def _next_vertex(points: np.ndarray) -> np.ndarray:
    """Each polygon vertex's successor (closing the polygon)."""
    return np.concatenate([points[1:], points[:1]])


def convex_hull_points(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull vertices of 2-D points.

    Degenerate sets are returned as their extreme points: one point, or the two ends of a
    segment.

    Parameters
    ----------
    points : numpy.ndarray
        ``(N, 2)`` points.

    Returns
    -------
    numpy.ndarray
        ``(M, 2)`` hull vertices (``M`` is 1 or 2 for degenerate sets).
    """
    if len(points) >= 3:
        try:
            return points[ConvexHull(points).vertices]
        except QhullError:  # collinear or repeated points
            pass
    unique = np.unique(points, axis=0)
    if len(unique) <= 1:
        return unique
    direction = unique[-1] - unique[0]
    projection = unique @ direction
    return unique[[int(np.argmin(projection)), int(np.argmax(projection))]]


def _half_hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """One half of Andrew's monotone chain over points sorted by (row, col)."""
    out: list[tuple[int, int]] = []
    for p in points:
        while len(out) >= 2:
            (ar, ac), (br, bc) = out[-2], out[-1]
            if (br - ar) * (p[1] - ac) - (bc - ac) * (p[0] - ar) <= 0:
                out.pop()
            else:
                break
        out.append(p)
    return out


def centre_hull_px(crop: np.ndarray) -> np.ndarray:
    """Convex hull of the particle's pixel centres, in px.

    Andrew's monotone chain over the leftmost and rightmost pixel of every row, which
    arrive already sorted, so no sort and no Qhull call is needed (several times faster
    than ``scipy.spatial.ConvexHull`` for the few dozen points of a particle).

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop (at least one ``True`` pixel).

    Returns
    -------
    numpy.ndarray of float
        ``(M, 2)`` hull vertices ``(row, col)`` in order, without collinear points; one
        point for a single pixel, two for a straight line of pixels.
    """
    rows = np.flatnonzero(crop.any(axis=1))
    left = crop[rows].argmax(axis=1)
    right = crop.shape[1] - 1 - crop[rows, ::-1].argmax(axis=1)
    extremes = np.empty((2 * len(rows), 2), dtype=np.int64)
    extremes[0::2, 0] = rows
    extremes[0::2, 1] = left
    extremes[1::2, 0] = rows
    extremes[1::2, 1] = right
    points = [(int(r), int(c)) for r, c in extremes.tolist()]
    hull = _half_hull(points)[:-1] + _half_hull(points[::-1])[:-1]
    if len(hull) <= 2:
        hull = list(dict.fromkeys(hull)) or points[:1]
    return np.array(hull, dtype=float)


def convex_area_px(crop_or_hull: np.ndarray) -> float:
    """Number of pixel centres inside the convex hull of the particle's pixel centres.

    Pick's theorem on the lattice polygon, ``count = A + B/2 + 1`` with ``A`` its area
    and ``B`` the lattice points on its edges: exact, without rasterising the hull.

    Parameters
    ----------
    crop_or_hull : numpy.ndarray
        A boolean particle crop, or a hull from :func:`centre_hull_px`.

    Returns
    -------
    float
        Convex area in pixels (multiply by ``dy * dx`` for nm²).
    """
    hull = centre_hull_px(crop_or_hull) if crop_or_hull.dtype == bool else crop_or_hull
    if len(hull) == 0:
        return 0.0
    nxt = _next_vertex(hull)
    area = 0.5 * abs(float(np.sum(hull[:, 0] * nxt[:, 1] - hull[:, 1] * nxt[:, 0])))
    steps = np.abs(nxt - hull).astype(np.int64)
    on_edges = int(np.gcd(steps[:, 0], steps[:, 1]).sum())
    if len(hull) == 2:  # a segment: its lattice points, counted once
        return float(on_edges // 2 + 1)
    return area + on_edges / 2.0 + 1.0


def feret_diameters_nm(hull: np.ndarray, spacing: tuple[float, float]) -> tuple[float, float]:
    """Minimum and maximum Feret diameters of a particle from its pixel-centre hull.

    The pixel-corner hull is the Minkowski sum of the centre hull ``P`` and one pixel
    ``S`` (``dy`` x ``dx`` nm). Its width in direction ``n`` is
    ``width_P(n) + dy |n_y| + dx |n_x|``; the minimum over directions is reached normal
    to an edge of ``P`` or of ``S`` (rotating calipers). The largest distance between two
    corners is ``max_ij |(|dr_ij| + 1) dy, (|dc_ij| + 1) dx|``.

    Parameters
    ----------
    hull : numpy.ndarray
        ``(M, 2)`` ordered hull of pixel centres in px (from :func:`centre_hull_px`).
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.

    Returns
    -------
    min_feret, max_feret : float
        Diameters in nm.
    """
    dy, dx = spacing
    delta = np.abs(hull[:, None, :] - hull[None, :, :])
    max_feret = float(
        np.sqrt(((delta[..., 0] + 1) * dy) ** 2 + ((delta[..., 1] + 1) * dx) ** 2).max()
    )
    points = hull * np.asarray(spacing, dtype=float)
    edges = _next_vertex(points) - points if len(points) > 1 else np.zeros((0, 2))
    normals = np.column_stack([-edges[:, 1], edges[:, 0]])
    normals = np.vstack([normals, [[1.0, 0.0], [0.0, 1.0]]])
    lengths = np.hypot(normals[:, 0], normals[:, 1])
    normals = normals[lengths > 0] / lengths[lengths > 0, None]
    projections = points @ normals.T
    widths = (
        projections.max(axis=0)
        - projections.min(axis=0)
        + dy * np.abs(normals[:, 0])
        + dx * np.abs(normals[:, 1])
    )
    return float(widths.min()), max_feret


def polygon_length(points: np.ndarray, closed: bool = True) -> float:
    """Length of a polyline (``(N, 2)``), closing it when ``closed``."""
    if len(points) < 2:
        return 0.0
    pts = np.vstack([points, points[:1]]) if closed else points
    steps = np.diff(pts, axis=0)
    return float(np.hypot(steps[:, 0], steps[:, 1]).sum())


_TOP, _BOTTOM, _LEFT, _RIGHT = 0, 1, 2, 3


def _cell_crossings(field: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marching-squares crossing points of the 0.5 level in every boundary cell.

    A cell is the square between four neighbouring pixel centres. Only cells whose
    corners are not all on the same side of 0.5 are kept.

    Returns
    -------
    points : numpy.ndarray
        ``(n, 4, 2)`` crossing points ``(row, col)`` in px on the cell's top, bottom,
        left and right edges (NaN where an edge is not crossed).
    present : numpy.ndarray of bool
        ``(n, 4)``: which edges are crossed.
    low_top_left : numpy.ndarray of bool
        ``(n,)``: whether the cell's top-left corner is below 0.5 (saddle resolution).
    """
    high = field > 0.5
    n_high = high[:-1, :-1].astype(np.int8) + high[:-1, 1:] + high[1:, :-1] + high[1:, 1:]
    ci, cj = np.nonzero((n_high > 0) & (n_high < 4))
    f00, f01 = field[ci, cj], field[ci, cj + 1]
    f10, f11 = field[ci + 1, cj], field[ci + 1, cj + 1]
    h00, h01, h10, h11 = f00 > 0.5, f01 > 0.5, f10 > 0.5, f11 > 0.5
    rows, cols = ci.astype(float), cj.astype(float)
    points = np.full((len(ci), 4, 2), np.nan)
    present = np.column_stack([h00 != h01, h10 != h11, h00 != h10, h01 != h11])
    with np.errstate(divide="ignore", invalid="ignore"):
        points[:, _TOP, 0] = rows
        points[:, _TOP, 1] = cols + (0.5 - f00) / (f01 - f00)
        points[:, _BOTTOM, 0] = rows + 1
        points[:, _BOTTOM, 1] = cols + (0.5 - f10) / (f11 - f10)
        points[:, _LEFT, 0] = rows + (0.5 - f00) / (f10 - f00)
        points[:, _LEFT, 1] = cols
        points[:, _RIGHT, 0] = rows + (0.5 - f01) / (f11 - f01)
        points[:, _RIGHT, 1] = cols + 1
    points[~present] = np.nan
    return points, present, ~h00


def _iso_line_length(points: np.ndarray, present: np.ndarray, low_top_left: np.ndarray) -> float:
    """Total length of the marching-squares segments (units of ``points``).

    Every boundary cell holds one segment between its two crossed edges, or two in a
    saddle cell, where the high corners stay connected (8-connected particle, as
    ``fully_connected="high"`` in ``skimage.measure.find_contours``). A length needs no
    contour assembly.
    """
    count = present.sum(axis=1)
    single = count == 2
    order = np.argsort(~present[single], axis=1, kind="stable")[:, :2]
    ends = np.take_along_axis(points[single], order[:, :, None], axis=1)
    total = float(np.hypot(*(ends[:, 0] - ends[:, 1]).T).sum())
    saddle = count == 4
    if saddle.any():
        cells = points[saddle]
        first = low_top_left[saddle]
        for a, b in ((_TOP, _LEFT), (_BOTTOM, _RIGHT)):
            total += float(np.hypot(*(cells[first, a] - cells[first, b]).T).sum())
        for a, b in ((_TOP, _RIGHT), (_BOTTOM, _LEFT)):
            total += float(np.hypot(*(cells[~first, a] - cells[~first, b]).T).sum())
    return total


_CAUCHY_DIRECTIONS = 90
_CAUCHY_NORMALS = np.column_stack(
    [
        np.sin(np.arange(_CAUCHY_DIRECTIONS) * np.pi / _CAUCHY_DIRECTIONS),
        np.cos(np.arange(_CAUCHY_DIRECTIONS) * np.pi / _CAUCHY_DIRECTIONS),
    ]
)


def hull_perimeter_from_widths(points: np.ndarray) -> float:
    """Perimeter of the convex hull of points by Cauchy's formula.

    ``perimeter = integral over [0, pi) of width(theta)``, evaluated with 90 equally
    spaced directions (relative error below 1e-3 for polygons, far less for smooth
    outlines); avoids building the hull.

    Parameters
    ----------
    points : numpy.ndarray
        ``(N, 2)`` points.

    Returns
    -------
    float
        Hull perimeter in the unit of ``points``.
    """
    if len(points) < 2:
        return 0.0
    projections = points @ _CAUCHY_NORMALS.T
    widths = projections.max(axis=0) - projections.min(axis=0)
    return float(widths.sum() * np.pi / _CAUCHY_DIRECTIONS)


def smoothed_field(crop: np.ndarray) -> np.ndarray:
    """Padded crop blurred with :data:`CONTOUR_SMOOTHING_PX` (float32).

    Falls back to the unblurred crop when the particle is too small to reach 0.5 after
    the blur. Pass a hole-filled crop to get the outer contour only.
    """
    padded = zero_pad(crop, 4, np.float32)
    field = ndi.correlate1d(padded, _SMOOTHING_KERNEL, axis=0, mode="constant")
    field = ndi.correlate1d(field, _SMOOTHING_KERNEL, axis=1, mode="constant")
    return field if field.max() > 0.5 else padded


def contour_perimeters_nm(
    crop: np.ndarray, spacing: tuple[float, float], *, holes_filled: bool = False
) -> tuple[float, float]:
    """Perimeter and convex-hull perimeter of the smoothed outer contour, in nm.

    The contour is the 0.5 iso-line of :func:`smoothed_field` (see the module docstring).

    Parameters
    ----------
    crop : numpy.ndarray of bool
        Particle crop.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    holes_filled : bool
        The caller has already filled the crop's holes (skips a fill).

    Returns
    -------
    perimeter, hull_perimeter : float
        Both in nm; ``hull_perimeter <= perimeter``.
    """
    field = smoothed_field(crop if holes_filled else ndi.binary_fill_holes(crop))
    points, present, low_top_left = _cell_crossings(field)
    points *= np.asarray(spacing, dtype=float)
    perimeter = _iso_line_length(points, present, low_top_left)
    hull_perimeter = hull_perimeter_from_widths(points[present])
    return perimeter, min(hull_perimeter, perimeter)


def convexity(
    crop: np.ndarray, spacing: tuple[float, float], *, holes_filled: bool = False
) -> float:
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
    perimeter, hull_perimeter = contour_perimeters_nm(crop, spacing, holes_filled=holes_filled)
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
    padded = zero_pad(crop, 1)
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
