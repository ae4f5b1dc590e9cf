"""Measurements of one particle crop in physical units (DESIGN.md section 1, step 7).

Every length is in nm, areas in nm²; anisotropic pixels are handled by scaling
coordinates per axis (area = count * dy * dx). See :mod:`antema_scale.particles.geometry`
for the perimeter estimators and the Feret/hull conventions.
"""

from __future__ import annotations

import math

import numpy as np

from antema_scale.particles.geometry import (
    centre_hull_px,
    contour_perimeters_nm,
    convex_area_px,
    feret_diameters_nm,
    matlab_perimeter_nm,
)


def measure_particle(
    crop: np.ndarray,
    offset: tuple[int, int],
    spacing: tuple[float, float],
    *,
    perimeter: str = "contour",
    contour_perimeters: tuple[float, float] | None = None,
    holes_filled: bool = False,
    centre_hull: np.ndarray | None = None,
    convex_area: float | None = None,
) -> dict[str, float | int]:
    """Measure one particle.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        The particle's pixels (any padding allowed).
    offset : tuple of int
        ``(row, col)`` of ``crop[0, 0]`` in the full image (px).
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    perimeter : {"contour", "matlab"}
        Perimeter estimator for ``perimeter_nm`` and ``circularity`` (convexity always
        uses the smoothed contour).
    contour_perimeters : (float, float), optional
        Already computed ``contour_perimeters_nm(crop, spacing)`` of this very crop
        (any padding, holes filled), to avoid computing it twice.
    holes_filled : bool
        The crop has no holes (skips filling them for the contour).
    centre_hull : numpy.ndarray, optional
        Already computed ``centre_hull_px`` of this particle (any crop: it is only used
        for translation-invariant quantities).
    convex_area : float, optional
        Already computed ``convex_area_px`` of this particle (px).

    Returns
    -------
    dict
        ``area_nm2`` (nm²), ``equivalent_diameter_nm``, ``min_feret_nm``,
        ``max_feret_nm``, ``perimeter_nm`` (nm), ``aspect_ratio`` (max/min Feret),
        ``circularity`` (4 pi A / P², ``inf`` when P = 0), ``convexity`` (hull perimeter /
        perimeter), ``solidity`` (area / digital convex area), ``centroid_y_nm``,
        ``centroid_x_nm`` (nm, pixel (0, 0) centre at 0), ``bbox_*`` (px, max exclusive).
    """
    dy, dx = spacing
    rows, cols = np.nonzero(crop)
    area_px = rows.size
    area_nm2 = area_px * dy * dx
    hull = centre_hull_px(crop) if centre_hull is None else centre_hull
    min_feret, max_feret = feret_diameters_nm(hull, spacing)
    if contour_perimeters is None:
        contour_perimeters = contour_perimeters_nm(crop, spacing, holes_filled=holes_filled)
    contour_perimeter, hull_perimeter = contour_perimeters
    if perimeter == "contour":
        perimeter_value = contour_perimeter
    elif perimeter == "matlab":
        perimeter_value = matlab_perimeter_nm(crop, spacing)
    else:
        raise ValueError(f"unknown perimeter estimator {perimeter!r}; use 'contour' or 'matlab'")
    circularity = 4.0 * math.pi * area_nm2 / perimeter_value**2 if perimeter_value > 0 else math.inf
    return {
        "area_nm2": area_nm2,
        "equivalent_diameter_nm": math.sqrt(4.0 * area_nm2 / math.pi),
        "min_feret_nm": min_feret,
        "max_feret_nm": max_feret,
        "aspect_ratio": max_feret / min_feret,
        "perimeter_nm": perimeter_value,
        "circularity": circularity,
        "convexity": hull_perimeter / contour_perimeter if contour_perimeter > 0 else 1.0,
        "solidity": area_px / (convex_area_px(hull) if convex_area is None else convex_area),
        "centroid_y_nm": (rows.mean() + offset[0]) * dy,
        "centroid_x_nm": (cols.mean() + offset[1]) * dx,
        "bbox_min_row": int(rows.min()) + offset[0],
        "bbox_min_col": int(cols.min()) + offset[1],
        "bbox_max_row": int(rows.max()) + 1 + offset[0],
        "bbox_max_col": int(cols.max()) + 1 + offset[1],
    }
