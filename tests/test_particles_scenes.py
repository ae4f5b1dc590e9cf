"""Drawn particle scenes with exact truth for the particle-analysis tests.

Shapes are rasterised by pixel-centre inclusion (a pixel belongs to a disc when its centre
is inside), so the truth is the continuous shape. Pairs are placed at a *linear* overlap
``o``: centre distance ``d = (1 - o) * (r1 + r2)``.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.draw import ellipse, polygon


def draw_disc(
    mask: np.ndarray, centre: tuple[float, float], radius_nm: float, spacing: tuple[float, float]
) -> None:
    """Draw a disc (centre in px, radius in nm) into ``mask`` in place, anisotropy-aware."""
    rr, cc = ellipse(
        centre[0], centre[1], radius_nm / spacing[0], radius_nm / spacing[1], shape=mask.shape
    )
    mask[rr, cc] = True


def draw_polygon(mask: np.ndarray, vertices: np.ndarray) -> None:
    """Draw a polygon with ``(N, 2)`` ``(row, col)`` vertices in px."""
    rr, cc = polygon(vertices[:, 0], vertices[:, 1], shape=mask.shape)
    mask[rr, cc] = True


def regular_polygon(
    centre: tuple[float, float], radius_px: float, sides: int, angle: float = 0.0
) -> np.ndarray:
    """Vertices of a regular polygon (circumradius in px)."""
    t = angle + 2 * math.pi * np.arange(sides) / sides
    return np.column_stack([centre[0] + radius_px * np.sin(t), centre[1] + radius_px * np.cos(t)])


def disc_mask(radius_nm: float, spacing: tuple[float, float], margin_px: int = 5) -> np.ndarray:
    """An image holding one disc in its middle, clear of the border."""
    half = (
        math.ceil(radius_nm / spacing[0]) + margin_px,
        math.ceil(radius_nm / spacing[1]) + margin_px,
    )
    mask = np.zeros((2 * half[0] + 1, 2 * half[1] + 1), dtype=bool)
    draw_disc(mask, (half[0] + 0.3, half[1] + 0.2), radius_nm, spacing)
    return mask


def cluster_mask(
    centres_px: list[tuple[float, float]], radius_px: float, margin_px: int = 6
) -> np.ndarray:
    """Discs of equal radius at the given centres (px), shifted clear of the border."""
    centres = np.asarray(centres_px, dtype=float)
    shift = margin_px + radius_px - centres.min(axis=0)
    centres = centres + shift
    shape = tuple(int(v) for v in np.ceil(centres.max(axis=0) + radius_px + margin_px))
    mask = np.zeros(shape, dtype=bool)
    for centre in centres:
        draw_disc(mask, (centre[0], centre[1]), radius_px, (1.0, 1.0))
    return mask


def pair_centres(radius_px: float, overlap: float, angle: float = 0.3) -> list[tuple[float, float]]:
    """Two centres at linear overlap ``overlap`` (0 = touching, 1 = coincident)."""
    d = 2 * radius_px * (1 - overlap)
    return [(0.0, 0.0), (d * math.sin(angle), d * math.cos(angle))]


def chain_centres(radius_px: float, overlap: float, count: int) -> list[tuple[float, float]]:
    """``count`` discs in a slightly bent chain, neighbours at linear overlap ``overlap``."""
    d = 2 * radius_px * (1 - overlap)
    angles = 0.25 * np.sin(np.arange(count))
    return [
        (float(np.sum(d * np.sin(angles[:k]))), float(np.sum(d * np.cos(angles[:k]))))
        for k in range(count)
    ]


def triangle_centres(radius_px: float, overlap: float) -> list[tuple[float, float]]:
    """Three discs on an equilateral triangle, each pair at linear overlap ``overlap``."""
    d = 2 * radius_px * (1 - overlap)
    return [(0.0, 0.0), (0.0, d), (d * math.sqrt(3) / 2, d / 2)]


def test_disc_drawing_matches_area() -> None:
    mask = disc_mask(5.0, (0.1, 0.1))
    assert abs(mask.sum() * 0.01 / (math.pi * 25) - 1) < 0.01


def test_pair_centres_distance() -> None:
    a, b = pair_centres(10.0, 0.25)
    assert math.isclose(math.dist(a, b), 15.0)


def test_cluster_mask_keeps_discs_inside() -> None:
    mask = cluster_mask(triangle_centres(8.0, 0.2), 8.0)
    assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any()
