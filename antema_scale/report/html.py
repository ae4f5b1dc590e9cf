"""One self-contained HTML report per run: statistics, figures, errors and the manifest.

Every figure is embedded (SVG or PNG as base64 data URIs); the page loads nothing from
anywhere and reads the same offline. The same figures are also written as PNG and SVG
files next to the report for use in papers.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from antema_scale import __version__
from antema_scale.report.figures import (
    SAMPLE_COLOURS,
    format_mean_std,
    plot_shape_distributions,
    plot_size_distributions,
    plot_size_distributions_by_sample,
    save_figure,
)
from antema_scale.report.micrograph_figures import (
    ImageRecord,
    plot_image_overview,
    plot_particle_gallery,
)
from antema_scale.report.results import (
    ImageLoader,
    RunResults,
    analysis_options_from_manifest,
    load_results,
    recompute_particle_crops,
)
from antema_scale.report.samples import SampleMapping, assign_samples
from antema_scale.report.statistics import SummaryStatistics, summary_statistics
from antema_scale.report.tables import PARTICLE_COLUMN_LABELS, per_image_sheet

#: Manifest sections shown first, in this order; other top-level keys follow.
MANIFEST_SECTIONS: tuple[str, ...] = (
    "inputs",
    "parameters",
    "options",
    "model",
    "versions",
    "software",
    "hardware",
)

#: Rows of a long list shown in the report before it is cut.
MAX_LIST_ROWS = 50


@dataclass(frozen=True)
class EmbeddedFigure:
    """A figure as it appears in the report.

    Attributes
    ----------
    title : str
        Caption heading.
    data_uri : str
        ``data:image/...;base64,...`` of the figure.
    caption : str
        Explanatory caption.
    files : tuple of pathlib.Path
        PNG/SVG files written for the figure.
    """

    title: str
    data_uri: str
    caption: str
    files: tuple[Path, ...]


def write_report(
    results_dir: str | Path,
    out_html: str | Path,
    *,
    samples: SampleMapping | None = None,
    figures_dir: str | Path | None = None,
    max_image_figures: int = 12,
    n_resamples: int = 2000,
    seed: int = 0,
    title: str | None = None,
    image_loader: ImageLoader | None = None,
) -> Path:
    """Write the HTML report of a results directory.

    Parameters
    ----------
    results_dir : str or pathlib.Path
        Folder written by the pipeline (needs ``particles.parquet``; all else optional).
    out_html : str or pathlib.Path
        Report file to write.
    samples : mapping, pandas.Series, str or pathlib.Path, optional
        Image -> sample mapping or csv path (default: the folder of each image).
    figures_dir : str or pathlib.Path, optional
        Where PNG/SVG copies of the figures go (default: ``<report stem>_figures`` next to
        the report).
    max_image_figures : int
        Per-image figures drawn at most (the first images by id); the rest are listed.
    n_resamples, seed
        Bootstrap settings for the confidence intervals.
    title : str, optional
        Report title (default: the results folder's name).
    image_loader : callable, optional
        image_id -> ImageRecord instead of the run's Zarr store.

    Returns
    -------
    pathlib.Path
        The report written.

    Raises
    ------
    antema_scale.report.results.ResultsDirectoryError
        If the results directory or its particle table is missing or unreadable.
    """
    run = load_results(results_dir, image_loader=image_loader)
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    figures_dir = (
        Path(figures_dir)
        if figures_dir is not None
        else out_html.with_name(f"{out_html.stem}_figures")
    )
    particles = assign_samples(run.particles, run.images, samples)
    overall = summary_statistics(particles, n_resamples=n_resamples, seed=seed)
    per_sample = summary_statistics(particles, by="sample", n_resamples=n_resamples, seed=seed)
    image_notes: list[str] = []
    if "frame" in particles.columns and particles["frame"].notna().any():
        image_notes.append(
            "Movies contribute one row per particle and frame to the statistics and histograms "
            "(see the tracking outputs for per-particle time series)."
        )
    if run.load_image is not None:
        run.load_image = OutlinedImages(run, particles, image_notes)
    figures = _run_figures(particles, run, figures_dir)
    image_figures = _image_figures(particles, run, figures_dir, max_image_figures, image_notes)
    page = render_page(
        title=title or f"antema-scale report: {run.results_dir.resolve().name}",
        run=run,
        particles=particles,
        overall=overall,
        per_sample=per_sample,
        figures=figures,
        image_figures=image_figures,
        extra_notes=image_notes,
        figures_dir=figures_dir,
    )
    out_html.write_text(page, encoding="utf-8")
    return out_html


def report_run(
    results_dir: str | Path,
    *,
    out_html: str | Path | None = None,
    samples: SampleMapping | None = None,
    table_formats: Sequence[str] = ("csv", "xlsx"),
) -> dict[str, Path]:
    """Everything a person takes home from a run: tables plus the HTML report.

    This is what ``antema-scale analyze --report`` calls after the run.

    Parameters
    ----------
    results_dir : str or pathlib.Path
        The run folder.
    out_html : str or pathlib.Path, optional
        Report path (default: ``<results_dir>/report.html``).
    samples : optional
        Image -> sample mapping or csv path.
    table_formats : sequence of str
        Formats for :func:`~antema_scale.report.tables.write_tables` (Parquet already
        exists in a run folder, so it is not rewritten by default).

    Returns
    -------
    dict
        ``"html"`` and each table format -> path written.
    """
    from antema_scale.report.tables import write_tables

    results_dir = Path(results_dir)
    run = load_results(results_dir, image_loader=lambda image_id: None)
    written = write_tables(
        run.particles, results_dir, formats=table_formats, samples=samples, images=run.images
    )
    written["html"] = write_report(
        results_dir,
        out_html if out_html is not None else results_dir / "report.html",
        samples=samples,
    )
    return written


# --------------------------------------------------------------------------- figures


def _run_figures(
    particles: pd.DataFrame, run: RunResults, figures_dir: Path
) -> list[EmbeddedFigure]:
    figures = []
    figure = plot_size_distributions(particles, title=f"All particles (n = {len(particles)})")
    figures.append(
        _embed(
            figure,
            figures_dir / "size_distributions",
            "Size distributions",
            "Histograms by number; the black line is the mean and the grey band mean ± one "
            "standard deviation.",
            "svg",
        )
    )
    samples = sorted(particles["sample"].unique()) if len(particles) else []
    if len(samples) > 1:
        figure = plot_size_distributions_by_sample(particles)
        shown = (
            ""
            if len(samples) <= len(SAMPLE_COLOURS)
            else f" (first {len(SAMPLE_COLOURS)} of {len(samples)} samples)"
        )
        figures.append(
            _embed(
                figure,
                figures_dir / "size_distributions_by_sample",
                "Size distributions by sample",
                "Each sample's histogram as a share of its own particles, on shared bins; "
                "legend: equivalent diameter, mean ± standard deviation (all quantities are "
                f"in the statistics table){shown}.",
                "svg",
            )
        )
    figure = plot_shape_distributions(particles)
    figures.append(
        _embed(
            figure,
            figures_dir / "shape_distributions",
            "Shape distributions",
            "Circularity = 4π·area/perimeter² (1 for a disc); aspect ratio = max/min Feret.",
            "svg",
        )
    )
    if run.load_image is not None and len(particles):
        gallery = plot_particle_gallery(first_frame(particles), run.load_image)
        if gallery is not None:
            figures.append(
                _embed(
                    gallery,
                    figures_dir / "particle_gallery",
                    "Particle gallery",
                    "The largest, smallest and least convex particles with their outlines "
                    "(orange: separated from an overlapping group): a quick check that the "
                    "extremes of the distributions are real particles.",
                    "jpeg",
                )
            )
    return figures


def _image_figures(
    particles: pd.DataFrame,
    run: RunResults,
    figures_dir: Path,
    max_image_figures: int,
    notes: list[str],
) -> list[EmbeddedFigure]:
    if run.load_image is None:
        return []
    image_ids = _image_ids(particles, run.images)
    shown = image_ids[:max_image_figures]
    figures = []
    for image_id in shown:
        record: ImageRecord | None = run.load_image(image_id)
        if record is None or not np.all(np.isfinite(record.pixel_size_nm)):
            continue
        subset = first_frame(particles[particles["image_id"].astype(str) == image_id])
        figure = plot_image_overview(record, subset)
        caption = _image_caption(image_id, subset, run.images, record)
        figures.append(
            _embed(
                figure,
                figures_dir / "images" / _file_safe(image_id),
                image_id,
                caption,
                "jpeg",
                dpi=110,
            )
        )
    if len(image_ids) > len(shown):
        notes.append(
            f"Per-image figures are drawn for the first {len(shown)} of {len(image_ids)} images; "
            "the per-image table lists all of them."
        )
    return figures


class OutlinedImages:
    """Image loader that adds per-particle crops, recomputed from the stored mask once per
    image (only the small crops are cached, never the images).

    Parameters
    ----------
    run : RunResults
        The run (its ``load_image`` and manifest are used).
    particles : pandas.DataFrame
        The run's particle table.
    notes : list of str
        Receives a sentence for each image whose crops could not be recomputed.
    """

    def __init__(self, run: RunResults, particles: pd.DataFrame, notes: list[str]) -> None:
        self._load = run.load_image
        self._manifest = run.manifest
        self._particles = first_frame(particles)
        self._notes = notes
        self._crops: dict[str, dict[int, Any] | None] = {}

    def __call__(self, image_id: str) -> ImageRecord | None:
        record = self._load(image_id) if self._load is not None else None
        if record is None or record.particle_masks is not None or record.mask is None:
            return record
        if image_id not in self._crops:
            self._crops[image_id] = self._recompute(record)
        crops = self._crops[image_id]
        return record if crops is None else dataclasses.replace(record, particle_masks=crops)

    def _recompute(self, record: ImageRecord) -> dict[int, Any] | None:
        subset = self._particles[self._particles["image_id"].astype(str) == record.image_id]
        if not len(subset):
            return None
        try:
            options = analysis_options_from_manifest(self._manifest)
            crops, unmatched = recompute_particle_crops(record, subset, options)
        except (TypeError, ValueError) as error:
            self._notes.append(
                f"Outlines of {record.image_id}: {error}; separated particles are drawn as "
                f"boxes.{self._revision_hint()}"
            )
            return None
        if unmatched:
            self._notes.append(
                f"Outlines of {record.image_id}: {unmatched} of {len(subset)} particles could not "
                "be matched when re-analysing the stored mask; separated ones among them are "
                f"drawn as boxes.{self._revision_hint()}"
            )
        return crops

    def _revision_hint(self) -> str:
        from antema_scale.provenance import git_revision

        recorded = (self._manifest or {}).get("git_revision")
        current = git_revision()
        if recorded and current and recorded != current:
            return (
                f" The run was analysed by revision {str(recorded)[:10]}, the report by "
                f"{current[:10]}: re-run the analysis to match."
            )
        return ""


def first_frame(particles: pd.DataFrame) -> pd.DataFrame:
    """Particles of single images and of the first frame of movies (figures show frame 0)."""
    if "frame" not in particles.columns:
        return particles
    return particles[pd.to_numeric(particles["frame"], errors="coerce").fillna(0) == 0]


def _image_caption(
    image_id: str, particles: pd.DataFrame, images: pd.DataFrame | None, record: ImageRecord
) -> str:
    parts = []
    if images is not None and {"image_id", "source"} <= set(images.columns):
        sources = images.loc[images["image_id"].astype(str) == image_id, "source"]
        if len(sources):
            parts.append(str(sources.iloc[0]))
    rows, cols = record.image.shape
    size_y, size_x = record.pixel_size_nm
    parts.append(f"{cols} × {rows} px at {size_x:.4g} × {size_y:.4g} nm/px")
    separated = (
        int(particles["separated"].fillna(False).astype(bool).sum())
        if "separated" in particles.columns
        else 0
    )
    parts.append(f"{len(particles)} particles measured, {separated} from separation")
    if record.n_frames > 1:
        parts.append(f"movie of {record.n_frames} frames: the first is shown")
    return "; ".join(parts)


def _embed(
    figure: Any, stem: Path, title: str, caption: str, fmt: str, dpi: int = 150
) -> EmbeddedFigure:
    """Save ``figure`` as PNG and SVG under ``stem`` and embed it as ``fmt``: ``"svg"``
    (plots: sharp, small), or ``"jpeg"`` (micrographs: the saved PNG re-encoded, about a
    quarter of its size)."""
    files = tuple(save_figure(figure, stem, formats=("png", "svg"), dpi=dpi))
    by_suffix = {path.suffix: path for path in files}
    if fmt == "svg":
        payload, mime = by_suffix[".svg"].read_bytes(), "image/svg+xml"
    elif fmt == "jpeg":
        payload, mime = _jpeg_bytes(by_suffix[".png"]), "image/jpeg"
    else:
        raise ValueError(f"cannot embed a figure as {fmt!r}; use 'svg' or 'jpeg'")
    encoded = base64.b64encode(payload).decode("ascii")
    return EmbeddedFigure(title, f"data:{mime};base64,{encoded}", caption, files)


def _jpeg_bytes(png_path: Path, quality: int = 88) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    with Image.open(png_path) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _image_ids(particles: pd.DataFrame, images: pd.DataFrame | None) -> list[str]:
    ids: set[str] = (
        set(particles["image_id"].astype(str)) if "image_id" in particles.columns else set()
    )
    if images is not None and "image_id" in images.columns:
        ids |= set(images["image_id"].astype(str))
    return sorted(ids)


def _file_safe(name: object) -> str:
    text = "".join(char if char.isalnum() or char in "-_." else "_" for char in str(name))
    return text.strip("._") or "unnamed"


# --------------------------------------------------------------------------- page


def render_page(
    *,
    title: str,
    run: RunResults,
    particles: pd.DataFrame,
    overall: SummaryStatistics,
    per_sample: SummaryStatistics,
    figures: Sequence[EmbeddedFigure],
    image_figures: Sequence[EmbeddedFigure],
    extra_notes: Sequence[str],
    figures_dir: Path,
) -> str:
    """Assemble the HTML document (a string) from the computed parts."""
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        _key_numbers(run, particles, overall),
        _section("Statistics by sample", _statistics_tables(per_sample), "statistics"),
        _section("Distributions", _figures_html(figures), "figures"),
        _section("Images", _images_html(particles, run, image_figures), "images"),
        _section("Excluded regions", _excluded_html(run.excluded), "excluded")
        if run.excluded is not None
        else "",
        _section("Errors", _errors_html(run.errors), "errors"),
        _section("Run manifest", _manifest_html(run.manifest), "manifest"),
        _notes_html([*run.notes, *extra_notes], figures_dir),
    ]
    nav = "".join(
        f'<a href="#{anchor}">{label}</a>'
        for anchor, label in (
            ("summary", "Summary"),
            ("statistics", "Statistics"),
            ("figures", "Distributions"),
            ("images", "Images"),
            ("errors", "Errors"),
            ("manifest", "Manifest"),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_esc(title)}</h1>"
        f'<p class="meta">Results folder <code>{_esc(str(run.results_dir.resolve()))}</code> · '
        f"report generated {generated} by antema-scale {_esc(__version__)}</p>"
        f"<nav>{nav}</nav></header>\n<main>\n"
        + "\n".join(part for part in sections if part)
        + "\n</main>\n</body>\n</html>\n"
    )


def _key_numbers(run: RunResults, particles: pd.DataFrame, overall: SummaryStatistics) -> str:
    n_images = len(_image_ids(particles, run.images))
    n_errors = 0 if run.errors is None else len(run.errors)
    n_samples = particles["sample"].nunique() if len(particles) else 0
    n_separated = (
        int(particles["separated"].fillna(False).astype(bool).sum())
        if "separated" in particles.columns
        else None
    )
    cards = [
        ("Images", f"{n_images}", f"{n_errors} with errors" if n_errors else "no errors"),
        (
            "Particles measured",
            f"{len(particles)}",
            f"{n_separated} from separation" if n_separated is not None else "",
        ),
        ("Samples", f"{n_samples}", ""),
    ]
    for column, label in (
        ("equivalent_diameter_nm", "Equivalent diameter"),
        ("min_feret_nm", "Min Feret"),
        ("max_feret_nm", "Max Feret"),
    ):
        if column in particles.columns:
            row = _distribution_row(overall, column)
            extra = (
                f"median {row['median']:.3g} nm, 95% CI of mean {row['mean_ci_low']:.3g}–{row['mean_ci_high']:.3g}"
                if row is not None and np.isfinite(row["mean_ci_low"])
                else ""
            )
            cards.append((label, format_mean_std(particles[column].to_numpy(dtype=float)), extra))
    if "circularity" in particles.columns:
        cards.append(
            ("Circularity", format_mean_std(particles["circularity"].to_numpy(dtype=float), ""), "")
        )
    if len(overall.nanomaterial):
        nano = overall.nanomaterial.iloc[0]
        share = nano["share_in_range"]
        verdict = "meets" if nano["is_nanomaterial"] else "does not meet"
        cards.append(
            (
                "EU nanomaterial criterion",
                f"{share:.1%}" if np.isfinite(share) else "n/a",
                f"of particles have min Feret in 1–100 nm: {verdict} the ≥ 50% criterion",
            )
        )
    body = "".join(
        f'<div class="card"><div class="label">{_esc(label)}</div><div class="value">{_esc(value)}</div>'
        f'<div class="sub">{_esc(sub)}</div></div>'
        for label, value, sub in cards
    )
    return _section("Summary", f'<div class="cards">{body}</div>', "summary")


def _distribution_row(stats: SummaryStatistics, quantity: str) -> pd.Series | None:
    rows = stats.distributions[stats.distributions["quantity"] == quantity]
    return rows.iloc[0] if len(rows) else None


def _statistics_tables(per_sample: SummaryStatistics) -> str:
    table = per_sample.distributions.copy()
    if not len(table):
        return "<p>No particles were measured.</p>"
    table["Quantity"] = [
        f"{label} [{unit}]" if unit else label
        for label, unit in zip(table["label"], table["unit"], strict=True)
    ]
    table["Mean ± std"] = [
        mean_std_text(mean, std) for mean, std in zip(table["mean"], table["std"], strict=True)
    ]
    table["95% CI of mean"] = _interval_text(table["mean_ci_low"], table["mean_ci_high"])
    table["95% CI of median"] = _interval_text(table["median_ci_low"], table["median_ci_high"])
    shown = table[
        [
            "sample",
            "Quantity",
            "count",
            "Mean ± std",
            "95% CI of mean",
            "median",
            "95% CI of median",
            "d10",
            "d50",
            "d90",
        ]
    ]
    shown = shown.rename(
        columns={
            "sample": "Sample",
            "count": "N",
            "median": "Median",
            "d10": "D10",
            "d50": "D50",
            "d90": "D90",
        }
    )
    parts = [
        "<p>All statistics are by number. D10/D50/D90: 10/50/90 % of particles are smaller. "
        "Confidence intervals: percentile bootstrap.</p>",
        _table_html(shown),
    ]
    nano = per_sample.nanomaterial
    if len(nano):
        nano_table = pd.DataFrame(
            {
                "Sample": nano["sample"],
                "Particles": nano["n_measured"],
                "Min Feret in 1–100 nm": nano["n_in_range"],
                "Share by number": [
                    f"{share:.1%}" if np.isfinite(share) else "n/a"
                    for share in nano["share_in_range"]
                ],
                "Nanomaterial (≥ 50%)": [
                    "yes" if flag else "no" for flag in nano["is_nanomaterial"]
                ],
            }
        )
        parts.append(
            "<h3>EU nanomaterial criterion</h3><p>Commission Recommendation 2022/C 229/01: "
            "a nanomaterial has at least 50 % of its particles, by number, with the smallest "
            "external dimension (here the minimum Feret diameter of the projection) in 1–100 nm.</p>"
        )
        parts.append(_table_html(nano_table))
    return "".join(parts)


def mean_std_text(mean: float, std: float) -> str:
    """``"11.5 ± 2.0"``: mean and standard deviation to two significant digits of the
    deviation (the mean alone, to four significant digits, when the deviation is undefined)."""
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(std) or std <= 0:
        return f"{mean:.4g}"
    decimals = int(min(max(1 - np.floor(np.log10(std)), 0), 8))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _interval_text(low: Iterable[float], high: Iterable[float]) -> list[str]:
    return [
        f"{a:.4g}–{b:.4g}" if np.isfinite(a) and np.isfinite(b) else "n/a"
        for a, b in zip(low, high, strict=True)
    ]


def _figures_html(figures: Sequence[EmbeddedFigure]) -> str:
    return "".join(_figure_html(figure) for figure in figures)


def _figure_html(figure: EmbeddedFigure) -> str:
    caption = f"<strong>{_esc(figure.title)}</strong>"
    if figure.caption:
        caption += f" — {_esc(figure.caption)}"
    return (
        f'<figure><img src="{figure.data_uri}" alt="{_esc(figure.title)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _images_html(
    particles: pd.DataFrame, run: RunResults, image_figures: Sequence[EmbeddedFigure]
) -> str:
    parts = []
    if len(particles) or run.images is not None:
        table = per_image_sheet(particles, run.images)
        if run.images is not None:
            quality = [
                column
                for column in run.images.columns
                if column.startswith("quality")
                or column in ("mean_margin", "uncertain_fraction", "out_of_distribution")
            ]
            if quality:
                extra = run.images[["image_id", *quality]].rename(columns={"image_id": "Image"})
                table = table.merge(extra, on="Image", how="left")
        parts.append(_table_html(table, collapsible_after=30))
    if image_figures:
        parts.append(
            "<p>Per image: the micrograph with a scale bar, the segmentation overlay, and the "
            "measured particles — blue: single particles, orange: particles separated from an "
            "overlapping group, red: separation lines, hatched pink: segmented regions that "
            "were not measured (excluded, touching the border, or too small).</p>"
        )
        parts.extend(_figure_html(figure) for figure in image_figures)
    return "".join(parts) or "<p>No images.</p>"


def _excluded_html(excluded: pd.DataFrame | None) -> str:
    if excluded is None or not len(excluded):
        return "<p>No regions were excluded.</p>"
    if "reason" in excluded.columns:
        counts = excluded.groupby("reason", dropna=False).size().rename("Regions").reset_index()
        return "<p>Segmented regions that were not measured, by reason.</p>" + _table_html(
            counts.rename(columns={"reason": "Reason"})
        )
    return _table_html(excluded, collapsible_after=30)


def _errors_html(errors: pd.DataFrame | None) -> str:
    if errors is None:
        return "<p>No errors table was written.</p>"
    if not len(errors):
        return '<p class="ok">No image failed.</p>'
    return f"<p>{len(errors)} image(s) could not be analysed.</p>" + _table_html(
        errors, collapsible_after=30
    )


def _manifest_html(manifest: Mapping[str, Any] | None) -> str:
    if manifest is None:
        return "<p>No manifest.</p>"
    scalars = {
        key: value for key, value in manifest.items() if not isinstance(value, Mapping | list)
    }
    keys = [key for key in MANIFEST_SECTIONS if key in manifest] + [
        key for key in manifest if key not in MANIFEST_SECTIONS and key not in scalars
    ]
    parts = [f"<h3>Run</h3>{_value_html(scalars)}"] if scalars else []
    for key in keys:
        parts.append(
            f"<h3>{_esc(str(key).replace('_', ' ').capitalize())}</h3>{_value_html(manifest[key])}"
        )
    parts.append(
        "<details><summary>Raw manifest.json</summary><pre>"
        + _esc(json.dumps(manifest, indent=2, default=str))
        + "</pre></details>"
    )
    return "".join(parts)


def _value_html(value: Any) -> str:
    if isinstance(value, Mapping):
        flat = _flatten(value)
        if not flat:
            return "<p>(empty)</p>"
        rows = "".join(
            f"<tr><th>{_esc(key)}</th><td>{_esc(_scalar_text(item))}</td></tr>"
            for key, item in flat.items()
        )
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list):
        if value and all(isinstance(item, Mapping) for item in value):
            frame = pd.DataFrame([_flatten(item) for item in value])
            return _table_html(frame, collapsible_after=MAX_LIST_ROWS)
        items = "".join(
            f"<li><code>{_esc(_scalar_text(item))}</code></li>" for item in value[:MAX_LIST_ROWS]
        )
        more = (
            f"<li>… and {len(value) - MAX_LIST_ROWS} more</li>"
            if len(value) > MAX_LIST_ROWS
            else ""
        )
        return f"<ul>{items}{more}</ul>"
    return f"<p><code>{_esc(_scalar_text(value))}</code></p>"


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _scalar_text(value: Any) -> str:
    if isinstance(value, list | tuple | Mapping):
        return json.dumps(value, default=str)
    if value is None:
        return "—"
    return str(value)


def _notes_html(notes: Sequence[str], figures_dir: Path) -> str:
    items = "".join(f"<li>{_esc(note)}</li>" for note in notes)
    items += f"<li>PNG and SVG copies of every figure: <code>{_esc(str(figures_dir))}</code></li>"
    return _section("Notes", f"<ul>{items}</ul>", "notes")


def _table_html(frame: pd.DataFrame, *, collapsible_after: int | None = None) -> str:
    display = frame.copy()
    display.columns = [
        PARTICLE_COLUMN_LABELS.get(str(column), str(column)) for column in display.columns
    ]
    for column in display.columns:
        display[column] = [_cell_text(value) for value in display[column]]
    body = display.to_html(index=False, escape=True, border=0, classes="data")
    if collapsible_after is not None and len(display) > collapsible_after:
        return f"<details><summary>Show all {len(display)} rows</summary>{body}</details>"
    return f'<div class="scroll">{body}</div>'


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def _section(heading: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(heading)}</h2>{body}</section>'


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


_CSS = """
:root { --ink:#1d2430; --muted:#5b6676; --line:#d9dee6; --accent:#0072B2; --bg:#f6f8fb; }
* { box-sizing: border-box; }
body { margin:0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color:var(--ink); background:var(--bg); line-height:1.45; font-size:15px; }
header { background:#1d2430; color:#fff; padding:18px 32px 10px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .meta { margin:0 0 10px; color:#c5cdd8; font-size:13px; }
header code { color:#fff; }
nav a { color:#9fd3ff; margin-right:18px; font-size:14px; text-decoration:none; }
main { max-width:1240px; margin:0 auto; padding:8px 32px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 22px 18px; margin:18px 0; }
h2 { font-size:18px; margin:4px 0 12px; color:var(--accent); }
h3 { font-size:15px; margin:16px 0 6px; }
.cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap:12px; }
.card { border:1px solid var(--line); border-radius:6px; padding:10px 12px; background:#fbfcfe; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:21px; font-weight:600; margin:2px 0; }
.card .sub { color:var(--muted); font-size:12px; }
.scroll { overflow-x:auto; }
table.data { border-collapse:collapse; font-size:13px; margin:6px 0 10px; }
table.data th { background:#eef2f7; text-align:left; padding:5px 9px; border-bottom:2px solid var(--line); white-space:nowrap; }
table.data td { padding:4px 9px; border-bottom:1px solid var(--line); white-space:nowrap; font-variant-numeric: tabular-nums; }
table.data tr:nth-child(even) td { background:#fafbfd; }
table.kv { border-collapse:collapse; font-size:13px; }
table.kv th { text-align:left; color:var(--muted); font-weight:500; padding:3px 14px 3px 0; vertical-align:top; white-space:nowrap; }
table.kv td { padding:3px 0; font-family: ui-monospace, Menlo, Consolas, monospace; word-break:break-all; }
figure { margin:14px 0 22px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:4px; background:#fff; }
figcaption { color:var(--muted); font-size:13px; margin-top:4px; }
details summary { cursor:pointer; color:var(--accent); margin:6px 0; }
pre { background:#f3f5f8; padding:10px; overflow-x:auto; font-size:12px; }
.ok { color:#1b7f3b; font-weight:600; }
ul { margin:4px 0; padding-left:20px; }
"""
