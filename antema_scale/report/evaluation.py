"""Report of a segmentation evaluation: the paper's Table 1 and Fig. 8, and sizes against truth.

``antema-scale evaluate`` (and :meth:`antema_scale.segment.evaluate.EvaluationResult.write`)
writes, beside ``metrics.json`` and ``per_image.csv``:

* ``metrics.md``: one column per data source (and ``all``), one row per metric of
  :data:`METRIC_ROWS` (global and class accuracy; IoU and Dice per class, the paper's
  Table 1; instance precision/recall/F1 at IoU >= 0.5; equivalent circular diameter (ECD)
  of the true and predicted components in nm), the confusion matrices in pixels and the
  settings of the run;
* ``confusion_matrix.png`` / ``.svg``: per source, the confusion matrix normalised by true
  class (the paper's Fig. 8): the percentage of the pixels of each true class given to
  each predicted class, with the pixel counts;
* ``diameters.png`` / ``.svg``: per source, histograms of the ECD (nm) of the true and of
  the predicted connected components, and each image's mean ECD predicted against true;
* ``diameters.csv``: the diameters behind that figure, one row per component.

Examples
--------
>>> summary = {"synth": {"images": 2, "global_accuracy": 0.95, "iou_particle": 0.8,
...                      "confusion_matrix": [[90, 10], [5, 95]]}}
>>> "| IoU particle | 0.8000 |" in metrics_markdown(summary).splitlines()
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from antema_scale.report.figures import (
    SINGLE_COLOUR,
    format_mean_std,
    histogram_bins,
    histogram_range,
    new_figure,
    save_figure,
)

if TYPE_CHECKING:
    from antema_scale.segment.evaluate import EvaluationResult

__all__ = [
    "CLASS_NAMES",
    "METRIC_ROWS",
    "format_metric",
    "metrics_markdown",
    "plot_confusion_matrices",
    "plot_diameter_agreement",
    "write_evaluation_report",
]

#: Pixel classes in the order of the confusion matrix rows and columns.
CLASS_NAMES: tuple[str, str] = ("background", "particle")

#: (title, key of the evaluation summary) of every metric shown in tables, in order.
METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("global accuracy", "global_accuracy"),
    ("accuracy background", "accuracy_background"),
    ("accuracy particle", "accuracy_particle"),
    ("IoU background", "iou_background"),
    ("IoU particle", "iou_particle"),
    ("Dice background", "dice_background"),
    ("Dice particle", "dice_particle"),
    ("instance precision", "instance_precision"),
    ("instance recall", "instance_recall"),
    ("instance F1", "instance_f1"),
    ("ECD truth mean (nm)", "diameter_truth_mean_nm"),
    ("ECD pred. mean (nm)", "diameter_predicted_mean_nm"),
    ("ECD mean error (nm)", "diameter_mean_error_nm"),
    ("ECD truth std (nm)", "diameter_truth_std_nm"),
    ("ECD pred. std (nm)", "diameter_predicted_std_nm"),
    ("images flagged OOD", "out_of_distribution"),
    ("images", "images"),
)

#: Diameters spanning more than this ratio (largest / smallest shown) get log axes.
LOG_AXIS_SPAN = 10.0

#: Colour of the true diameters (the predicted ones use ``SINGLE_COLOUR``).
TRUTH_COLOUR = "#555555"


def format_metric(value: Any) -> str:
    """A metric as text: integers as they are, floats with 4 decimals, missing as ``nan``."""
    if value is None:
        return "nan"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "nan" if value != value else f"{float(value):.4f}"
    return str(value)


def metrics_markdown(
    summary: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any] | None = None
) -> str:
    """``metrics.md``: the metrics table, the confusion matrices and the settings, as Markdown.

    Integer metrics (image counts) are written as integers, the rest with 4 decimals.
    """
    sources = list(summary)
    lines = ["# Segmentation evaluation", ""]
    if settings:
        split, segmenter = settings.get("split"), settings.get("segmenter")
        if split or segmenter:
            lines += [f"{segmenter or 'segmenter'} on the {split or '?'} split.", ""]
    lines += ["| metric | " + " | ".join(sources) + " |"]
    lines += ["|---|" + "---:|" * len(sources)]
    for title, key in METRIC_ROWS:
        cells = [format_metric(summary[s].get(key)) for s in sources]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Pixel metrics are summed over the images of a source; class accuracy is the recall "
        "of the class. Instances: connected components matched one-to-one at IoU >= 0.5. "
        "ECD: equivalent circular diameter of components not touching the border, >= 0.5 nm.",
        "",
        "## Confusion matrices (pixels; rows = true class, columns = predicted class)",
        "",
        "| source | true class | predicted background | predicted particle |",
        "|---|---|---:|---:|",
    ]
    for source in sources:
        matrix = summary[source].get("confusion_matrix")
        if matrix is None:
            continue
        for name, row in zip(CLASS_NAMES, np.asarray(matrix, dtype=np.int64), strict=True):
            lines.append(f"| {source} | {name} | {row[0]:,} | {row[1]:,} |")
    if settings:
        lines += ["", "## Settings", "", "```json", json.dumps(settings, indent=2, default=str)]
        lines += ["```"]
    return "\n".join(lines) + "\n"


def plot_confusion_matrices(
    summary: Mapping[str, Mapping[str, Any]], sources: Sequence[str] | None = None
) -> Figure:
    """Confusion matrices normalised by true class, one panel per source (the paper's Fig. 8).

    Parameters
    ----------
    summary : mapping
        ``{source: metrics}`` with ``confusion_matrix`` ``[[tn, fp], [fn, tp]]`` in pixels.
    sources : sequence of str, optional
        Panels to draw; default: every source with a confusion matrix, ``"all"`` only when
        there is more than one other source.

    Returns
    -------
    matplotlib.figure.Figure
        Each cell shows the percentage of the true class's pixels and the pixel count.
    """
    if sources is None:
        named = [s for s in summary if s != "all" and "confusion_matrix" in summary[s]]
        sources = [*named, "all"] if len(named) > 1 and "all" in summary else named or ["all"]
    sources = [s for s in sources if "confusion_matrix" in summary.get(s, {})]
    if not sources:
        raise ValueError("no confusion matrix in the evaluation summary")
    figure = new_figure(3.2 * len(sources) + 0.8, 3.2)
    axes = figure.subplots(1, len(sources), squeeze=False)[0]
    image = None
    for axis, source in zip(axes, sources, strict=True):
        counts = np.asarray(summary[source]["confusion_matrix"], dtype=np.int64)
        image = _confusion_panel(axis, counts)
        images = summary[source].get("images")
        axis.set_title(source if images is None else f"{source} ({images} images)", fontsize=10)
    figure.colorbar(image, ax=list(axes), label="share of the true class", shrink=0.85)
    return figure


def _confusion_panel(axis: Axes, counts: np.ndarray) -> Any:
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), share in np.ndenumerate(shares):
        text = "no pixels" if np.isnan(share) else f"{100 * share:.1f} %"
        axis.text(
            col,
            row,
            f"{text}\n{counts[row, col]:,} px",
            ha="center",
            va="center",
            fontsize=9,
            color="white" if share > 0.6 else "black",
        )
    axis.set_xticks([0, 1], CLASS_NAMES)
    axis.set_yticks([0, 1], CLASS_NAMES)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    return image


def plot_diameter_agreement(
    diameters: pd.DataFrame, per_image: pd.DataFrame, sources: Sequence[str] | None = None
) -> Figure:
    """Equivalent diameters of predicted against true components, one column per source.

    Parameters
    ----------
    diameters : pandas.DataFrame
        One row per component: ``source``, ``mask`` (``"truth"`` or ``"predicted"``),
        ``equivalent_diameter_nm``.
    per_image : pandas.DataFrame
        ``source``, ``diameter_truth_mean_nm``, ``diameter_pred_mean_nm`` per image.
    sources : sequence of str, optional
        Columns to draw; default: the sources of ``per_image``.

    Returns
    -------
    matplotlib.figure.Figure
        Top row: histograms of the true and predicted ECD (nm, mean ± standard deviation in
        the legend); bottom row: each image's mean ECD, predicted against true, with the
        line of equality.
    """
    if sources is None:
        sources = list(dict.fromkeys(per_image["source"])) if len(per_image) else []
    if not sources:
        raise ValueError("no images in the evaluation")
    figure = new_figure(4.0 * len(sources), 6.6)
    axes = figure.subplots(2, len(sources), squeeze=False)
    for col, source in enumerate(sources):
        own = diameters[diameters["source"] == source] if len(diameters) else diameters
        _diameter_histogram_panel(axes[0, col], own, source)
        images = per_image[per_image["source"] == source]
        _mean_diameter_panel(axes[1, col], images)
    return figure


def _diameter_histogram_panel(axis: Axes, diameters: pd.DataFrame, source: str) -> None:
    axis.set_title(source, fontsize=10)
    axis.set_xlabel("Equivalent diameter [nm]")
    axis.set_ylabel("Number of components")
    values = {
        kind: (
            diameters.loc[diameters["mask"] == kind, "equivalent_diameter_nm"].to_numpy(float)
            if len(diameters)
            else np.array([])
        )
        for kind in ("truth", "predicted")
    }
    pooled = np.concatenate(list(values.values()))
    pooled = pooled[np.isfinite(pooled)]
    if pooled.size == 0:
        axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
        return
    low, high = histogram_range(pooled)
    if low > 0 and high / low > LOG_AXIS_SPAN:  # sizes over decades: bins even in log(ECD)
        bins = np.geomspace(low, high, 41)
        axis.set_xscale("log")
    else:
        bins = histogram_bins(pooled[(pooled >= low) & (pooled <= high)], low, high)
    for kind, colour in (("truth", TRUTH_COLOUR), ("predicted", SINGLE_COLOUR)):
        shown = values[kind][(values[kind] >= low) & (values[kind] <= high)]
        label = f"{kind}: {format_mean_std(values[kind])} (n = {values[kind].size})"
        axis.hist(shown, bins=bins, histtype="step", color=colour, linewidth=1.5, label=label)
    axis.set_ylim(top=axis.get_ylim()[1] * 1.3)  # room for the legend
    axis.legend(fontsize=8, loc="upper right")


def _mean_diameter_panel(axis: Axes, images: pd.DataFrame) -> None:
    axis.set_xlabel("Mean ECD, truth [nm]")
    axis.set_ylabel("Mean ECD, predicted [nm]")
    truth = pd.to_numeric(images.get("diameter_truth_mean_nm"), errors="coerce")
    found = pd.to_numeric(images.get("diameter_pred_mean_nm"), errors="coerce")
    both = np.isfinite(truth.to_numpy(float)) & np.isfinite(found.to_numpy(float))
    if not both.any():
        axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes)
        return
    x, y = truth.to_numpy(float)[both], found.to_numpy(float)[both]
    axis.scatter(x, y, s=14, color=SINGLE_COLOUR, alpha=0.8, linewidths=0)
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    if low > 0 and high / low > LOG_AXIS_SPAN:
        axis.set_xscale("log")
        axis.set_yscale("log")
    axis.plot([low, high], [low, high], color="black", lw=1, label="predicted = truth")
    axis.set_title(f"one point per image (n = {int(both.sum())})", fontsize=9)
    axis.legend(fontsize=8, loc="upper left")


def write_evaluation_report(result: EvaluationResult, output_dir: str | Path) -> list[Path]:
    """Write ``metrics.md``, ``diameters.csv`` and the two figures of an evaluation.

    Parameters
    ----------
    result : antema_scale.segment.evaluate.EvaluationResult
        The evaluation.
    output_dir : str or pathlib.Path
        Folder (created if missing).

    Returns
    -------
    list of pathlib.Path
        The files written (figures as PNG and SVG; the diameter figure only when the
        evaluation has images).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "metrics.md"
    markdown.write_text(metrics_markdown(result.summary, result.settings), encoding="utf-8")
    table = out / "diameters.csv"
    result.diameters.to_csv(table, index=False)
    written = [markdown, table]
    written += save_figure(plot_confusion_matrices(result.summary), out / "confusion_matrix")
    if len(result.per_image):
        figure = plot_diameter_agreement(result.diameters, result.per_image)
        written += save_figure(figure, out / "diameters")
    return written
