"""``antema-scale track`` and ``track_movies`` on constructed results folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from antema_scale.cli import app
from antema_scale.insitu import TrackingInputError, track_movies, track_results


def disc(frame: int, y: float, x: float, diameter: float) -> dict[str, float]:
    """One detection: a disc of ``diameter`` nm at (y, x) nm; 0.5 s per frame."""
    return {
        "frame": frame,
        "time_s": 0.5 * frame,
        "centroid_y_nm": y,
        "centroid_x_nm": x,
        "equivalent_diameter_nm": diameter,
        "area_nm2": np.pi * diameter**2 / 4.0,
    }


def movie_particles(image_id: str, *, shift_nm: float, n_frames: int = 8) -> pd.DataFrame:
    """Two particles that coalesce in frame 4, one that grows 0.2 nm/s, one appearing in
    frame 2; the stage drifts ``shift_nm`` per frame along x; frame 7 is empty."""
    rows = []
    for frame in range(n_frames - 1):
        drift = shift_nm * frame
        if frame < 4:
            rows.append(disc(frame, 40.0, 40.0 + drift, 8.0))
            rows.append(disc(frame, 40.0, 48.0 + drift, 6.0))
        else:
            rows.append(disc(frame, 40.0, 43.4 + drift, float(np.sqrt(0.95 * 100.0))))
        rows.append(disc(frame, 120.0, 120.0 + drift, 5.0 + 0.2 * 0.5 * frame))
        if frame >= 2:
            rows.append(disc(frame, 150.0, 60.0 + drift, 4.0))
    table = pd.DataFrame(rows)
    table.insert(0, "image_id", image_id)
    table.insert(1, "particle_id", np.arange(len(table)))
    return table


def write_results(folder: Path, *, frames: bool = True) -> Path:
    """A results folder with two 8-frame movies of 200 x 250 nm (1 nm/px)."""
    folder.mkdir(parents=True, exist_ok=True)
    particles = pd.concat(
        [movie_particles("movie_a", shift_nm=1.0), movie_particles("movie_b", shift_nm=-2.0)]
    )
    if not frames:
        particles = particles.drop(columns=["frame", "time_s"])
    particles.to_parquet(folder / "particles.parquet", index=False)
    images = pd.DataFrame(
        {
            "image_id": ["movie_a", "movie_b"],
            "pixel_size_nm_y": 1.0,
            "pixel_size_nm_x": 1.0,
            "height_px": 200,
            "width_px": 250,
            "frames": 8,
        }
    )
    images.to_parquet(folder / "images.parquet", index=False)
    return folder


def test_track_movies_tables(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "run")
    particles = pd.read_parquet(folder / "particles.parquet")
    result = track_movies(
        particles, pd.read_parquet(folder / "images.parquet"), search_range_nm=3.0
    )
    tracks = result.tracks
    # per movie: A, B, the merged particle (its centroid jumps 3.4 nm > search range, so a
    # new track), the grower and the newcomer = 5 tracks
    assert tracks.groupby("image_id")["track_id"].nunique().to_dict() == {
        "movie_a": 5,
        "movie_b": 5,
    }
    assert tracks["track_id"].nunique() == 10
    events = result.events
    merges = events[events["event"] == "coalescence"]
    assert merges["image_id"].tolist() == ["movie_a", "movie_b"]
    assert (merges["frame"] == 4).all()
    assert (events[events["event"] == "appearance"]["frame"] == 2).all()
    # every track ends in frame 6 (frame 7 is empty): not before the last frame with particles
    assert "disappearance" not in set(events["event"])
    summary = result.frame_summary
    assert summary.groupby("image_id").size().to_dict() == {"movie_a": 8, "movie_b": 8}
    empty = summary[summary["frame"] == 7]
    assert (empty["count"] == 0).all()
    first = summary[(summary["image_id"] == "movie_a") & (summary["frame"] == 0)].iloc[0]
    assert first["area_fraction"] == pytest.approx(np.pi * (64 + 36 + 25) / 4 / (200 * 250))
    grower = result.growth[result.growth["n_points"] == 7]
    assert len(grower) == 2
    assert np.allclose(grower["growth_rate_nm_per_s"], 0.2)
    assert set(grower["image_id"]) == {"movie_a", "movie_b"}


def test_track_command_writes_outputs(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "run")
    result = CliRunner().invoke(app, ["track", str(folder), "--search-range", "3"])
    assert result.exit_code == 0, result.output
    out = folder / "tracking"
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert tracks["track_id"].nunique() == 10
    events = pd.read_csv(out / "events.csv")
    assert events["event"].value_counts().to_dict() == {"appearance": 2, "coalescence": 2}
    assert len(pd.read_csv(out / "frame_summary.csv")) == 16
    assert len(pd.read_csv(out / "growth_rates.csv")) == 10  # every track has >= 3 frames
    for movie in ("movie_a", "movie_b"):
        assert (out / "figures" / movie / "mean_diameter_vs_time.png").is_file()
        assert (out / "figures" / movie / "growth_curves.png").is_file()
    assert "10 tracks over 7 frames" in result.output


def test_track_command_default_search_range_and_output_folder(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "run")
    target = tmp_path / "elsewhere"
    result = CliRunner().invoke(app, ["track", str(folder), "-o", str(target), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert (target / "tracks.parquet").is_file() and not (target / "figures").exists()


def test_track_command_rejects_results_without_movies(tmp_path: Path) -> None:
    folder = write_results(tmp_path / "run", frames=False)
    result = CliRunner().invoke(app, ["track", str(folder)])
    assert result.exit_code == 2
    assert "holds no movie" in result.output
    with pytest.raises(TrackingInputError, match="particles.parquet is missing"):
        track_results(tmp_path / "nothing")


def test_missing_frame_times_give_a_note_not_a_crash(tmp_path: Path) -> None:
    particles = movie_particles("movie_a", shift_nm=0.0).assign(time_s=np.nan)
    result = track_movies(particles, search_range_nm=3.0)
    assert result.growth.empty
    assert any("--frame-interval" in note for note in result.notes)
    timed = track_movies(particles, search_range_nm=3.0, frame_interval_s=0.5)
    assert np.allclose(timed.growth.sort_values("n_points")["growth_rate_nm_per_s"].iloc[-1], 0.2)


def synthetic_run(folder: Path, *, drift_nm_per_frame: tuple[float, float]) -> Any:
    """A results folder from a synthetic movie: store.zarr (frames + masks), particles and
    images tables measured on the exact masks, ``truth_id`` from the nearest true particle."""
    import xarray as xr

    from antema_scale.io.store import create_store, open_store, write_image
    from antema_scale.particles import analyze_mask

    synth_movie = pytest.importorskip("antema_scale.synth.movie")
    from antema_scale.synth import SynthConfig

    config = SynthConfig(
        image_size=160, pixel_size_nm=0.5, diameter_mean_nm=7.0, area_fraction=0.15, overlap="none"
    )
    movie = synth_movie.generate_movie(
        config,
        8,
        seed=2,
        drift_nm_per_frame=drift_nm_per_frame,
        appearance_rate=0.0,
        approach_nm_per_frame=0.0,
    )
    folder.mkdir(parents=True)
    store_path = folder / "store.zarr"
    create_store(store_path)
    frames = xr.DataArray(movie.frames, dims=("frame", "y", "x"), coords={"frame": np.arange(8)})
    frames.attrs.update(
        pixel_size_nm_y=0.5, pixel_size_nm_x=0.5, pixel_size_nm=0.5, source="synthetic"
    )
    write_image(store_path, frames, "movie")
    open_store(store_path).write_mask("movie", movie.masks)
    tables = []
    for frame, micrograph in enumerate(movie.micrographs):
        particles = analyze_mask(micrograph.mask, 0.5, image_id="movie").particles
        particles.insert(1, "frame", frame)
        particles.insert(2, "time_s", float(frame))
        truth = micrograph.truth
        nearest = np.argmin(
            np.hypot(
                particles["centroid_y_nm"].to_numpy()[:, None] - truth["centroid_y_nm"].to_numpy(),
                particles["centroid_x_nm"].to_numpy()[:, None] - truth["centroid_x_nm"].to_numpy(),
            ),
            axis=1,
        )
        particles["truth_id"] = truth["particle_id"].to_numpy()[nearest]
        tables.append(particles)
    pd.concat(tables).to_parquet(folder / "particles.parquet", index=False)
    pd.DataFrame(
        {
            "image_id": ["movie"],
            "pixel_size_nm_y": [0.5],
            "pixel_size_nm_x": [0.5],
            "height_px": [160],
            "width_px": [160],
            "frames": [8],
        }
    ).to_parquet(folder / "images.parquet", index=False)
    return movie


def test_drift_from_frames_and_contact_sheet_from_the_store(tmp_path: Path) -> None:
    from antema_scale.insitu import tracking_scores

    # 5 nm per frame: more than the 3 nm search range, so only a measured drift links them
    movie = synthetic_run(tmp_path / "run", drift_nm_per_frame=(3.0, 4.0))
    result = track_results(tmp_path / "run", search_range_nm=3.0, drift_from_frames=True)
    scores = tracking_scores(result.tracks)
    assert scores["purity"] >= 0.95 and scores["completeness"] >= 0.95
    measured = result.tracks.groupby("frame")[["drift_y_nm", "drift_x_nm"]].first().to_numpy()
    assert np.abs(measured - movie.drift_nm).max() < 0.5
    sheet = tmp_path / "run" / "tracking" / "figures" / "movie" / "contact_sheet.png"
    assert sheet.stat().st_size > 10_000
    assert (sheet.parent / "overlay_movie.gif").read_bytes()[:6] == b"GIF89a"
    narrow = track_movies(
        pd.read_parquet(tmp_path / "run" / "particles.parquet"), search_range_nm=3.0
    )
    assert tracking_scores(narrow.tracks)["completeness"] < 0.5
