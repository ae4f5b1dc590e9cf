"""Summary statistics of particle populations: moments, number percentiles, bootstrap CIs.

All statistics are *by number*: every particle counts once, whatever its size. Lengths are
in nm and areas in nm², as in the particle table (see ``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Quantities summarised by default: particle-table column -> (label, unit).
SUMMARY_QUANTITIES: dict[str, tuple[str, str]] = {
    "equivalent_diameter_nm": ("Equivalent diameter", "nm"),
    "min_feret_nm": ("Min Feret", "nm"),
    "max_feret_nm": ("Max Feret", "nm"),
    "area_nm2": ("Area", "nm²"),
    "circularity": ("Circularity", ""),
    "aspect_ratio": ("Aspect ratio", ""),
}

#: Size range of the EU nanomaterial definition (Commission Recommendation 2022/C 229/01), nm.
EU_NANO_RANGE_NM: tuple[float, float] = (1.0, 100.0)

#: Share by number above which (inclusive) a material is a nanomaterial under that definition.
EU_NANO_THRESHOLD: float = 0.5

#: Bootstrap resamples are drawn in blocks of at most this many values, to bound memory.
_BOOTSTRAP_BLOCK_VALUES = 4_000_000

DISTRIBUTION_COLUMNS: tuple[str, ...] = (
    "quantity",
    "label",
    "unit",
    "count",
    "mean",
    "std",
    "median",
    "d10",
    "d50",
    "d90",
    "mean_ci_low",
    "mean_ci_high",
    "median_ci_low",
    "median_ci_high",
)

NANOMATERIAL_COLUMNS: tuple[str, ...] = (
    "n_measured",
    "n_in_range",
    "share_in_range",
    "is_nanomaterial",
)


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile bootstrap confidence intervals of the mean and the median.

    Attributes
    ----------
    mean_low, mean_high : float
        Bounds of the interval of the mean, in the unit of the data.
    median_low, median_high : float
        Bounds of the interval of the median, in the unit of the data.
    """

    mean_low: float
    mean_high: float
    median_low: float
    median_high: float


@dataclass(frozen=True)
class NanomaterialCriterion:
    """The EU nanomaterial criterion evaluated on one population.

    Attributes
    ----------
    n_measured : int
        Particles with a finite smallest external dimension (min Feret).
    n_in_range : int
        Of those, particles whose min Feret lies in 1–100 nm (inclusive).
    share_in_range : float
        ``n_in_range / n_measured`` (NaN for an empty population).
    is_nanomaterial : bool
        ``share_in_range >= 0.5`` (False for an empty population).
    """

    n_measured: int
    n_in_range: int
    share_in_range: float
    is_nanomaterial: bool


@dataclass(frozen=True)
class SummaryStatistics:
    """Statistics of a particle population, overall or per group.

    Attributes
    ----------
    distributions : pandas.DataFrame
        One row per (group, quantity) with the columns in ``DISTRIBUTION_COLUMNS`` preceded
        by the grouping columns: ``count`` (finite values), ``mean``, ``std`` (sample
        standard deviation, ddof=1), ``median``, ``d10``/``d50``/``d90`` (10/50/90 %
        quantiles by number, linear interpolation) and the bootstrap 95 % interval bounds.
        Values are in the quantity's ``unit`` (nm, nm², or dimensionless).
    nanomaterial : pandas.DataFrame
        One row per group with the columns in ``NANOMATERIAL_COLUMNS``.
    by : tuple of str
        The grouping columns (empty for the whole population).
    """

    distributions: pd.DataFrame
    nanomaterial: pd.DataFrame
    by: tuple[str, ...]


def number_percentiles(
    values: np.ndarray, percents: Sequence[float] = (10.0, 50.0, 90.0)
) -> np.ndarray:
    """Quantiles by number (D10, D50, D90 for diameters).

    Parameters
    ----------
    values : numpy.ndarray
        One value per particle (e.g. equivalent diameter in nm); NaNs are ignored.
    percents : sequence of float
        Percentages in 0..100.

    Returns
    -------
    numpy.ndarray
        The quantiles, in the unit of ``values``; all NaN when no finite value is given.
    """
    finite = _finite(values)
    if finite.size == 0:
        return np.full(len(percents), np.nan)
    return np.percentile(finite, percents)


def bootstrap_interval(
    values: np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile bootstrap confidence intervals of the mean and the median.

    Resampling is vectorised: resamples for the mean are drawn as index matrices in blocks
    (at most four million values at a time) so that memory stays bounded for large
    populations; medians of resamples are drawn directly from their exact distribution
    (:func:`bootstrap_medians`), which costs nothing per particle.

    Parameters
    ----------
    values : numpy.ndarray
        One value per particle; NaNs are ignored.
    n_resamples : int
        Number of bootstrap resamples.
    confidence : float
        Confidence level in (0, 1).
    seed : int
        Seed of the random generator; the same seed gives the same interval.

    Returns
    -------
    BootstrapInterval
        Interval bounds in the unit of ``values``; NaN with fewer than two values.

    Raises
    ------
    ValueError
        If ``n_resamples < 1`` or ``confidence`` is not in (0, 1).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    finite = _finite(values)
    n = finite.size
    if n < 2:
        return BootstrapInterval(np.nan, np.nan, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = bootstrap_means(finite[:, np.newaxis], n_resamples, rng)[:, 0]
    medians = bootstrap_medians(np.sort(finite), n_resamples, rng)
    return _interval_from_samples(means, medians, confidence)


def _interval_from_samples(
    means: np.ndarray, medians: np.ndarray, confidence: float
) -> BootstrapInterval:
    tail = 100.0 * (1.0 - confidence) / 2.0
    mean_low, mean_high = np.percentile(means, [tail, 100.0 - tail])
    median_low, median_high = np.percentile(medians, [tail, 100.0 - tail])
    return BootstrapInterval(
        float(mean_low), float(mean_high), float(median_low), float(median_high)
    )


def bootstrap_means(columns: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of bootstrap resamples of particles, for several quantities at once.

    Every resample draws particles (rows) with replacement; its draw counts per particle
    (one ``bincount`` over a block of index matrices) times the columns give the means of
    all quantities in one matrix product. Index matrices are drawn in blocks of at most
    four million values.

    Parameters
    ----------
    columns : numpy.ndarray
        ``(n_particles, n_quantities)`` finite values.
    n_resamples : int
        Number of resamples.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    numpy.ndarray
        ``(n_resamples, n_quantities)`` resample means, in the units of the columns.
    """
    n, n_quantities = columns.shape
    means = np.empty((n_resamples, n_quantities))
    index_type = np.int32 if n < 2**31 else np.int64
    block = max(1, _BOOTSTRAP_BLOCK_VALUES // n)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        size = stop - start
        rows = rng.integers(0, n, size=(size, n), dtype=index_type).astype(np.int64)
        rows += np.arange(size, dtype=np.int64)[:, np.newaxis] * n
        counts = np.bincount(rows.ravel(), minlength=size * n).reshape(size, n)
        means[start:stop] = counts @ columns / n
    return means


def bootstrap_medians(
    sorted_values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Medians of bootstrap resamples, drawn without building the resamples.

    A resample of ``n`` values is ``sorted_values[floor(n * U_i)]`` for ``n`` uniform
    ``U_i``, so its k-th smallest value is ``sorted_values[floor(n * U_(k))]``, where the
    k-th order statistic of ``n`` uniforms follows Beta(k, n - k + 1). For even ``n`` the
    next order statistic is ``U_(k) + (1 - U_(k)) * Beta(1, n - k)`` (the smallest of the
    remaining uniforms). The medians have exactly the bootstrap distribution, at O(1) cost
    per resample instead of O(n).

    Parameters
    ----------
    sorted_values : numpy.ndarray
        The sample, sorted ascending, finite, at least one value.
    n_resamples : int
        Number of resample medians to draw.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    numpy.ndarray
        ``n_resamples`` medians (numpy's convention: the mean of the two middle values for
        even ``n``), in the unit of the values.
    """
    n = sorted_values.size
    k = (n + 1) // 2
    lower_u = rng.beta(k, n - k + 1, size=n_resamples)
    lower = sorted_values[np.minimum((lower_u * n).astype(np.int64), n - 1)]
    if n % 2 == 1:
        return lower
    upper_u = lower_u + (1.0 - lower_u) * rng.beta(1, n - k, size=n_resamples)
    upper = sorted_values[np.minimum((upper_u * n).astype(np.int64), n - 1)]
    return (lower + upper) / 2.0


def nanomaterial_criterion(
    min_feret_nm: np.ndarray,
    *,
    size_range_nm: tuple[float, float] = EU_NANO_RANGE_NM,
    threshold: float = EU_NANO_THRESHOLD,
) -> NanomaterialCriterion:
    """Evaluate the EU nanomaterial criterion on one population.

    A material is a nanomaterial when at least 50 % of its particles, by number, have
    their smallest external dimension in 1–100 nm (Commission Recommendation
    2022/C 229/01). The smallest external dimension of a projected particle is taken as
    its minimum Feret diameter.

    Parameters
    ----------
    min_feret_nm : numpy.ndarray
        Minimum Feret diameter of every particle, in nm; NaNs are ignored.
    size_range_nm : tuple of float
        Inclusive size range in nm.
    threshold : float
        Share by number (0..1) at or above which the criterion is met.

    Returns
    -------
    NanomaterialCriterion
        Counts, share and verdict.
    """
    finite = _finite(min_feret_nm)
    low, high = size_range_nm
    n_in_range = int(np.count_nonzero((finite >= low) & (finite <= high)))
    if finite.size == 0:
        return NanomaterialCriterion(0, 0, float("nan"), False)
    share = n_in_range / finite.size
    return NanomaterialCriterion(int(finite.size), n_in_range, share, bool(share >= threshold))


def describe_values(
    values: np.ndarray,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    interval: BootstrapInterval | None = None,
) -> dict[str, float]:
    """Count, mean, std, median, D10/D50/D90 and bootstrap intervals of one quantity.

    Parameters
    ----------
    values : numpy.ndarray
        One value per particle; NaNs are ignored.
    n_resamples, confidence, seed
        Passed to :func:`bootstrap_interval`.
    interval : BootstrapInterval, optional
        Intervals computed already (e.g. jointly with other quantities); skips the bootstrap.

    Returns
    -------
    dict
        Keys ``count, mean, std, median, d10, d50, d90, mean_ci_low, mean_ci_high,
        median_ci_low, median_ci_high``, values in the unit of ``values`` (``std`` with
        ddof=1; NaN where undefined).
    """
    finite = _finite(values)
    n = finite.size
    d10, d50, d90 = number_percentiles(finite)
    if interval is None:
        interval = bootstrap_interval(
            finite, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
    return {
        "count": n,
        "mean": float(finite.mean()) if n else np.nan,
        "std": float(finite.std(ddof=1)) if n > 1 else np.nan,
        "median": float(np.median(finite)) if n else np.nan,
        "d10": float(d10),
        "d50": float(d50),
        "d90": float(d90),
        "mean_ci_low": interval.mean_low,
        "mean_ci_high": interval.mean_high,
        "median_ci_low": interval.median_low,
        "median_ci_high": interval.median_high,
    }


def summary_statistics(
    df: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    *,
    quantities: Sequence[str] | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SummaryStatistics:
    """Statistics of the particle population, overall or per group (e.g. per sample).

    Parameters
    ----------
    df : pandas.DataFrame
        Particle table (one row per particle, lengths in nm, areas in nm²).
    by : str or sequence of str, optional
        Grouping column(s), e.g. ``"sample"`` or ``"image_id"``; None for one population.
    quantities : sequence of str, optional
        Columns to summarise; defaults to those of ``SUMMARY_QUANTITIES`` present in ``df``.
    n_resamples, confidence, seed
        Bootstrap settings (see :func:`bootstrap_interval`); every group and quantity uses
        the same seed, so results do not depend on group order.

    Returns
    -------
    SummaryStatistics
        Distribution statistics per (group, quantity) and the EU nanomaterial criterion per
        group (needs the ``min_feret_nm`` column; rows are omitted without it).

    Raises
    ------
    KeyError
        If a grouping column or a requested quantity is missing from ``df``.
    """
    by_columns: tuple[str, ...] = (
        () if by is None else ((by,) if isinstance(by, str) else tuple(by))
    )
    missing = [column for column in by_columns if column not in df.columns]
    if missing:
        raise KeyError(f"grouping column(s) {missing} not in the particle table")
    if quantities is None:
        quantities = [name for name in SUMMARY_QUANTITIES if name in df.columns]
    absent = [name for name in quantities if name not in df.columns]
    if absent:
        raise KeyError(f"quantity column(s) {absent} not in the particle table")

    distribution_rows: list[dict[str, object]] = []
    nano_rows: list[dict[str, object]] = []
    for key, group in _groups(df, by_columns):
        labels = dict(zip(by_columns, key, strict=True))
        columns = {
            name: pd.to_numeric(group[name], errors="coerce").to_numpy(dtype=float)
            for name in quantities
        }
        joint = _joint_intervals(columns, n_resamples, confidence, seed)
        for name in quantities:
            label, unit = SUMMARY_QUANTITIES.get(name, (name, ""))
            described = describe_values(
                columns[name],
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
                interval=joint.get(name),
            )
            distribution_rows.append(
                {**labels, "quantity": name, "label": label, "unit": unit, **described}
            )
        if "min_feret_nm" in group.columns:
            criterion = nanomaterial_criterion(group["min_feret_nm"].to_numpy(dtype=float))
            nano_rows.append(
                {
                    **labels,
                    "n_measured": criterion.n_measured,
                    "n_in_range": criterion.n_in_range,
                    "share_in_range": criterion.share_in_range,
                    "is_nanomaterial": criterion.is_nanomaterial,
                }
            )
    distributions = pd.DataFrame(distribution_rows, columns=[*by_columns, *DISTRIBUTION_COLUMNS])
    distributions["count"] = distributions["count"].astype(int)
    nanomaterial = pd.DataFrame(nano_rows, columns=[*by_columns, *NANOMATERIAL_COLUMNS])
    return SummaryStatistics(distributions, nanomaterial, by_columns)


def _joint_intervals(
    columns: dict[str, np.ndarray], n_resamples: int, confidence: float, seed: int
) -> dict[str, BootstrapInterval]:
    """Bootstrap intervals of the quantities without missing values, resampling particles
    once for all of them (quantities with NaNs are left to :func:`bootstrap_interval`)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    complete = [
        name for name, values in columns.items() if values.size >= 2 and np.isfinite(values).all()
    ]
    if not complete:
        return {}
    rng = np.random.default_rng(seed)
    means = bootstrap_means(np.column_stack([columns[name] for name in complete]), n_resamples, rng)
    intervals = {}
    for index, name in enumerate(complete):
        medians = bootstrap_medians(np.sort(columns[name]), n_resamples, rng)
        intervals[name] = _interval_from_samples(means[:, index], medians, confidence)
    return intervals


def _groups(
    df: pd.DataFrame, by_columns: tuple[str, ...]
) -> list[tuple[tuple[object, ...], pd.DataFrame]]:
    if not by_columns:
        return [((), df)]
    grouped = df.groupby(list(by_columns), sort=True, dropna=False)
    return [((key,) if not isinstance(key, tuple) else key, group) for key, group in grouped]


def _finite(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]
