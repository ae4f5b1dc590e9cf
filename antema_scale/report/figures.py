"""Figures of a run: size and shape distributions, and how figures are made and saved.

All figures are built with matplotlib's object API on an Agg canvas (no display, no
pyplot state, no change of the global backend), so they can be drawn in worker processes.
Lengths shown to the user are in nm. Per-image figures and the particle gallery are in
:mod:`antema_scale.report.micrograph_figures`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Colours used consistently across figures (colour-blind safe, Okabe–Ito).
SINGLE_COLOUR = "#0072B2"
SEPARATED_COLOUR = "#E69F00"
SEPARATION_LINE_COLOUR = "#D55E00"
EXCLUDED_COLOUR = "#CC79A7"
MASK_COLOUR = "#009E73"

#: Keep SVG text as text (small, searchable files), and make saved files reproducible.
SAVE_SETTINGS: dict[str, object] = {"svg.fonttype": "none", "svg.hashsalt": "antema-scale"}


def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib Figure bound to an Agg canvas (no pyplot, no display)."""
    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(
    figure: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150
) -> list[Path]:
    """Save a figure as ``stem.png`` and ``stem.svg`` (or other ``formats``).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure.
    stem : str or pathlib.Path
        Path without extension; its folder is created if missing.
    formats : sequence of str
        File formats matplotlib can write.
    dpi : int
        Resolution of raster formats, dots per inch.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(SAVE_SETTINGS):
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            figure.savefig(path, format=fmt, dpi=dpi)
            paths.append(path)
    return paths


def figure_bytes(figure: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure encoded as ``fmt`` (e.g. for embedding in HTML)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(SAVE_SETTINGS):
        figure.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


# --------------------------------------------------------------------------- distributions


def format_mean_std(values: np.ndarray, unit: str = "nm") -> str:
    """``"2.1 ± 0.7 nm"``: mean ± sample standard deviation (ddof=1), rounded to the first
    significant digit of the deviation and at least one decimal, as in the paper (NaN-safe)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return "no data"
    mean = finite.mean()
    std = finite.std(ddof=1) if finite.size > 1 else 0.0
    decimals = _decimals_for(std if std > 0 else abs(mean))
    suffix = f" {unit}" if unit else ""
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}{suffix}"


def plot_distributions(
    particles: pd.DataFrame,
    columns: Sequence[tuple[str, str, str]],
    *,
    title: str | None = None,
    colour: str = SINGLE_COLOUR,
) -> Figure:
    """Histograms of particle quantities with mean ± standard deviation marked.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table.
    columns : sequence of (column, label, unit)
        One panel per entry; columns absent from ``particles`` get an empty panel saying so.
    title : str, optional
        Figure title.
    colour : str
        Bar colour.

    Returns
    -------
    matplotlib.figure.Figure
        One row of histogram panels (count by number on the y axis).
    """
    figure = new_figure(4.0 * len(columns), 3.3)
    axes = figure.subplots(1, len(columns), squeeze=False)[0]
    for axis, (column, label, unit) in zip(axes, columns, strict=True):
        values = (
            pd.to_numeric(particles[column], errors="coerce").to_numpy(dtype=float)
            if column in particles.columns
            else np.array([])
        )
        _histogram_panel(axis, values, label, unit, colour)
    if title:
        figure.suptitle(title, fontsize=12)
    return figure


def plot_size_distributions(particles: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Equivalent diameter, min Feret and max Feret histograms (the paper's Fig. 4 and 5)."""
    return plot_distributions(
        particles,
        [
            ("equivalent_diameter_nm", "Equivalent diameter", "nm"),
            ("min_feret_nm", "Min Feret diameter", "nm"),
            ("max_feret_nm", "Max Feret diameter", "nm"),
        ],
        title=title,
    )


#: Colours of samples compared in one figure (Okabe–Ito, then tab10).
SAMPLE_COLOURS: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)


def plot_size_distributions_by_sample(
    particles: pd.DataFrame,
    *,
    sample_column: str = "sample",
    max_samples: int = len(SAMPLE_COLOURS),
) -> Figure:
    """Size distributions of several samples overlaid, as shares of each sample's particles.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table with a sample column.
    sample_column : str
        Column naming the sample of each particle.
    max_samples : int
        Samples drawn at most (the first by name); more would not be readable.

    Returns
    -------
    matplotlib.figure.Figure
        Equivalent diameter, min and max Feret panels with one step histogram per sample
        (shared bins over the central 99 %; y = share of that sample's particles) and a
        legend of samples with their equivalent diameter, mean ± std.
    """
    columns = [
        ("equivalent_diameter_nm", "Equivalent diameter"),
        ("min_feret_nm", "Min Feret diameter"),
        ("max_feret_nm", "Max Feret diameter"),
    ]
    samples = sorted(particles[sample_column].astype(str).unique())[:max_samples]
    figure = new_figure(12.0, 3.6)
    axes = figure.subplots(1, len(columns))
    for axis, (column, label) in zip(axes, columns, strict=True):
        axis.set_xlabel(f"{label} [nm]")
        axis.set_ylabel("Share of particles")
        if column not in particles.columns:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
            continue
        values = pd.to_numeric(particles[column], errors="coerce")
        finite = values[np.isfinite(values)].to_numpy(dtype=float)
        if finite.size == 0:
            axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
            continue
        low, high = histogram_range(finite)
        bins = histogram_bins(finite[(finite >= low) & (finite <= high)], low, high, max_bins=40)
        for colour, sample in zip(SAMPLE_COLOURS, samples, strict=False):
            subset = values[particles[sample_column].astype(str) == sample].to_numpy(dtype=float)
            subset = subset[np.isfinite(subset)]
            if subset.size == 0:
                continue
            axis.hist(
                subset,
                bins=bins,
                weights=np.full(subset.size, 1.0 / subset.size),
                histtype="step",
                lw=1.6,
                color=colour,
                label=f"{sample} (n = {subset.size}): {format_mean_std(subset)}",
            )
        axis.set_title(label, fontsize=10)
    # the legend of the first panel: each sample's equivalent diameter, mean ± std
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(len(handles), 4),
            fontsize=9,
            frameon=False,
        )
    figure.suptitle("Size distributions by sample", fontsize=12)
    return figure


def plot_shape_distributions(particles: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Circularity and aspect ratio histograms."""
    return plot_distributions(
        particles,
        [("circularity", "Circularity", ""), ("aspect_ratio", "Aspect ratio (max/min Feret)", "")],
        title=title,
        colour="#56B4E9",
    )


def _histogram_panel(axis: Axes, values: np.ndarray, label: str, unit: str, colour: str) -> None:
    finite = values[np.isfinite(values)]
    axis.set_xlabel(f"{label} [{unit}]" if unit else label)
    axis.set_ylabel("Number of particles")
    if finite.size == 0:
        axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
        return
    low, high = histogram_range(finite)
    shown = finite[(finite >= low) & (finite <= high)]
    bins = histogram_bins(shown, low, high)
    axis.hist(shown, bins=bins, color=colour, edgecolor="white", linewidth=0.5)
    mean = finite.mean()
    std = finite.std(ddof=1) if finite.size > 1 else 0.0
    axis.axvspan(mean - std, mean + std, color="grey", alpha=0.15, lw=0)
    axis.axvline(mean, color="black", lw=1.2)
    axis.set_title(f"{label}: {format_mean_std(finite, unit)}\n(n = {finite.size})", fontsize=10)
    outside = finite.size - shown.size
    if outside:
        on_right = mean < (low + high) / 2  # write on the side away from the bulk
        axis.text(
            0.98 if on_right else 0.02,
            0.97,
            f"{outside} outside\nshown range",
            transform=axis.transAxes,
            ha="right" if on_right else "left",
            va="top",
            fontsize=8,
            color="#5b6676",
        )


def histogram_bins(values: np.ndarray, low: float, high: float, max_bins: int = 60) -> np.ndarray:
    """Bin edges over ``[low, high]``: numpy's "auto" count (at most ``max_bins``), reduced
    by a fifth at a time while the histogram is a comb (more than a fifth of the well-filled
    bins hold less than half of their neighbours' mean), as quantised measurements on a
    pixel grid produce."""
    count = min(len(np.histogram_bin_edges(values, bins="auto", range=(low, high))) - 1, max_bins)
    while count > 8:
        counts, _ = np.histogram(values, bins=count, range=(low, high))
        neighbours = (counts[:-2] + counts[2:]) / 2.0
        considered = neighbours >= 5
        dips = (counts[1:-1] < 0.5 * neighbours) & considered
        if not considered.any() or dips.sum() <= 0.2 * considered.sum():
            break
        count = max(8, int(count * 0.8))
    return np.linspace(low, high, max(count, 1) + 1)


def histogram_range(values: np.ndarray, tail_percent: float = 0.5) -> tuple[float, float]:
    """x range of a histogram: the central ``100 - 2 * tail_percent`` % of the values,
    widened by 5 % of its span, so that a few outliers do not squash the distribution.

    Parameters
    ----------
    values : numpy.ndarray
        Finite values.
    tail_percent : float
        Percent of values that may fall outside on each side.

    Returns
    -------
    tuple of float
        ``(low, high)``; mean ± 0.5 for constant values.
    """
    low, high = np.percentile(values, [tail_percent, 100.0 - tail_percent])
    span = high - low
    if span <= 0:
        return float(low) - 0.5, float(high) + 0.5
    return float(max(low - 0.05 * span, values.min())), float(min(high + 0.05 * span, values.max()))


def _decimals_for(value: float) -> int:
    """Decimals that show the first significant digit of ``value``, at least one."""
    if not math.isfinite(value) or value <= 0:
        return 1
    return int(min(max(-math.floor(math.log10(value)), 1), 6))
