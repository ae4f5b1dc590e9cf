"""Tracking of constructed movie tables with known particle identities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from antema_scale.insitu import (
    MovieTableError,
    default_search_range_nm,
    drift_from_images,
    growth_rates,
    track_particles,
    tracking_scores,
)


def drifting_movie(
    *,
    n_particles: int = 80,
    n_frames: int = 30,
    field_nm: float = 600.0,
    drift_nm_per_frame: tuple[float, float] = (1.5, 3.0),
    jitter_nm: float = 0.6,
    noise_nm: float = 0.3,
    min_spacing_nm: float = 25.0,
    frame_interval_s: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """Particles on a drifting stage: Brownian jitter plus centroid noise, all in nm.

    ``truth_id`` is the identity of each particle. Particles start at least
    ``min_spacing_nm`` apart (moderate density: 80 particles in 600 x 600 nm).
    """
    rng = np.random.default_rng(seed)
    diameters = rng.uniform(4.0, 14.0, n_particles)
    positions: list[np.ndarray] = []
    while len(positions) < n_particles:
        candidate = rng.uniform(0.0, field_nm, 2)
        if all(np.hypot(*(candidate - other)) >= min_spacing_nm for other in positions):
            positions.append(candidate)
    true_positions = np.array(positions)
    frames = []
    for frame in range(n_frames):
        if frame:
            true_positions = true_positions + rng.normal(0.0, jitter_nm, true_positions.shape)
        measured = true_positions + np.array(drift_nm_per_frame) * frame
        measured = measured + rng.normal(0.0, noise_nm, measured.shape)
        diameter = diameters * (1.0 + rng.normal(0.0, 0.02, n_particles))
        frames.append(
            pd.DataFrame(
                {
                    "frame": frame,
                    "time_s": frame * frame_interval_s,
                    "centroid_y_nm": measured[:, 0],
                    "centroid_x_nm": measured[:, 1],
                    "equivalent_diameter_nm": diameter,
                    "area_nm2": np.pi * diameter**2 / 4.0,
                    "truth_id": np.arange(n_particles),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_tracking_purity_and_completeness_at_moderate_drift_and_density() -> None:
    movie = drifting_movie()
    tracks = track_particles(movie, search_range_nm=5.0)
    scores = tracking_scores(tracks)
    assert scores["purity"] >= 0.95
    assert scores["completeness"] >= 0.95
    assert scores["n_detections"] == len(movie)


def test_drift_is_recovered_in_nm() -> None:
    # no Brownian jitter: the stage drift is then the only collective motion
    movie = drifting_movie(drift_nm_per_frame=(1.5, 3.0), jitter_nm=0.0)
    tracks = track_particles(movie, search_range_nm=5.0)
    last = tracks[tracks["frame"] == 29].iloc[0]
    assert last["drift_y_nm"] == pytest.approx(1.5 * 29, abs=0.3)
    assert last["drift_x_nm"] == pytest.approx(3.0 * 29, abs=0.3)


def test_without_drift_correction_drift_breaks_tracks() -> None:
    movie = drifting_movie(drift_nm_per_frame=(3.0, 3.5))
    corrected = tracking_scores(track_particles(movie, search_range_nm=5.0))
    raw = tracking_scores(track_particles(movie, search_range_nm=5.0, correct_drift=False))
    assert corrected["completeness"] >= 0.95
    assert raw["completeness"] < corrected["completeness"]


def test_wide_first_pass_measures_drift_larger_than_the_search_range() -> None:
    movie = drifting_movie(drift_nm_per_frame=(6.0, 6.0))  # 8.5 nm per frame
    narrow = tracking_scores(track_particles(movie, search_range_nm=4.0))
    wide = tracking_scores(track_particles(movie, search_range_nm=4.0, drift_search_range_nm=12.0))
    assert narrow["completeness"] < 0.5
    assert wide["purity"] >= 0.95 and wide["completeness"] >= 0.95


def test_known_drift_from_images_can_replace_the_estimate() -> None:
    movie = drifting_movie(drift_nm_per_frame=(0.0, 12.0), n_particles=30)
    known = pd.DataFrame(
        {"drift_y_nm": 0.0, "drift_x_nm": 12.0 * np.arange(30)},
        index=pd.Index(range(30), name="frame"),
    )
    tracks = track_particles(movie, search_range_nm=4.0, drift_nm=known)
    scores = tracking_scores(tracks)
    assert scores["purity"] == 1.0 and scores["completeness"] == 1.0


def test_track_table_columns_and_order() -> None:
    movie = drifting_movie(n_particles=10, n_frames=5)
    tracks = track_particles(movie, search_range_nm=5.0)
    assert list(tracks.columns[:10]) == [
        "track_id",
        "frame",
        "time_s",
        "centroid_y_nm",
        "centroid_x_nm",
        "equivalent_diameter_nm",
        "area_nm2",
        "drift_y_nm",
        "drift_x_nm",
        "track_length",
    ]
    assert "truth_id" in tracks.columns
    assert sorted(tracks["track_id"].unique()) == list(range(10))
    assert (tracks["track_length"] == 5).all()
    assert tracks.groupby("track_id")["frame"].apply(lambda f: f.is_monotonic_increasing).all()


def test_memory_bridges_a_missed_frame() -> None:
    movie = drifting_movie(n_particles=5, n_frames=8, drift_nm_per_frame=(0.0, 0.0))
    missed = movie[~((movie["truth_id"] == 2) & (movie["frame"] == 4))]
    without = track_particles(missed, search_range_nm=5.0, memory=0)
    bridged = track_particles(missed, search_range_nm=5.0, memory=1)
    assert without["track_id"].nunique() == 6
    assert bridged["track_id"].nunique() == 5
    assert tracking_scores(bridged)["completeness"] == 1.0


def test_movies_are_tracked_separately_with_unique_ids() -> None:
    first = drifting_movie(n_particles=6, n_frames=4, seed=1).assign(movie="a")
    second = first.assign(movie="b")  # same positions: would collide if linked together
    tracks = track_particles(pd.concat([first, second]), search_range_nm=5.0, group_by="movie")
    assert tracks["track_id"].nunique() == 12
    assert (tracks.groupby("track_id")["movie"].nunique() == 1).all()


def test_missing_time_filled_from_frame_interval() -> None:
    movie = drifting_movie(n_particles=3, n_frames=4).drop(columns="time_s")
    tracks = track_particles(movie, search_range_nm=5.0, frame_interval_s=0.25)
    assert np.allclose(tracks["time_s"], tracks["frame"] * 0.25)


def test_bad_input_raises_clear_errors() -> None:
    movie = drifting_movie(n_particles=3, n_frames=2)
    with pytest.raises(MovieTableError, match="'centroid_x_nm'"):
        track_particles(movie.drop(columns="centroid_x_nm"), search_range_nm=5.0)
    with pytest.raises(ValueError, match="search_range_nm"):
        track_particles(movie, search_range_nm=-1.0)
    with pytest.raises(MovieTableError, match="non-negative integer"):
        track_particles(movie.assign(frame=movie["frame"] + 0.5), search_range_nm=5.0)


def growing_particle(rate_nm_per_s: float, *, n_frames: int = 40, seed: int = 3) -> pd.DataFrame:
    """One particle whose diameter grows linearly (2 % measurement noise), 0.5 s per frame."""
    rng = np.random.default_rng(seed)
    time_s = np.arange(n_frames) * 0.5
    diameter = (4.0 + rate_nm_per_s * time_s) * (1.0 + rng.normal(0.0, 0.02, n_frames))
    return pd.DataFrame(
        {
            "frame": np.arange(n_frames),
            "time_s": time_s,
            "centroid_y_nm": 50.0 + rng.normal(0.0, 0.2, n_frames),
            "centroid_x_nm": 80.0 + rng.normal(0.0, 0.2, n_frames),
            "equivalent_diameter_nm": diameter,
            "area_nm2": np.pi * diameter**2 / 4.0,
        }
    )


@pytest.mark.parametrize("rate", [0.3, -0.05])
def test_growth_rate_of_a_growing_particle_recovered_within_5_percent(rate: float) -> None:
    tracks = track_particles(growing_particle(rate), search_range_nm=3.0)
    rates = growth_rates(tracks)
    assert len(rates) == 1
    row = rates.iloc[0]
    assert row["growth_rate_nm_per_s"] == pytest.approx(rate, rel=0.05)
    # the reported uncertainty is honest: the truth lies within 3 standard errors
    assert abs(row["growth_rate_nm_per_s"] - rate) < 3 * row["growth_rate_stderr_nm_per_s"]
    assert row["n_points"] == 40
    assert row["intercept_nm"] == pytest.approx(4.0, rel=0.05)


def test_growth_rates_skip_short_tracks_and_need_times() -> None:
    movie = drifting_movie(n_particles=4, n_frames=2)
    tracks = track_particles(movie, search_range_nm=5.0)
    assert growth_rates(tracks).empty
    assert len(growth_rates(tracks, min_points=2)) == 4
    with pytest.raises(ValueError, match="frame_interval_s"):
        growth_rates(tracks.assign(time_s=np.nan), min_points=2)


def test_tracking_scores_follow_their_definitions() -> None:
    # track 0 holds particle A (3 frames) then jumps to B (1 frame); track 1 holds B (2 frames)
    tracks = pd.DataFrame(
        {
            "track_id": [0, 0, 0, 0, 1, 1],
            "truth_id": ["A", "A", "A", "B", "B", "B"],
        }
    )
    scores = tracking_scores(tracks)
    assert scores["purity"] == pytest.approx((3 + 2) / 6)
    assert scores["completeness"] == pytest.approx((3 + 2) / 6)
    split = pd.DataFrame({"track_id": [0, 0, 1, 1], "truth_id": ["A"] * 4})
    assert tracking_scores(split) == pytest.approx(
        {
            "purity": 1.0,
            "completeness": 0.5,
            "n_detections": 4,
            "n_tracks": 2,
            "n_true_particles": 1,
        }
    )


def test_drift_from_images_recovers_known_subpixel_shifts() -> None:
    from scipy.ndimage import gaussian_filter, shift

    rng = np.random.default_rng(5)
    scene = gaussian_filter(rng.normal(size=(128, 128)), 3.0)
    true_px = np.array([[0.0, 0.0], [0.4, 1.3], [1.1, 2.5], [1.5, 4.2]])
    frames = np.stack([shift(scene, offset, mode="grid-wrap") for offset in true_px])
    drift = drift_from_images(frames, (0.5, 0.25), frame_indices=[3, 4, 5, 6])
    assert drift.index.tolist() == [3, 4, 5, 6]
    assert np.allclose(drift["drift_y_nm"], true_px[:, 0] * 0.5, atol=0.05)
    assert np.allclose(drift["drift_x_nm"], true_px[:, 1] * 0.25, atol=0.05)
    # large motion: the reference frame is renewed on the way, values stay right
    far_px = np.array([[0.0, 0.0], [10.3, -4.0], [20.6, -8.0], [30.9, -12.0], [41.2, -16.0]])
    far = np.stack([shift(scene, offset, mode="grid-wrap") for offset in far_px])
    renewed = drift_from_images(far, 1.0, max_reference_shift=0.1)
    assert np.allclose(renewed.to_numpy(), far_px, atol=0.1)
    with pytest.raises(ValueError, match="2-D"):
        drift_from_images(frames[:, :, :, None], 0.5)
    with pytest.raises(ValueError, match="positive"):
        drift_from_images(frames, 0.0)


def test_default_search_range_is_size_or_spacing_limited() -> None:
    # two frames of a square grid, 20 nm pitch: nearest neighbour 20 nm -> 0.4 * 20 = 8 nm
    y, x = np.meshgrid(np.arange(5) * 20.0, np.arange(5) * 20.0)
    grid = pd.DataFrame({"centroid_y_nm": y.ravel(), "centroid_x_nm": x.ravel()})
    movie = pd.concat([grid.assign(frame=0), grid.assign(frame=1)], ignore_index=True)
    big = movie.assign(equivalent_diameter_nm=12.0, area_nm2=np.pi * 36.0)
    small = movie.assign(equivalent_diameter_nm=5.0, area_nm2=np.pi * 6.25)
    assert default_search_range_nm(big) == pytest.approx(8.0)
    assert default_search_range_nm(small) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="finite diameter"):
        default_search_range_nm(big.assign(equivalent_diameter_nm=np.nan))


def test_crowded_linking_fails_with_a_clear_error() -> None:
    from antema_scale.insitu.tracking import CrowdedLinkingError

    rng = np.random.default_rng(0)
    points = rng.uniform(0.0, 100.0, (400, 2))  # ~5 nm apart, searched over 15 nm
    frames = [
        pd.DataFrame(
            {
                "frame": frame,
                "centroid_y_nm": points[:, 0],
                "centroid_x_nm": points[:, 1],
                "equivalent_diameter_nm": 3.0,
                "area_nm2": 7.0,
            }
        )
        for frame in range(2)
    ]
    with pytest.raises(CrowdedLinkingError, match="search range below the particle spacing"):
        track_particles(
            pd.concat(frames), search_range_nm=15.0, correct_drift=False, adaptive_stop_nm=14.0
        )
