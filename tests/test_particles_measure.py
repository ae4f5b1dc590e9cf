"""Measurements against drawn shapes with known size (antema_scale.particles)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_particles_scenes import disc_mask, draw_polygon, regular_polygon

from antema_scale.particles import AnalysisOptions, analyze_mask
from antema_scale.particles.geometry import (
    centre_hull_px,
    convex_area_px,
    convexity,
    feret_diameters_nm,
    matlab_perimeter_nm,
    perimeter_nm,
    trace_outer_boundary,
)


@pytest.mark.parametrize("spacing", [0.05, 0.1])
@pytest.mark.parametrize("diameter_nm", [1.0, 2.0, 5.0, 10.0, 20.0, 50.0])
def test_isolated_disc_equivalent_diameter_within_2_percent(
    diameter_nm: float, spacing: float
) -> None:
    if diameter_nm / spacing > 600:
        pytest.skip("keeps the default suite fast")
    mask = disc_mask(diameter_nm / 2, (spacing, spacing))
    table = analyze_mask(mask, spacing)
    assert len(table) == 1
    row = table.particles.iloc[0]
    assert row.equivalent_diameter_nm == pytest.approx(diameter_nm, rel=0.02)
    # pixel-corner convention (as MATLAB): Feret of a digital disc exceeds d by < 1.5 px
    assert diameter_nm * 0.99 <= row.min_feret_nm <= diameter_nm * 1.01 + 1.5 * spacing
    assert diameter_nm * 0.99 <= row.max_feret_nm <= diameter_nm * 1.01 + 1.5 * spacing
    assert row.area_nm2 == pytest.approx(math.pi * diameter_nm**2 / 4, rel=0.04)
    assert row.convexity > 0.98
    assert row.solidity > 0.97
    assert not row.separated and row.separation_method == "none"


@pytest.mark.parametrize("spacing", [0.25, 0.5, 1.0])
def test_discs_at_coarse_pixels_within_2_percent(spacing: float) -> None:
    for diameter_nm in (10 * spacing, 20 * spacing, 50 * spacing):
        mask = disc_mask(diameter_nm / 2, (spacing, spacing))
        row = analyze_mask(mask, spacing).particles.iloc[0]
        assert row.equivalent_diameter_nm == pytest.approx(diameter_nm, rel=0.02)


def test_disc_perimeter_and_circularity() -> None:
    mask = disc_mask(10.0, (0.25, 0.25))
    row = analyze_mask(mask, 0.25).particles.iloc[0]
    assert row.perimeter_nm == pytest.approx(2 * math.pi * 10.0, rel=0.02)
    assert row.circularity == pytest.approx(1.0, abs=0.04)


@pytest.mark.parametrize(("height", "width"), [(10, 10), (7, 30), (40, 15), (1, 12)])
def test_axis_aligned_rectangle_feret(height: int, width: int) -> None:
    spacing = 0.2
    mask = np.zeros((height + 10, width + 10), dtype=bool)
    mask[5 : 5 + height, 5 : 5 + width] = True
    row = analyze_mask(mask, spacing).particles.iloc[0]
    assert row.min_feret_nm == pytest.approx(min(height, width) * spacing)
    assert row.max_feret_nm == pytest.approx(math.hypot(height, width) * spacing)
    assert row.aspect_ratio == pytest.approx(math.hypot(height, width) / min(height, width))
    assert row.area_nm2 == pytest.approx(height * width * spacing**2)
    assert row.bbox_min_row == 5 and row.bbox_max_row == 5 + height
    assert row.bbox_min_col == 5 and row.bbox_max_col == 5 + width
    assert row.solidity == pytest.approx(1.0)


def test_rotated_square_feret() -> None:
    side = 40.0
    mask = np.zeros((90, 90), dtype=bool)
    draw_polygon(mask, regular_polygon((45.0, 45.0), side / math.sqrt(2), 4, angle=0.3))
    row = analyze_mask(mask, 1.0).particles.iloc[0]
    # pixel-corner convention: a rotated digital square is up to ~1.5 px wider
    assert side - 0.5 <= row.min_feret_nm <= side + 1.5
    assert side * math.sqrt(2) - 1.5 <= row.max_feret_nm <= side * math.sqrt(2) + 1.5
    assert row.perimeter_nm == pytest.approx(4 * side, rel=0.02)


def test_one_pixel_particle_has_feret_of_one_pixel() -> None:
    mask = np.zeros((7, 7), dtype=bool)
    mask[3, 3] = True
    table = analyze_mask(mask, 1.0)
    row = table.particles.iloc[0]
    assert row.min_feret_nm == pytest.approx(1.0)
    assert row.max_feret_nm == pytest.approx(math.sqrt(2))
    assert row.area_nm2 == 1.0
    assert row.centroid_y_nm == 3.0 and row.centroid_x_nm == 3.0
    assert np.isfinite(row.circularity)


def test_anisotropic_pixels_give_nm_lengths() -> None:
    spacing = (0.2, 0.1)
    mask = disc_mask(3.0, spacing)
    row = analyze_mask(mask, spacing).particles.iloc[0]
    assert row.equivalent_diameter_nm == pytest.approx(6.0, rel=0.02)
    assert 6.0 * 0.99 <= row.min_feret_nm <= 6.0 * 1.01 + 1.5 * 0.2
    assert 6.0 * 0.99 <= row.max_feret_nm <= 6.0 * 1.01 + 1.5 * 0.2
    assert row.perimeter_nm == pytest.approx(6.0 * math.pi, rel=0.03)
    assert row.convexity > 0.97
    centre = (np.argwhere(mask).mean(axis=0) * spacing).tolist()
    assert row.centroid_y_nm == pytest.approx(centre[0])
    assert row.centroid_x_nm == pytest.approx(centre[1])


def test_anisotropic_rectangle() -> None:
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:25, 5:15] = True  # 20 rows x 10 cols
    row = analyze_mask(mask, (0.1, 0.5)).particles.iloc[0]
    assert row.min_feret_nm == pytest.approx(2.0)  # 20 rows * 0.1 nm
    assert row.max_feret_nm == pytest.approx(math.hypot(2.0, 5.0))
    assert row.area_nm2 == pytest.approx(200 * 0.05)


def test_matlab_perimeter_of_square_and_pixel() -> None:
    square = np.zeros((12, 12), dtype=bool)
    square[2:10, 2:10] = True
    assert matlab_perimeter_nm(square, (1.0, 1.0)) == pytest.approx(28.0)  # 4 * (8 - 1)
    pixel = np.zeros((3, 3), dtype=bool)
    pixel[1, 1] = True
    assert matlab_perimeter_nm(pixel, (1.0, 1.0)) == 0.0
    diamond = np.zeros((7, 7), dtype=bool)
    diamond[[1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 5], [3, 2, 3, 4, 1, 2, 3, 4, 5, 2, 3, 4, 3]] = True
    assert matlab_perimeter_nm(diamond, (1.0, 1.0)) == pytest.approx(8 * math.sqrt(2))


def test_trace_visits_thin_line_twice() -> None:
    line = np.zeros((3, 7), dtype=bool)
    line[1, 1:6] = True
    assert len(trace_outer_boundary(line)) == 8
    assert matlab_perimeter_nm(line, (1.0, 1.0)) == pytest.approx(8.0)


def test_matlab_option_changes_perimeter_and_circularity() -> None:
    mask = disc_mask(0.6, (0.2, 0.2))  # radius 3 px
    default = analyze_mask(mask, 0.2).particles.iloc[0]
    matlab = analyze_mask(mask, 0.2, options=AnalysisOptions(perimeter="matlab")).particles.iloc[0]
    expected = matlab_perimeter_nm(mask, (0.2, 0.2))
    assert matlab.perimeter_nm == pytest.approx(expected)
    assert matlab.circularity == pytest.approx(4 * math.pi * matlab.area_nm2 / expected**2)
    assert matlab.perimeter_nm < default.perimeter_nm  # centre-to-centre is shorter
    assert default.circularity == pytest.approx(1.0, abs=0.05)
    assert matlab.circularity > 1.0  # MATLAB's known over-estimate for small discs
    assert matlab.convexity == default.convexity


def test_convex_area_counts_pixel_centres_exactly() -> None:
    triangle = np.tril(np.ones((6, 6), dtype=bool))
    assert convex_area_px(triangle) == 21
    l_shape = np.zeros((5, 5), dtype=bool)
    l_shape[:, 0] = True
    l_shape[4, :] = True
    assert convex_area_px(l_shape) == 15


def test_geometry_helpers_on_square() -> None:
    square = np.zeros((14, 14), dtype=bool)
    square[2:12, 2:12] = True
    hull = centre_hull_px(square)
    assert len(hull) == 4
    assert feret_diameters_nm(hull, (1.0, 1.0)) == pytest.approx((10.0, 10 * math.sqrt(2)))
    assert feret_diameters_nm(hull, (0.5, 2.0)) == pytest.approx((5.0, math.hypot(5.0, 20.0)))
    line = np.zeros((5, 12), dtype=bool)
    line[2, 1:11] = True
    assert feret_diameters_nm(centre_hull_px(line), (1.0, 1.0)) == pytest.approx(
        (1.0, math.hypot(1.0, 10.0))
    )
    assert convex_area_px(line) == 10
    assert convexity(square, (1.0, 1.0)) == pytest.approx(1.0, abs=1e-3)
    assert perimeter_nm(square, (1.0, 1.0)) == pytest.approx(40.0, rel=0.07)
    with pytest.raises(ValueError, match="unknown perimeter estimator"):
        perimeter_nm(square, (1.0, 1.0), "bogus")
