"""Convexity classification of regions (DESIGN.md section 1, step 5).

Convexity = perimeter of the convex hull / perimeter of the region (both of the smoothed
outer contour, see :mod:`antema_scale.particles.geometry`); 1 for a convex shape.

* ``convexity >= threshold`` (default 0.95): one particle (``"convex"``);
* ``min_convexity <= convexity < threshold``: overlapping particles (``"to_separate"``);
* below ``min_convexity`` (default 0.5), or Euler number ``<= -10`` (eleven or more
  holes): too ambiguous (``"excluded"``), reported with the reason.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from antema_scale.particles.geometry import convex_area_px, convexity

RegionClass = Literal["convex", "to_separate", "excluded"]


def is_convex_piece(
    crop: np.ndarray,
    spacing: tuple[float, float],
    *,
    threshold: float = 0.95,
    solidity_tolerance: float = 0.05,
    holes_filled: bool = False,
) -> bool:
    """UECS stop test: convexity above ``threshold`` and ``1 - area/convex_area`` small.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        One connected piece.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    threshold : float
        Convexity that must be exceeded.
    solidity_tolerance : float
        ``1 - area / convex_area`` must be below this.
    holes_filled : bool
        The piece has no holes (skips filling them for the perimeter).

    Returns
    -------
    bool
        True when the piece counts as convex.
    """
    area = int(np.count_nonzero(crop))
    if area == 0:
        return False
    if 1.0 - area / convex_area_px(crop) >= solidity_tolerance:
        return False
    return convexity(crop, spacing, holes_filled=holes_filled) > threshold


def classify_region(
    convexity_value: float,
    euler_number: int,
    *,
    threshold: float = 0.95,
    min_convexity: float | None = 0.5,
    min_euler_number: int = -9,
) -> tuple[RegionClass, str]:
    """Classify a region as convex, to separate, or excluded.

    Parameters
    ----------
    convexity_value : float
        Hull perimeter / perimeter.
    euler_number : int
        Euler number (8-connectivity): 1 - number of holes.
    threshold : float
        Convexity at or above which the region is one particle.
    min_convexity : float or None
        Convexity below which the region is excluded; None: never exclude on convexity.
    min_euler_number : int
        Regions with an Euler number below this are excluded (default -9: an Euler number
        of -10 or less, eleven or more holes, is excluded).

    Returns
    -------
    (class, reason)
        ``reason`` is empty unless the class is ``"excluded"``.
    """
    if euler_number < min_euler_number:
        return "excluded", f"too many holes (Euler number <= {min_euler_number - 1})"
    if convexity_value >= threshold:
        return "convex", ""
    if min_convexity is not None and convexity_value < min_convexity:
        return "excluded", f"convexity below {min_convexity:g}"
    return "to_separate", ""
