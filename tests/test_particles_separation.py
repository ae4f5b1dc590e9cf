"""Separation of overlapping particles against drawn truth (antema_scale.particles)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_particles_scenes import (
    chain_centres,
    cluster_mask,
    disc_mask,
    draw_disc,
    draw_polygon,
    pair_centres,
    regular_polygon,
    triangle_centres,
)

from antema_scale.particles import AnalysisOptions, analyze_mask
from antema_scale.particles.arcs import arc_separate
from antema_scale.particles.uecs import regrow_marker, uecs_markers


@pytest.mark.parametrize("overlap", [0.1, 0.2, 0.25, 0.3, 0.4])
@pytest.mark.parametrize("radius_px", [10.0, 12.5, 25.0])
def test_pair_is_split_into_two_true_sized_discs(overlap: float, radius_px: float) -> None:
    spacing = 0.2
    mask = cluster_mask(pair_centres(radius_px, overlap), radius_px)
    table = analyze_mask(mask, spacing)
    assert len(table) == 2, table.excluded
    true_diameter = 2 * radius_px * spacing
    np.testing.assert_allclose(table.particles.equivalent_diameter_nm, true_diameter, rtol=0.05)
    assert table.particles.separated.all()
    assert (table.particles.parent_region == table.particles.parent_region.iloc[0]).all()
    # the overlap belongs to both: the two masks together cover the region, and overlap
    covered = np.logical_or.reduce([crop.paste(mask.shape) for crop in table.masks])
    both = np.logical_and.reduce([crop.paste(mask.shape) for crop in table.masks])
    assert (covered == mask).mean() > 0.97
    assert both.any()


def test_two_5nm_discs_at_25_percent_overlap_are_found() -> None:
    spacing = 0.2  # 5 nm discs, 25 px across
    mask = cluster_mask(pair_centres(12.5, 0.25, angle=0.0), 12.5)
    table = analyze_mask(mask, spacing)
    np.testing.assert_allclose(table.particles.equivalent_diameter_nm, 5.0, rtol=0.05)
    assert len(table) == 2


def test_paper_uecs_splits_a_deep_neck_but_not_a_shallow_one() -> None:
    shallow = cluster_mask(pair_centres(12.5, 0.25), 12.5)  # convexity > 0.95
    paper = analyze_mask(shallow, 0.2, options=AnalysisOptions.paper())
    assert len(paper) == 1 and not paper.particles.separated.any()
    deep = cluster_mask(pair_centres(25.0, 0.1), 25.0)
    paper = analyze_mask(deep, 0.2, options=AnalysisOptions.paper())
    assert len(paper) == 2
    assert set(paper.particles.separation_method) == {"uecs"}
    assert (paper.particles.erosion_steps > 0).all()
    np.testing.assert_allclose(paper.particles.equivalent_diameter_nm, 10.0, rtol=0.05)


def test_peanut_is_not_reported_as_one_particle() -> None:
    mask = cluster_mask(pair_centres(15.0, 0.35, angle=0.9), 15.0)
    for options in (AnalysisOptions(), AnalysisOptions(separation="watershed")):
        table = analyze_mask(mask, 0.5, options=options)
        assert len(table) == 2


def _convex_shapes() -> list[tuple[str, np.ndarray]]:
    shapes = []
    for radius in (4.0, 9.0, 20.0, 45.0):
        shapes.append((f"disc{radius}", disc_mask(radius, (1.0, 1.0))))
    for axes in ((10, 15), (10, 20), (8, 24), (30, 45)):
        mask = np.zeros((2 * axes[1] + 12, 2 * axes[1] + 12), dtype=bool)
        from skimage.draw import ellipse

        rr, cc = ellipse(axes[1] + 6, axes[1] + 6, axes[0], axes[1], rotation=0.5, shape=mask.shape)
        mask[rr, cc] = True
        shapes.append((f"ellipse{axes}", mask))
    for sides, radius in ((4, 12.0), (4, 40.0), (6, 10.0), (6, 35.0), (3, 30.0), (8, 20.0)):
        mask = np.zeros((int(2 * radius + 12),) * 2, dtype=bool)
        draw_polygon(mask, regular_polygon((radius + 6, radius + 6), radius, sides, angle=0.2))
        shapes.append((f"polygon{sides}-{radius}", mask))
    rectangle = np.zeros((40, 90), dtype=bool)
    rectangle[10:30, 5:85] = True
    shapes.append(("rectangle", rectangle))
    return shapes


@pytest.mark.parametrize("separation", ["hybrid", "uecs", "uecs-paper", "watershed"])
def test_single_convex_particle_is_never_split(separation: str) -> None:
    options = (
        AnalysisOptions.paper()
        if separation == "uecs-paper"
        else AnalysisOptions(separation=separation)
    )
    for name, mask in _convex_shapes():
        for spacing in (0.1, (0.1, 0.1)):
            table = analyze_mask(mask, spacing, options=options)
            assert len(table) == 1, name
            assert not table.particles.separated.iloc[0], name
            assert len(table.excluded) == 0, name


@pytest.mark.parametrize("overlap", [0.15, 0.3])
def test_triplet_gives_three_particles(overlap: float) -> None:
    radius = 14.0
    mask = cluster_mask(triangle_centres(radius, overlap), radius)
    table = analyze_mask(mask, 0.25)
    assert len(table) == 3
    np.testing.assert_allclose(table.particles.equivalent_diameter_nm, 2 * radius * 0.25, rtol=0.05)
    assert set(table.particles.separation_method) == {"arcs"}  # one distance-map core only


@pytest.mark.parametrize(("count", "overlap"), [(3, 0.2), (4, 0.25), (5, 0.15)])
def test_chain_gives_one_particle_per_disc(count: int, overlap: float) -> None:
    radius = 12.0
    mask = cluster_mask(chain_centres(radius, overlap, count), radius)
    table = analyze_mask(mask, 0.25)
    assert len(table) == count
    np.testing.assert_allclose(table.particles.equivalent_diameter_nm, 2 * radius * 0.25, rtol=0.08)


def test_none_mode_flags_nonconvex_regions() -> None:
    mask = cluster_mask(pair_centres(12.0, 0.1), 12.0)
    table = analyze_mask(mask, 0.3, options=AnalysisOptions(separation="none"))
    assert len(table) == 1
    row = table.particles.iloc[0]
    assert row.nonconvex and row.convexity < 0.95 and not row.separated
    assert row.separation_method == "none"


def test_paper_mode_excludes_low_convexity_regions_with_reason() -> None:
    mask = np.zeros((60, 70), dtype=bool)
    mask[5:10, 5:65] = True
    for col in range(6, 64, 6):
        mask[10:50, col : col + 2] = True  # a comb: convexity well below 0.5
    table = analyze_mask(mask, 0.5, options=AnalysisOptions.paper())
    assert len(table) == 0
    assert list(table.excluded.reason) == ["convexity below 0.5"]
    assert table.excluded.convexity.iloc[0] < 0.5


def test_too_many_holes_is_excluded() -> None:
    mask = np.zeros((60, 60), dtype=bool)
    mask[5:55, 5:55] = True
    for k in range(12):
        r, c = 10 + 4 * (k // 4) * 3, 10 + 10 * (k % 4)
        mask[r : r + 3, c : c + 3] = False
    table = analyze_mask(mask, 1.0)  # 3x3 px holes of 1 nm² are far above 0.5 nm
    assert list(table.excluded.reason) == ["too many holes (Euler number <= -10)"]


def test_uecs_markers_and_regrowth_stay_inside_region() -> None:
    region = np.pad(cluster_mask(pair_centres(20.0, 0.1), 20.0), 2)
    markers = uecs_markers(region, (1.0, 1.0), min_marker_px=30)
    assert len(markers) == 2
    for marker in markers:
        grown = regrow_marker(marker, region)
        assert not (grown & ~region).any()
        assert grown.sum() == pytest.approx(math.pi * 400, rel=0.06)


def test_anisotropic_pair_is_split() -> None:
    spacing = (0.2, 0.1)
    mask = np.zeros((60, 140), dtype=bool)
    draw_disc(mask, (30.0, 45.0), 2.5, spacing)
    draw_disc(mask, (30.0, 45.0 + 1.5 * 25), 2.5, spacing)  # 25 % overlap along x
    table = analyze_mask(mask, spacing)
    assert len(table) == 2
    np.testing.assert_allclose(table.particles.equivalent_diameter_nm, 5.0, rtol=0.05)


def test_uecs_mode_falls_back_when_erosion_collapses() -> None:
    mask = cluster_mask(triangle_centres(14.0, 0.15), 14.0)
    paper = analyze_mask(mask, 0.25, options=AnalysisOptions.paper())
    assert len(paper) < 3  # the paper's UECS collapses into one marker
    table = analyze_mask(mask, 0.25, options=AnalysisOptions(separation="uecs"))
    assert len(table) == 3
    assert set(table.particles.separation_method) <= {"arcs", "watershed", "uecs"}


def test_default_is_hybrid_and_paper_preset() -> None:
    assert AnalysisOptions().separation == "hybrid"
    paper = AnalysisOptions.paper()
    assert paper.separation == "uecs-paper" and paper.min_convexity == 0.5
    assert AnalysisOptions.paper(perimeter="matlab").perimeter == "matlab"


def test_arc_split_only_for_round_outlines() -> None:
    triangle = np.pad(cluster_mask(triangle_centres(15.0, 0.2), 15.0), 2)
    pieces = arc_separate(triangle, (0.5, 0.5))
    assert pieces is not None and len(pieces) == 3
    for piece in pieces:
        assert 2 * math.sqrt(piece.sum() / math.pi) == pytest.approx(30.0, rel=0.05)
    l_shape = np.zeros((60, 60), dtype=bool)
    l_shape[5:55, 5:20] = True
    l_shape[40:55, 5:55] = True
    assert arc_separate(l_shape, (0.5, 0.5)) is None
    assert arc_separate(np.pad(disc_mask(10.0, (1.0, 1.0)), 2), (1.0, 1.0)) is None
