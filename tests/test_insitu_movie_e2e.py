"""End to end on a real movie: the 5-frame TIA STEM series of nanoparticles (0.3844 nm/px).

Read as a movie with its pixel size, segmented frame by frame with the threshold baseline,
measured with ``analyze_mask``, tracked, and written out with figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from antema_scale.insitu import track_movies, write_tracking_outputs
from antema_scale.insitu.results import MovieFrames

SERIES = "rosettasciio/03_Scanning Preview_1.ser"


@pytest.fixture(scope="module")
def series_path(formats_dir: Path) -> Path:
    path = formats_dir / SERIES
    if not path.is_file():
        pytest.skip(f"{SERIES} is not present")
    return path


def analyse_frames(movie: xr.DataArray) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-frame particle table (with ``frame``) and masks of a (frame, y, x) DataArray."""
    from antema_scale.particles import analyze_mask
    from antema_scale.segment import threshold_segment

    pixel_size = float(movie.attrs["pixel_size_nm"])
    tables, masks = [], []
    for frame in range(movie.shape[0]):
        prediction = threshold_segment(np.asarray(movie[frame]), pixel_size)
        masks.append(prediction.mask)
        particles = analyze_mask(prediction.mask, pixel_size, image_id="series").particles
        particles.insert(1, "frame", frame)
        tables.append(particles)
    return pd.concat(tables, ignore_index=True), np.stack(masks)


def test_tia_series_read_as_movie_and_tracked(series_path: Path, tmp_path: Path) -> None:
    from antema_scale.io import read_micrograph

    movie = read_micrograph(series_path)
    assert movie.dims == ("frame", "y", "x")
    assert movie.shape[0] == 5
    assert movie.attrs["pixel_size_nm"] == pytest.approx(0.3844, abs=1e-4)
    frame_time = float(movie.attrs.get("instrument_frame_time_s", 1.0))

    particles, masks = analyse_frames(movie)
    assert (particles.groupby("frame").size() >= 5).all()
    result = track_movies(particles, frame_interval_s=frame_time)
    tracks = result.tracks

    # the sample sits still: most particles are followed through all five frames
    lengths = tracks.groupby("track_id").size()
    assert (lengths == 5).sum() >= 5
    full = tracks[tracks["track_id"].isin(lengths[lengths == 5].index)]
    assert full.groupby("track_id")["equivalent_diameter_nm"].std().median() < 0.5
    assert tracks["drift_x_nm"].abs().max() < 1.0 and tracks["drift_y_nm"].abs().max() < 1.0
    assert np.allclose(tracks["time_s"], tracks["frame"] * frame_time)
    assert set(result.frame_summary["frame"]) == set(range(5))
    assert len(result.growth) >= 5

    files = write_tracking_outputs(
        result,
        tmp_path,
        movie_loader=lambda _id, _n: MovieFrames(
            np.asarray(movie), masks, (movie.attrs["pixel_size_nm"],) * 2, list(range(5))
        ),
    )
    assert pd.read_parquet(files["tracks"])["track_id"].nunique() == tracks["track_id"].nunique()
    assert (tmp_path / "figures" / "series" / "contact_sheet.png").stat().st_size > 10_000


@pytest.mark.slow
def test_analyze_command_tracks_the_series(series_path: Path, tmp_path: Path) -> None:
    """``antema-scale analyze`` on the series writes per-frame rows and then tracks them."""
    from typer.testing import CliRunner

    from antema_scale.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(series_path),
            "-o",
            str(out),
            "--segmenter",
            "threshold",
            "--workers",
            "1",
            "--threads-per-worker",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    particles = pd.read_parquet(out / "particles.parquet")
    assert sorted(particles["frame"].unique()) == [0, 1, 2, 3, 4]
    tracks = pd.read_parquet(out / "tracking" / "tracks.parquet")
    assert (tracks.groupby("track_id").size() == 5).sum() >= 5
    # no time axis in the file: the recorded frame time is used (and said so)
    assert tracks["time_s"].notna().all() and tracks["time_s"].max() > 0
    assert "instrument_frame_time_s" in result.output
    summary = pd.read_csv(out / "tracking" / "frame_summary.csv")
    assert summary["area_fraction"].between(0.01, 0.9).all()
    figures = next((out / "tracking" / "figures").iterdir())
    assert (figures / "contact_sheet.png").is_file()
