"""Per-frame summaries of movie particle tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from antema_scale.insitu import FRAME_SUMMARY_COLUMNS, MovieTableError, frame_summaries, frame_times


def small_movie() -> pd.DataFrame:
    """Frame 0: diameters 2, 4, 6 nm; frame 2: one particle of 10 nm; frame 1 is empty."""
    diameters = np.array([2.0, 4.0, 6.0, 10.0])
    return pd.DataFrame(
        {
            "frame": [0, 0, 0, 2],
            "time_s": [0.0, 0.0, 0.0, 1.0],
            "equivalent_diameter_nm": diameters,
            "area_nm2": np.pi * diameters**2 / 4.0,
            "centroid_y_nm": [10.0, 20.0, 30.0, 40.0],
            "centroid_x_nm": [5.0, 5.0, 5.0, 5.0],
        }
    )


def test_summary_values_match_numpy() -> None:
    summary = frame_summaries(small_movie(), image_area_nm2=1000.0)
    assert list(summary.columns) == list(FRAME_SUMMARY_COLUMNS)
    first = summary.set_index("frame").loc[0]
    assert first["count"] == 3
    assert first["mean_diameter_nm"] == pytest.approx(4.0)
    assert first["std_diameter_nm"] == pytest.approx(np.std([2.0, 4.0, 6.0], ddof=1))
    assert first["total_area_nm2"] == pytest.approx(np.pi * (1 + 4 + 9))
    assert first["area_fraction"] == pytest.approx(np.pi * 14 / 1000.0)
    assert first["number_density_per_um2"] == pytest.approx(3 / 1000.0 * 1e6)
    last = summary.set_index("frame").loc[2]
    assert last["count"] == 1 and np.isnan(last["std_diameter_nm"])
    assert last["time_s"] == 1.0


def test_empty_frames_listed_in_the_frame_table_are_kept() -> None:
    frames = pd.DataFrame(
        {"frame": [0, 1, 2, 3], "time_s": [0.0, 0.5, 1.0, 1.5], "image_area_nm2": 2000.0}
    )
    summary = frame_summaries(small_movie(), frames=frames).set_index("frame")
    assert summary["count"].tolist() == [3, 0, 1, 0]
    assert summary.loc[1, "time_s"] == 0.5
    assert summary.loc[1, "area_fraction"] == 0.0
    assert np.isnan(summary.loc[1, "mean_diameter_nm"])
    assert summary.loc[0, "image_area_nm2"] == 2000.0


def test_per_frame_image_areas_and_missing_area() -> None:
    summary = frame_summaries(small_movie(), image_area_nm2={0: 100.0, 2: 200.0}).set_index("frame")
    assert summary.loc[2, "area_fraction"] == pytest.approx(np.pi * 25 / 200.0)
    without = frame_summaries(small_movie())
    assert without["area_fraction"].isna().all()


def test_frame_times_filled_from_interval() -> None:
    movie = small_movie().drop(columns="time_s")
    times = frame_times(movie, frame_interval_s=0.2)
    assert times.to_dict() == {0: 0.0, 2: pytest.approx(0.4)}
    assert frame_times(movie).isna().all()
    with pytest.raises(ValueError, match="positive"):
        frame_times(movie, frame_interval_s=0.0)


def test_missing_columns_are_named() -> None:
    with pytest.raises(MovieTableError, match="'frame'"):
        frame_summaries(small_movie().drop(columns="frame"))
    with pytest.raises(ValueError, match="positive"):
        frame_summaries(small_movie(), image_area_nm2=-5.0)
