"""Statistics of particle populations against numpy/scipy, and the EU nanomaterial criterion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from antema_scale.report import (
    SampleMappingError,
    assign_samples,
    bootstrap_interval,
    nanomaterial_criterion,
    number_percentiles,
    read_sample_mapping,
    summary_statistics,
)
from antema_scale.report.statistics import bootstrap_medians


@pytest.fixture()
def lognormal_particles() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = 400
    diameter = rng.lognormal(np.log(8.0), 0.25, n)
    return pd.DataFrame(
        {
            "image_id": np.repeat(["a", "b"], n // 2),
            "sample": np.repeat(["S1", "S2"], n // 2),
            "equivalent_diameter_nm": diameter,
            "min_feret_nm": diameter * 0.9,
            "max_feret_nm": diameter * 1.2,
            "area_nm2": np.pi * diameter**2 / 4,
            "circularity": rng.uniform(0.8, 1.0, n),
            "aspect_ratio": rng.uniform(1.0, 1.5, n),
        }
    )


def test_distribution_statistics_match_numpy(lognormal_particles: pd.DataFrame) -> None:
    result = summary_statistics(lognormal_particles, n_resamples=200)
    row = result.distributions.set_index("quantity").loc["equivalent_diameter_nm"]
    values = lognormal_particles["equivalent_diameter_nm"].to_numpy()
    assert row["count"] == 400
    assert row["mean"] == pytest.approx(values.mean())
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert row["median"] == pytest.approx(np.median(values))
    assert [row["d10"], row["d50"], row["d90"]] == pytest.approx(
        np.percentile(values, [10, 50, 90])
    )
    assert row["unit"] == "nm" and row["label"] == "Equivalent diameter"
    assert result.by == ()


def test_percentiles_ignore_nan_and_handle_empty() -> None:
    values = np.array([1.0, 2.0, np.nan, 3.0, 4.0, 5.0])
    assert number_percentiles(values, (10, 50, 90)) == pytest.approx([1.4, 3.0, 4.6])
    assert np.isnan(number_percentiles(np.array([np.nan]))).all()


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(10.0, 2.0, 300)
    ours = bootstrap_interval(values, n_resamples=4000, seed=1)
    reference = stats.bootstrap(
        (values,), np.mean, n_resamples=4000, method="percentile", random_state=2
    ).confidence_interval
    half_width = (reference.high - reference.low) / 2
    assert ours.mean_low == pytest.approx(reference.low, abs=0.1 * half_width)
    assert ours.mean_high == pytest.approx(reference.high, abs=0.1 * half_width)
    # normal theory: mean ± 1.96 s/sqrt(n)
    expected = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert (ours.mean_high - ours.mean_low) / 2 == pytest.approx(expected, rel=0.1)
    reference_median = stats.bootstrap(
        (values,), np.median, n_resamples=4000, method="percentile", random_state=2
    ).confidence_interval
    assert ours.median_low == pytest.approx(reference_median.low, abs=0.15)
    assert ours.median_high == pytest.approx(reference_median.high, abs=0.15)
    assert ours.median_low < np.median(values) < ours.median_high


@pytest.mark.parametrize("n", [7, 8, 40])
def test_drawn_bootstrap_medians_match_brute_force_resampling(n: int) -> None:
    values = np.sort(np.random.default_rng(n).lognormal(0.0, 1.0, n))
    brute = np.median(values[np.random.default_rng(1).integers(0, n, size=(20000, n))], axis=1)
    drawn = bootstrap_medians(values, 20000, np.random.default_rng(2))
    grid = np.unique(np.concatenate([brute, drawn]))
    brute_cdf = np.searchsorted(np.sort(brute), grid, side="right") / brute.size
    drawn_cdf = np.searchsorted(np.sort(drawn), grid, side="right") / drawn.size
    assert np.abs(brute_cdf - drawn_cdf).max() < 0.02  # same distribution (KS distance)


def test_bootstrap_is_seeded_and_chunked_consistently() -> None:
    values = np.random.default_rng(3).normal(5.0, 1.0, 50)
    first = bootstrap_interval(values, n_resamples=500, seed=11)
    again = bootstrap_interval(values, n_resamples=500, seed=11)
    other = bootstrap_interval(values, n_resamples=500, seed=12)
    assert first == again
    assert first != other


def test_bootstrap_degenerate_and_invalid_inputs() -> None:
    single = bootstrap_interval(np.array([3.0]))
    assert np.isnan(single.mean_low) and np.isnan(single.median_high)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_interval(np.ones(5), n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval(np.ones(5), confidence=1.0)


@pytest.mark.parametrize(
    ("n_in", "n_out", "expected"),
    [(60, 40, True), (40, 60, False), (50, 50, True), (49, 51, False), (0, 10, False)],
)
def test_nanomaterial_criterion_on_both_sides_of_half(
    n_in: int, n_out: int, expected: bool
) -> None:
    rng = np.random.default_rng(n_in)
    inside = rng.uniform(1.0, 100.0, n_in)
    outside = rng.uniform(101.0, 500.0, n_out)
    criterion = nanomaterial_criterion(np.concatenate([inside, outside]))
    assert criterion.n_measured == n_in + n_out
    assert criterion.n_in_range == n_in
    assert criterion.share_in_range == pytest.approx(n_in / (n_in + n_out))
    assert criterion.is_nanomaterial is expected


def test_nanomaterial_range_is_inclusive_and_ignores_nan() -> None:
    criterion = nanomaterial_criterion(np.array([0.99, 1.0, 100.0, 100.01, np.nan]))
    assert (criterion.n_measured, criterion.n_in_range) == (4, 2)
    assert criterion.is_nanomaterial
    empty = nanomaterial_criterion(np.array([]))
    assert empty.n_measured == 0 and np.isnan(empty.share_in_range) and not empty.is_nanomaterial


def test_summary_by_sample_groups_and_criterion(lognormal_particles: pd.DataFrame) -> None:
    particles = lognormal_particles.copy()
    particles.loc[particles["sample"] == "S2", "min_feret_nm"] = 150.0  # S2: not nano
    result = summary_statistics(particles, by="sample", n_resamples=100)
    assert result.by == ("sample",)
    assert set(result.distributions["sample"]) == {"S1", "S2"}
    s1 = result.distributions.query("sample == 'S1' and quantity == 'max_feret_nm'").iloc[0]
    assert s1["mean"] == pytest.approx(
        particles.loc[particles["sample"] == "S1", "max_feret_nm"].mean()
    )
    nano = result.nanomaterial.set_index("sample")
    assert bool(nano.loc["S1", "is_nanomaterial"]) and not bool(nano.loc["S2", "is_nanomaterial"])
    assert nano.loc["S2", "share_in_range"] == 0.0


def test_summary_rejects_missing_columns(lognormal_particles: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="grouping column"):
        summary_statistics(lognormal_particles, by="nope")
    with pytest.raises(KeyError, match="quantity column"):
        summary_statistics(lognormal_particles, quantities=["perimeter_nm"])


def test_samples_default_to_the_source_folder() -> None:
    particles = pd.DataFrame({"image_id": ["x", "y", "z"], "particle_id": [1, 1, 1]})
    images = pd.DataFrame(
        {
            "image_id": ["x", "y", "z"],
            "source": ["/d/gold/x.dm3", "/d/gold/y.dm3", "/d/silver/z.dm3"],
        }
    )
    assert list(assign_samples(particles, images)["sample"]) == ["gold", "gold", "silver"]
    assert list(assign_samples(particles)["sample"]) == ["all", "all", "all"]


def test_sample_mapping_csv_overrides_folders(tmp_path: Path) -> None:
    mapping = tmp_path / "samples.csv"
    mapping.write_text("image_id,sample\nx,batch-1\nz,batch-2\n", encoding="utf-8")
    particles = pd.DataFrame({"image_id": ["x", "y", "z"]})
    images = pd.DataFrame(
        {"image_id": ["x", "y", "z"], "source": ["/d/a/x.dm3", "/d/a/y.dm3", "/d/b/z.dm3"]}
    )
    assert list(assign_samples(particles, images, mapping)["sample"]) == [
        "batch-1",
        "unassigned",
        "batch-2",
    ]
    by_file = tmp_path / "by_file.csv"
    by_file.write_text("source,sample\ny.dm3,batch-3\n", encoding="utf-8")
    assert list(assign_samples(particles, images, by_file)["sample"]) == [
        "unassigned",
        "batch-3",
        "unassigned",
    ]


def test_bad_sample_mappings_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SampleMappingError, match="does not exist"):
        read_sample_mapping(tmp_path / "missing.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("file,group\nx,1\n", encoding="utf-8")
    with pytest.raises(SampleMappingError, match="needs the columns"):
        read_sample_mapping(wrong)
    twice = tmp_path / "twice.csv"
    twice.write_text("image_id,sample\nx,A\nx,B\n", encoding="utf-8")
    with pytest.raises(SampleMappingError, match="more than one sample"):
        read_sample_mapping(twice)
