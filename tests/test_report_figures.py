"""Figures: scale bars, distributions, per-image overviews and the particle gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from test_report_synthetic import SyntheticRun, build_results_dir

from antema_scale.report.figures import (
    format_mean_std,
    histogram_bins,
    histogram_range,
    plot_shape_distributions,
    plot_size_distributions,
    save_figure,
)
from antema_scale.report.micrograph_figures import (
    format_length_nm,
    gallery_selection,
    nice_scale_bar_length,
    particle_outlines,
    plot_image_overview,
    plot_particle_gallery,
)


@pytest.fixture()
def synthetic_run(tmp_path: Path) -> SyntheticRun:
    return build_results_dir(tmp_path)


@pytest.mark.parametrize(
    ("width_nm", "expected"),
    [
        (160.0, 20.0),
        (100.0, 20.0),
        (512.0, 100.0),
        (30.0, 5.0),
        (7.0, 1.0),
        (4000.0, 500.0),
        (0.9, 0.1),
    ],
)
def test_scale_bar_is_a_round_length_near_a_fifth_of_the_field(
    width_nm: float, expected: float
) -> None:
    assert nice_scale_bar_length(width_nm) == pytest.approx(expected)


def test_scale_bar_rejects_a_bad_field_and_labels_units() -> None:
    with pytest.raises(ValueError, match="positive"):
        nice_scale_bar_length(0.0)
    assert format_length_nm(2000.0) == "2 µm"
    assert format_length_nm(50.0) == "50 nm"


def test_histogram_bins_avoid_a_comb_on_quantised_lengths() -> None:
    rng = np.random.default_rng(0)
    smooth = rng.normal(10.0, 1.0, 3000)
    auto = len(np.histogram_bin_edges(smooth, bins="auto", range=(6.0, 14.0))) - 1
    assert len(histogram_bins(smooth, 6.0, 14.0)) - 1 == min(auto, 60)
    # lengths on a 0.33 nm pixel grid: fine bins alternate full and nearly empty
    quantised = np.round(smooth / 0.33) * 0.33 + rng.normal(0, 0.005, smooth.size)

    def dip_share(counts: np.ndarray) -> float:
        neighbours = (counts[:-2] + counts[2:]) / 2.0
        considered = neighbours >= 5
        return float(((counts[1:-1] < 0.5 * neighbours) & considered).sum() / considered.sum())

    fine, _ = np.histogram(quantised, bins=min(auto, 60), range=(6.0, 14.0))
    assert dip_share(fine) > 0.2  # the comb numpy's "auto" bins would draw
    edges = histogram_bins(quantised, 6.0, 14.0)
    counts, _ = np.histogram(quantised, bins=edges)
    assert 8 <= len(edges) - 1 < min(auto, 60)
    assert dip_share(counts) <= 0.2
    assert histogram_range(np.array([5.0, 5.0])) == (4.5, 5.5)


def test_mean_std_text() -> None:
    assert format_mean_std(np.array([1.4, 2.1, 2.8])) == "2.1 ± 0.7 nm"
    assert format_mean_std(np.array([np.nan])) == "no data"


def test_distribution_figures_are_written_non_empty(
    synthetic_run: SyntheticRun, tmp_path: Path
) -> None:
    for name, figure in (
        ("sizes", plot_size_distributions(synthetic_run.particles, title="all")),
        ("shapes", plot_shape_distributions(synthetic_run.particles)),
    ):
        paths = save_figure(figure, tmp_path / "figs" / name)
        assert [path.suffix for path in paths] == [".png", ".svg"]
        assert all(path.stat().st_size > 5_000 for path in paths)
        assert "<svg" in paths[1].read_text(encoding="utf-8")[:2000]
        pixels = imread(paths[0])
        assert pixels.shape[0] > 200 and pixels.std() > 0.01  # not a blank canvas


def test_outlines_separate_single_separated_and_excluded(synthetic_run: SyntheticRun) -> None:
    record = synthetic_run.records["img-a"]
    particles = synthetic_run.particles.query("image_id == 'img-a'")
    outlines = particle_outlines(
        particles, record.pixel_size_nm, mask=record.mask, particle_masks=record.particle_masks
    )
    assert len(outlines.single) == 12  # one closed contour per isolated disc
    assert len(outlines.separated) == 2
    assert len(outlines.separation_lines) == 1  # the lens where the pair overlaps
    assert len(outlines.excluded) == 1  # the unmeasured chain
    lens = outlines.separation_lines[0]
    assert 180 < lens[:, 0].mean() < 220 and 60 < lens[:, 1].mean() < 80


def test_outlines_without_crops_fall_back_to_mask_regions_and_boxes(
    synthetic_run: SyntheticRun,
) -> None:
    record = synthetic_run.records["img-a"]
    particles = synthetic_run.particles.query("image_id == 'img-a'")
    outlines = particle_outlines(particles, record.pixel_size_nm, mask=record.mask)
    assert len(outlines.single) == 12
    assert len(outlines.separated_boxes) == 2 and not outlines.separated
    assert len(outlines.excluded) == 1


def test_image_overview_figure(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    record = synthetic_run.records["img-b"]
    particles = synthetic_run.particles.query("image_id == 'img-b'")
    paths = save_figure(plot_image_overview(record, particles), tmp_path / "img-b", dpi=80)
    assert all(path.stat().st_size > 10_000 for path in paths)
    svg = paths[1].read_text(encoding="utf-8")
    assert "20 nm" in svg  # the scale bar label: 320 px × 0.5 nm = 160 nm field


def test_gallery_picks_extremes_and_draws(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    particles = synthetic_run.particles
    selection = gallery_selection(particles, per_row=3)
    assert list(selection) == ["Largest", "Smallest", "Least convex"]
    assert (
        selection["Largest"]["equivalent_diameter_nm"].iloc[0]
        == particles["equivalent_diameter_nm"].max()
    )
    assert (
        selection["Smallest"]["equivalent_diameter_nm"].iloc[0]
        == particles["equivalent_diameter_nm"].min()
    )
    figure = plot_particle_gallery(particles, synthetic_run.load_image, per_row=3)
    assert figure is not None
    assert save_figure(figure, tmp_path / "gallery", formats=("png",))[0].stat().st_size > 10_000
    assert plot_particle_gallery(particles, lambda image_id: None) is None
    assert plot_particle_gallery(pd.DataFrame({"image_id": []}), synthetic_run.load_image) is None
