"""Appearance, disappearance and coalescence events in constructed movies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from antema_scale.insitu import EVENT_COLUMNS, detect_events, track_particles


def disc(frame: int, y: float, x: float, diameter: float, truth: str) -> dict[str, object]:
    """One detection: a disc of ``diameter`` nm at (y, x) nm; 1 s per frame."""
    return {
        "frame": frame,
        "time_s": float(frame),
        "centroid_y_nm": y,
        "centroid_x_nm": x,
        "equivalent_diameter_nm": diameter,
        "area_nm2": np.pi * diameter**2 / 4.0,
        "truth_id": truth,
    }


def merging_movie(merged_area_factor: float = 0.95) -> pd.DataFrame:
    """A (8 nm) and B (6 nm) approach and coalesce into C in frame 5; D stays; E appears in
    frame 3 near the left edge; F dissolves after frame 6. Field of view 400 x 400 nm."""
    rows = []
    merged_diameter = float(np.sqrt(merged_area_factor * (8.0**2 + 6.0**2)))
    for frame in range(10):
        if frame < 5:
            rows.append(disc(frame, 100.0, 100.0 + 0.3 * frame, 8.0, "A"))
            rows.append(disc(frame, 100.0, 110.0 - 0.6 * frame, 6.0, "B"))
        else:
            rows.append(disc(frame, 100.0, 104.0, merged_diameter, "C"))
        rows.append(disc(frame, 300.0, 300.0, 5.0, "D"))
        if frame >= 3:
            rows.append(disc(frame, 200.0, 3.0, 3.0, "E"))
        if frame <= 6:
            rows.append(disc(frame, 250.0, 150.0, 4.0 - 0.4 * frame, "F"))
    return pd.DataFrame(rows)


def test_coalescence_appearance_and_disappearance_are_found() -> None:
    tracks = track_particles(merging_movie(), search_range_nm=4.0)
    events = detect_events(
        tracks, search_range_nm=4.0, field_of_view_nm=(400.0, 400.0), border_margin_nm=5.0
    )
    assert list(events.columns) == list(EVENT_COLUMNS)
    truth_of = tracks.groupby("track_id")["truth_id"].first()

    merge = events[events["event"] == "coalescence"]
    assert len(merge) == 1
    merge = merge.iloc[0]
    assert merge["frame"] == 5 and merge["time_s"] == 5.0
    parents = {truth_of[int(p)] for p in merge["related_track_ids"].split(";")}
    assert parents == {"A", "B"}
    assert merge["area_before_nm2"] == pytest.approx(np.pi * (16 + 9))
    assert merge["area_after_nm2"] == pytest.approx(0.95 * np.pi * (16 + 9))

    appear = events[events["event"] == "appearance"]
    assert [truth_of[t] for t in appear["track_id"]] == ["E"]
    assert appear.iloc[0]["frame"] == 3 and bool(appear.iloc[0]["near_border"])

    gone = events[events["event"] == "disappearance"]
    # the parent that merged is not reported as disappeared; F dissolves, last seen in frame 6
    assert [truth_of[t] for t in gone["track_id"]] == ["F"]
    assert gone.iloc[0]["frame"] == 6 and not bool(gone.iloc[0]["near_border"])


def test_no_coalescence_when_the_area_does_not_add_up() -> None:
    # the "merged" particle has only 40 % of the summed area: B vanished, A shrank
    tracks = track_particles(merging_movie(merged_area_factor=0.4), search_range_nm=4.0)
    events = detect_events(tracks, search_range_nm=4.0)
    assert "coalescence" not in set(events["event"])
    assert events["near_border"].isna().all()


def test_parents_far_apart_do_not_coalesce() -> None:
    rows = []
    for frame in range(6):
        rows.append(disc(frame, 50.0, 50.0, 6.0 if frame < 3 else float(np.sqrt(72.0)), "A"))
        if frame < 3:
            rows.append(disc(frame, 50.0, 120.0, 6.0, "B"))  # 70 nm away: it dissolves
    tracks = track_particles(pd.DataFrame(rows), search_range_nm=3.0)
    events = detect_events(tracks, search_range_nm=3.0)
    assert events["event"].tolist() == ["disappearance"]


def test_bad_arguments_raise() -> None:
    tracks = track_particles(merging_movie(), search_range_nm=4.0)
    with pytest.raises(ValueError, match="area_tolerance"):
        detect_events(tracks, search_range_nm=4.0, area_tolerance=2.0)
    with pytest.raises(ValueError, match="'track_id'"):
        detect_events(tracks.drop(columns="track_id"), search_range_nm=4.0)


def test_separation_flicker_gives_a_split_then_a_coalescence() -> None:
    # a peanut-shaped pair is separated into two in frames 0-1 and 4-5, seen whole in 2-3
    rows = []
    for frame in range(6):
        if frame in (2, 3):
            rows.append(disc(frame, 50.0, 53.0, float(np.sqrt(2 * 36.0)), "pair"))
        else:
            rows.append(disc(frame, 50.0, 50.0, 6.0, "left"))
            rows.append(disc(frame, 50.0, 56.0, 6.0, "right"))
        rows.append(disc(frame, 150.0, 150.0, 5.0, "other"))
    tracks = track_particles(pd.DataFrame(rows), search_range_nm=4.0)
    events = detect_events(tracks, search_range_nm=4.0)
    assert events["event"].tolist() == ["coalescence", "split"]
    merge, split = events.iloc[0], events.iloc[1]
    assert merge["frame"] == 2 and split["frame"] == 4
    assert split["track_id"] == merge["track_id"]
    assert split["area_before_nm2"] == pytest.approx(np.pi * 18.0)
    assert split["area_after_nm2"] == pytest.approx(np.pi * 18.0)
    assert len(split["related_track_ids"].split(";")) == 2
