"""Particle tables for people: Parquet, csv, and an xlsx workbook like the reference program's.

The workbook has a ``Particles`` sheet (one row per particle, units in the column names,
e.g. ``Equivalent diameter [nm]``), a ``MeanValues`` sheet (mean and standard deviation of
area, equivalent diameter, min/max Feret and circularity, as ANTEMA writes it), a
``PerImage`` sheet, a ``PerSample`` sheet (full statistics with bootstrap intervals) and a
``Nanomaterial`` sheet (the EU criterion per sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

from antema_scale.report.samples import SampleMapping, assign_samples
from antema_scale.report.statistics import summary_statistics

#: Particle-table column -> column name with unit, for csv/xlsx readers.
PARTICLE_COLUMN_LABELS: dict[str, str] = {
    "sample": "Sample",
    "image_id": "Image",
    "particle_id": "Particle",
    "area_nm2": "Area [nm²]",
    "equivalent_diameter_nm": "Equivalent diameter [nm]",
    "min_feret_nm": "Min Feret [nm]",
    "max_feret_nm": "Max Feret [nm]",
    "aspect_ratio": "Aspect ratio (max/min Feret)",
    "perimeter_nm": "Perimeter [nm]",
    "circularity": "Circularity",
    "convexity": "Convexity",
    "solidity": "Solidity",
    "centroid_y_nm": "Centroid y [nm]",
    "centroid_x_nm": "Centroid x [nm]",
    "bbox_min_row": "Bbox min row [px]",
    "bbox_min_col": "Bbox min col [px]",
    "bbox_max_row": "Bbox max row [px]",
    "bbox_max_col": "Bbox max col [px]",
    "separated": "Separated",
    "separation_method": "Separation method",
    "parent_region": "Parent region",
    "erosion_steps": "Erosion steps",
    "touches_border": "Touches border",
}

#: Columns of the ``MeanValues`` sheet, in the reference program's order.
MEAN_VALUE_QUANTITIES: tuple[str, ...] = (
    "area_nm2",
    "equivalent_diameter_nm",
    "min_feret_nm",
    "max_feret_nm",
    "circularity",
)

#: Quantities averaged per image in the ``PerImage`` sheet.
PER_IMAGE_QUANTITIES: tuple[str, ...] = (
    "equivalent_diameter_nm",
    "min_feret_nm",
    "max_feret_nm",
    "area_nm2",
    "circularity",
    "aspect_ratio",
)

TABLE_FORMATS: tuple[str, ...] = ("parquet", "csv", "xlsx")

#: Rows of one Excel worksheet; longer particle tables continue on "Particles (2)", ...
EXCEL_MAX_ROWS = 1_048_576


def particle_sheet(particles: pd.DataFrame) -> pd.DataFrame:
    """The particle table with human column names that carry units.

    Known columns come first in the contract's order; other columns follow unchanged.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table (lengths in nm, areas in nm²).

    Returns
    -------
    pandas.DataFrame
        Same rows, renamed and reordered columns.
    """
    known = [column for column in PARTICLE_COLUMN_LABELS if column in particles.columns]
    other = [column for column in particles.columns if column not in PARTICLE_COLUMN_LABELS]
    return particles[known + other].rename(columns=PARTICLE_COLUMN_LABELS)


def mean_values_sheet(particles: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of the reference program's summary quantities.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table (lengths in nm, areas in nm²).

    Returns
    -------
    pandas.DataFrame
        One row per quantity present (``Quantity`` with unit, ``Mean``, ``Standard
        deviation`` with ddof=1, ``Number of particles``).
    """
    rows = []
    for column in MEAN_VALUE_QUANTITIES:
        if column not in particles.columns:
            continue
        values = pd.to_numeric(particles[column], errors="coerce").dropna()
        rows.append(
            {
                "Quantity": PARTICLE_COLUMN_LABELS[column],
                "Mean": float(values.mean()) if len(values) else float("nan"),
                "Standard deviation": float(values.std(ddof=1))
                if len(values) > 1
                else float("nan"),
                "Number of particles": int(len(values)),
            }
        )
    return pd.DataFrame(
        rows, columns=["Quantity", "Mean", "Standard deviation", "Number of particles"]
    )


def per_image_sheet(particles: pd.DataFrame, images: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-image particle counts with mean and standard deviation of each size quantity.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table with ``image_id``.
    images : pandas.DataFrame, optional
        Image table; its ``image_id``, ``source`` and pixel-size columns are joined in, and
        images without particles appear with a count of 0.

    Returns
    -------
    pandas.DataFrame
        One row per image: ``Image``, ``Sample`` (when known), ``Particles``,
        ``Separated``, then ``<quantity> mean`` / ``<quantity> std`` columns with units.
    """
    group_columns = ["image_id"] + (["sample"] if "sample" in particles.columns else [])
    grouped = particles.groupby(group_columns, sort=True, dropna=False)
    table = grouped.size().rename("Particles").to_frame()
    if "separated" in particles.columns:
        table["Separated"] = grouped["separated"].sum().astype(int)
    for column in PER_IMAGE_QUANTITIES:
        if column not in particles.columns:
            continue
        label = PARTICLE_COLUMN_LABELS[column]
        name, _, unit = label.partition(" [")
        suffix = f" [{unit}" if unit else ""
        table[f"{name} mean{suffix}"] = grouped[column].mean()
        table[f"{name} std{suffix}"] = grouped[column].std(ddof=1)
    table = table.reset_index()
    if images is not None and "image_id" in images.columns:
        image_columns = [
            column
            for column in ("image_id", "source", "pixel_size_nm_y", "pixel_size_nm_x")
            if column in images.columns
        ]
        table = images[image_columns].merge(table, on="image_id", how="outer")
        table["Particles"] = table["Particles"].fillna(0).astype(int)
        if "Separated" in table.columns:
            table["Separated"] = table["Separated"].fillna(0).astype(int)
    return table.rename(
        columns={
            "image_id": "Image",
            "sample": "Sample",
            "source": "Source",
            "pixel_size_nm_y": "Pixel size y [nm]",
            "pixel_size_nm_x": "Pixel size x [nm]",
        }
    )


def per_sample_sheets(
    particles: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Full statistics and the EU nanomaterial criterion per sample, for the workbook.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table with a ``sample`` column.
    n_resamples, seed
        Bootstrap settings passed to :func:`~antema_scale.report.statistics.summary_statistics`.

    Returns
    -------
    tuple of pandas.DataFrame
        ``(statistics, nanomaterial)`` with human column names.
    """
    stats = summary_statistics(particles, by="sample", n_resamples=n_resamples, seed=seed)
    distributions = stats.distributions.copy()
    distributions["label"] = [
        f"{label} [{unit}]" if unit else label
        for label, unit in zip(distributions["label"], distributions["unit"], strict=True)
    ]
    distributions = distributions.drop(columns=["quantity", "unit"]).rename(
        columns={
            "sample": "Sample",
            "label": "Quantity",
            "count": "N",
            "mean": "Mean",
            "std": "Std",
            "median": "Median",
            "d10": "D10 (by number)",
            "d50": "D50 (by number)",
            "d90": "D90 (by number)",
            "mean_ci_low": "Mean 95% CI low",
            "mean_ci_high": "Mean 95% CI high",
            "median_ci_low": "Median 95% CI low",
            "median_ci_high": "Median 95% CI high",
        }
    )
    nanomaterial = stats.nanomaterial.rename(
        columns={
            "sample": "Sample",
            "n_measured": "Particles with min Feret",
            "n_in_range": "Min Feret in 1-100 nm",
            "share_in_range": "Share in 1-100 nm (by number)",
            "is_nanomaterial": "Nanomaterial (share >= 50%)",
        }
    )
    return distributions, nanomaterial


def write_tables(
    particles: pd.DataFrame,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = TABLE_FORMATS,
    samples: SampleMapping | None = None,
    images: pd.DataFrame | None = None,
    stem: str = "particles",
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the particle table as Parquet, csv and/or an xlsx workbook.

    Parameters
    ----------
    particles : pandas.DataFrame
        Merged particle table (lengths in nm, areas in nm²).
    out_dir : str or pathlib.Path
        Folder to write into (created if missing).
    formats : sequence of str
        Any of ``"parquet"``, ``"csv"``, ``"xlsx"``.
    samples : mapping, pandas.Series, str or pathlib.Path, optional
        Image -> sample mapping (or csv path); see
        :func:`~antema_scale.report.samples.assign_samples`. Without it the ``sample``
        column, else the image's folder, defines samples.
    images : pandas.DataFrame, optional
        Image table, for sources and pixel sizes in the ``PerImage`` sheet.
    stem : str
        File name without extension.
    n_resamples, seed
        Bootstrap settings for the ``PerSample`` sheet.

    Returns
    -------
    dict
        Format -> path written.

    Raises
    ------
    ValueError
        If a format is unknown.
    """
    unknown = [fmt for fmt in formats if fmt not in TABLE_FORMATS]
    if unknown:
        raise ValueError(f"unknown table format(s) {unknown}; choose from {list(TABLE_FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = assign_samples(particles, images, samples)
    written: dict[str, Path] = {}
    if "parquet" in formats:
        written["parquet"] = out_dir / f"{stem}.parquet"
        table.to_parquet(written["parquet"], index=False)
    if "csv" in formats:
        written["csv"] = out_dir / f"{stem}.csv"
        particle_sheet(table).to_csv(written["csv"], index=False)
    if "xlsx" in formats:
        written["xlsx"] = out_dir / f"{stem}.xlsx"
        write_workbook(table, written["xlsx"], images=images, n_resamples=n_resamples, seed=seed)
    return written


def write_workbook(
    particles: pd.DataFrame,
    path: str | Path,
    *,
    images: pd.DataFrame | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Path:
    """Write the xlsx workbook (sheets ``Particles``, ``MeanValues``, ``PerImage``,
    ``PerSample``, ``Nanomaterial``; more than a million particles continue on
    ``Particles (2)``, ...).

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table with a ``sample`` column (see
        :func:`~antema_scale.report.samples.assign_samples`).
    path : str or pathlib.Path
        Destination ``.xlsx`` file.
    images : pandas.DataFrame, optional
        Image table for the ``PerImage`` sheet.
    n_resamples, seed
        Bootstrap settings for the ``PerSample`` sheet.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    statistics, nanomaterial = per_sample_sheets(particles, n_resamples=n_resamples, seed=seed)
    sheets = {
        **_split_rows(particle_sheet(particles), "Particles"),
        "MeanValues": mean_values_sheet(particles),
        "PerImage": per_image_sheet(particles, images),
        "PerSample": statistics,
        "Nanomaterial": nanomaterial,
    }
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, sheet in sheets.items():
            sheet.to_excel(writer, sheet_name=name, index=False)
            _format_sheet(writer.sheets[name], sheet)
    return path


def _split_rows(sheet: pd.DataFrame, name: str) -> dict[str, pd.DataFrame]:
    """``{name: sheet}``, or ``name``, ``name (2)``, ... when the rows exceed one Excel sheet."""
    rows_per_sheet = EXCEL_MAX_ROWS - 1  # one row for the header
    if len(sheet) <= rows_per_sheet:
        return {name: sheet}
    parts = range(0, len(sheet), rows_per_sheet)
    return {
        (name if number == 1 else f"{name} ({number})"): sheet.iloc[start : start + rows_per_sheet]
        for number, start in enumerate(parts, start=1)
    }


def _format_sheet(worksheet: Worksheet, sheet: pd.DataFrame) -> None:
    """Freeze the header row and size columns to their header text."""
    from openpyxl.utils import get_column_letter

    worksheet.freeze_panes = "A2"
    for index, column in enumerate(sheet.columns, start=1):
        width = min(max(len(str(column)) + 2, 10), 40)
        worksheet.column_dimensions[get_column_letter(index)].width = width
