"""Particle tables: Parquet, csv, and the xlsx workbook in the reference program's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from test_report_synthetic import SyntheticRun, build_results_dir

from antema_scale.report import write_tables


@pytest.fixture()
def synthetic_run(tmp_path: Path) -> SyntheticRun:
    return build_results_dir(tmp_path)


def _sheet_frame(workbook: openpyxl.Workbook, name: str) -> pd.DataFrame:
    rows = list(workbook[name].values)
    return pd.DataFrame(rows[1:], columns=rows[0])


def test_workbook_has_reference_sheets_and_unit_columns(
    synthetic_run: SyntheticRun, tmp_path: Path
) -> None:
    images = pd.read_parquet(synthetic_run.results_dir / "images.parquet")
    written = write_tables(
        synthetic_run.particles, tmp_path / "out", images=images, n_resamples=100
    )
    assert set(written) == {"parquet", "csv", "xlsx"}
    workbook = openpyxl.load_workbook(written["xlsx"], read_only=True)
    assert workbook.sheetnames == [
        "Particles",
        "MeanValues",
        "PerImage",
        "PerSample",
        "Nanomaterial",
    ]

    particles = _sheet_frame(workbook, "Particles")
    for column in (
        "Equivalent diameter [nm]",
        "Area [nm²]",
        "Min Feret [nm]",
        "Max Feret [nm]",
        "Circularity",
        "Separated",
        "Sample",
    ):
        assert column in particles.columns
    assert len(particles) == len(synthetic_run.particles) == 28
    np.testing.assert_allclose(
        particles["Equivalent diameter [nm]"].astype(float),
        synthetic_run.particles["equivalent_diameter_nm"],
    )
    assert set(particles["Sample"]) == {"gold-A", "gold-B"}

    means = _sheet_frame(workbook, "MeanValues").set_index("Quantity")
    assert list(means.index) == [
        "Area [nm²]",
        "Equivalent diameter [nm]",
        "Min Feret [nm]",
        "Max Feret [nm]",
        "Circularity",
    ]
    diameters = synthetic_run.particles["equivalent_diameter_nm"]
    assert means.loc["Equivalent diameter [nm]", "Mean"] == pytest.approx(diameters.mean())
    assert means.loc["Equivalent diameter [nm]", "Standard deviation"] == pytest.approx(
        diameters.std(ddof=1)
    )
    assert means.loc["Circularity", "Number of particles"] == 28

    per_image = _sheet_frame(workbook, "PerImage").set_index("Image")
    assert per_image.loc["img-a", "Particles"] == 14 and per_image.loc["img-a", "Separated"] == 2
    assert per_image.loc["img-b", "Source"] == "/data/gold-B/img-b.dm3"
    assert "Equivalent diameter mean [nm]" in per_image.columns

    per_sample = _sheet_frame(workbook, "PerSample")
    assert {"Sample", "Quantity", "N", "Mean", "Std", "D10 (by number)", "Mean 95% CI low"} <= set(
        per_sample.columns
    )
    nano = _sheet_frame(workbook, "Nanomaterial")
    assert list(nano["Nanomaterial (share >= 50%)"]) == [True, True]


def test_parquet_and_csv_round_trip(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    written = write_tables(
        synthetic_run.particles,
        tmp_path,
        formats=("parquet", "csv"),
        samples={"img-a": "S", "img-b": "S"},
    )
    assert set(written) == {"parquet", "csv"}
    back = pd.read_parquet(written["parquet"])
    pd.testing.assert_frame_equal(back.drop(columns="sample"), synthetic_run.particles)
    assert set(back["sample"]) == {"S"}
    csv = pd.read_csv(written["csv"])
    assert csv.columns[0] == "Sample" and "Max Feret [nm]" in csv.columns
    np.testing.assert_allclose(csv["Max Feret [nm]"], synthetic_run.particles["max_feret_nm"])


def test_unknown_format_is_rejected(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown table format"):
        write_tables(synthetic_run.particles, tmp_path, formats=("xls",))


def test_empty_particle_table_still_writes_a_workbook(tmp_path: Path) -> None:
    empty = pd.DataFrame(
        columns=["image_id", "particle_id", "equivalent_diameter_nm", "min_feret_nm"]
    )
    written = write_tables(empty, tmp_path, formats=("xlsx",))
    workbook = openpyxl.load_workbook(written["xlsx"], read_only=True)
    assert "MeanValues" in workbook.sheetnames


def test_particles_beyond_one_sheet_continue_on_the_next(
    synthetic_run: SyntheticRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("antema_scale.report.tables.EXCEL_MAX_ROWS", 11)  # 10 rows per sheet
    written = write_tables(synthetic_run.particles, tmp_path, formats=("xlsx",), n_resamples=20)
    workbook = openpyxl.load_workbook(written["xlsx"], read_only=True)
    assert workbook.sheetnames[:4] == ["Particles", "Particles (2)", "Particles (3)", "MeanValues"]
    rows = sum(len(list(workbook[name].values)) - 1 for name in workbook.sheetnames[:3])
    assert rows == 28
