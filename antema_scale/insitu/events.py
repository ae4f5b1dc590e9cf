"""Events of a tracked movie: appearance, disappearance, coalescence and split of particles.

Heuristics (all distances in nm, on drift-corrected positions
``centroid - drift`` from :func:`~.tracking.track_particles`):

* **coalescence** at frame ``t'`` (the movie frame after ``t``): a child detection ``c`` in
  ``t'`` absorbs one or more tracks that end in ``t``. An ended track ``e`` is a candidate
  parent of ``c`` when its last centroid lies within
  ``(d_e + d_c) / 2 + search_range_nm`` of ``c``'s centroid (``d`` = equivalent
  diameters: the two discs touch, give or take one step of motion). A merge of parents
  with areas ``a_i`` can give a child area anywhere between the volume-conserving
  ``(Σ a_i^1.5)^(2/3)`` (compact spheres) and the summed ``Σ a_i`` (particles that only
  touch); the *gap* is the child area's distance from that range. Candidates are added,
  nearest first, to the child's own predecessor (the same track in ``t``, if any) while
  each brings the gap down (the predecessor alone has gap ``|a_c - a_pred|``). The merge
  is accepted when at least two parents remain, one of them ended in ``t``, and the gap is
  at most ``area_tolerance`` times the volume-conserving area. Each ended track is the
  parent of at most one coalescence. Ended tracks smaller than ``min_parent_fraction``
  (5 %) of the child's area are not candidates: a tiny particle dissolving next to a large
  one changes its area by less than the measurement noise, exactly as a merge would.
* **split** at frame ``t'``: the same test with time reversed: a particle of frame ``t``
  whose area is shared by tracks that start in ``t'`` (and its own continuation). Real
  particles rarely split; a split followed by a coalescence of the same tracks is usually
  the segmentation or the separation of touching particles flickering between frames.
* **appearance**: a track that starts after the movie's first frame and is neither the
  product of a coalescence nor a piece of a split.
* **disappearance**: a track that ends before the movie's last frame and neither merged
  into another one nor split (dissolution in Ostwald ripening, leaving the field, or a
  missed detection longer than the linking memory).

With the field of view known (``field_of_view_nm``), ``near_border`` tells whether the
event happened within ``border_margin_nm`` plus the particle's radius of the frame edge:
particles entering or leaving the field rather than nucleating or dissolving.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from antema_scale.insitu.frames import check_particle_table

#: Columns of the events table (group columns, when given, come first).
EVENT_COLUMNS: tuple[str, ...] = (
    "event",
    "frame",
    "time_s",
    "track_id",
    "related_track_ids",
    "centroid_y_nm",
    "centroid_x_nm",
    "equivalent_diameter_nm",
    "area_before_nm2",
    "area_after_nm2",
    "near_border",
)


def _corrected(rows: pd.DataFrame) -> np.ndarray:
    drift_y = rows["drift_y_nm"] if "drift_y_nm" in rows else 0.0
    drift_x = rows["drift_x_nm"] if "drift_x_nm" in rows else 0.0
    return np.column_stack(
        [
            (rows["centroid_y_nm"] - drift_y).to_numpy(float),
            (rows["centroid_x_nm"] - drift_x).to_numpy(float),
        ]
    )


def _near_border(
    row: pd.Series, field_of_view_nm: tuple[float, float] | None, border_margin_nm: float
) -> float | bool:
    if field_of_view_nm is None:
        return np.nan
    height, width = field_of_view_nm
    reach = border_margin_nm + 0.5 * float(row["equivalent_diameter_nm"])
    y, x = float(row["centroid_y_nm"]), float(row["centroid_x_nm"])
    return bool(y < reach or x < reach or y > height - reach or x > width - reach)


def _merged_area_gap(child_area: float, parent_areas: list[float]) -> float:
    """Distance (nm²) of ``child_area`` from the range a merge of ``parent_areas`` can give.

    The lower end conserves volume (spheres: area_after = (Σ a^1.5)^(2/3)), the upper end
    conserves projected area (particles just touching): Σ a.
    """
    areas = np.asarray(parent_areas, dtype=float)
    volume_conserving = float(np.sum(areas**1.5) ** (2.0 / 3.0))
    summed = float(areas.sum())
    return max(volume_conserving - child_area, 0.0, child_area - summed)


def _coalescences_between(
    before: pd.DataFrame,
    after: pd.DataFrame,
    ended: pd.DataFrame,
    *,
    search_range_nm: float,
    area_tolerance: float,
    min_parent_fraction: float,
) -> list[tuple[pd.Series, list[int], float]]:
    """Merges of tracks ending in ``before`` into detections of ``after``."""
    if ended.empty or after.empty:
        return []
    ended_xy = _corrected(ended)
    ended_ids = ended["track_id"].to_numpy()
    ended_area = ended["area_nm2"].to_numpy(float)
    ended_diameter = ended["equivalent_diameter_nm"].to_numpy(float)
    predecessor_area = before.set_index("track_id")["area_nm2"]
    ended_set = set(ended_ids.tolist())
    assigned: set[int] = set()
    merges = []
    children = after.sort_values("area_nm2", ascending=False)
    for (_, child), child_xy in zip(children.iterrows(), _corrected(children), strict=True):
        child_id = int(child["track_id"])
        child_area = float(child["area_nm2"])
        distance = np.hypot(*(ended_xy - child_xy).T)
        reach = 0.5 * (ended_diameter + float(child["equivalent_diameter_nm"])) + search_range_nm
        candidates = [
            i
            for i in np.argsort(distance)
            if distance[i] <= reach[i]
            and int(ended_ids[i]) not in assigned
            and ended_area[i] >= min_parent_fraction * child_area
        ]
        has_predecessor = child_id in predecessor_area.index and child_id not in ended_set
        parents = [child_id] if has_predecessor else []
        areas = [float(predecessor_area[child_id])] if has_predecessor else []
        gap = abs(child_area - areas[0]) if has_predecessor else np.inf
        merged_ended: list[int] = []
        for i in candidates:
            trial_gap = _merged_area_gap(child_area, [*areas, float(ended_area[i])])
            if trial_gap < gap:
                areas.append(float(ended_area[i]))
                merged_ended.append(int(ended_ids[i]))
                gap = trial_gap
        parents += merged_ended
        if not merged_ended or len(parents) < 2:
            continue
        if gap > area_tolerance * _merged_area_gap(0.0, areas):
            continue
        assigned.update(merged_ended)
        merges.append((child, sorted(parents), float(np.sum(areas))))
    return merges


def _events_of_movie(
    tracks: pd.DataFrame,
    *,
    search_range_nm: float,
    area_tolerance: float,
    min_parent_fraction: float,
    field_of_view_nm: tuple[float, float] | None,
    border_margin_nm: float,
) -> list[dict[str, object]]:
    frames = np.sort(pd.unique(tracks["frame"]))
    by_frame = {int(f): rows for f, rows in tracks.groupby("frame")}
    ends = tracks.sort_values("frame").groupby("track_id").tail(1)
    starts = tracks.sort_values("frame").groupby("track_id").head(1)
    events: list[dict[str, object]] = []
    merged_parents: set[int] = set()
    merge_products: set[tuple[int, int]] = set()
    split_pieces: set[tuple[int, int]] = set()
    split_wholes: set[int] = set()
    for frame, next_frame in zip(frames[:-1], frames[1:], strict=True):
        ended = ends[ends["frame"] == frame]
        merges = _coalescences_between(
            by_frame[int(frame)],
            by_frame[int(next_frame)],
            ended,
            search_range_nm=search_range_nm,
            area_tolerance=area_tolerance,
            min_parent_fraction=min_parent_fraction,
        )
        for child, parents, summed in merges:
            child_id = int(child["track_id"])
            merged_parents.update(p for p in parents if p != child_id)
            merge_products.add((child_id, int(next_frame)))
            events.append(
                _event_row(
                    "coalescence",
                    child,
                    parents,
                    summed,
                    float(child["area_nm2"]),
                    field_of_view_nm,
                    border_margin_nm,
                )
            )
        started = starts[starts["frame"] == next_frame]
        splits = _coalescences_between(
            by_frame[int(next_frame)],
            by_frame[int(frame)],
            started,
            search_range_nm=search_range_nm,
            area_tolerance=area_tolerance,
            min_parent_fraction=min_parent_fraction,
        )
        for whole, pieces, summed in splits:
            whole_id = int(whole["track_id"])
            split_pieces.update((p, int(next_frame)) for p in pieces if p != whole_id)
            split_wholes.add(whole_id)
            row = _event_row(
                "split",
                whole,
                pieces,
                float(whole["area_nm2"]),
                summed,
                field_of_view_nm,
                border_margin_nm,
            )
            times = by_frame[int(next_frame)]["time_s"] if "time_s" in tracks else None
            row["frame"] = int(next_frame)
            row["time_s"] = float(times.iloc[0]) if times is not None else np.nan
            events.append(row)
    first_frame, last_frame = frames[0], frames[-1]
    for _, row in starts[starts["frame"] > first_frame].iterrows():
        key = (int(row["track_id"]), int(row["frame"]))
        if key not in merge_products and key not in split_pieces:
            events.append(
                _event_row(
                    "appearance",
                    row,
                    [],
                    np.nan,
                    float(row["area_nm2"]),
                    field_of_view_nm,
                    border_margin_nm,
                )
            )
    for _, row in ends[ends["frame"] < last_frame].iterrows():
        if int(row["track_id"]) not in merged_parents | split_wholes:
            events.append(
                _event_row(
                    "disappearance",
                    row,
                    [],
                    float(row["area_nm2"]),
                    np.nan,
                    field_of_view_nm,
                    border_margin_nm,
                )
            )
    return events


def _event_row(
    kind: str,
    row: pd.Series,
    parents: list[int],
    area_before: float,
    area_after: float,
    field_of_view_nm: tuple[float, float] | None,
    border_margin_nm: float,
) -> dict[str, object]:
    return {
        "event": kind,
        "frame": int(row["frame"]),
        "time_s": float(row["time_s"]) if "time_s" in row else np.nan,
        "track_id": int(row["track_id"]),
        "related_track_ids": ";".join(str(p) for p in parents),
        "centroid_y_nm": float(row["centroid_y_nm"]),
        "centroid_x_nm": float(row["centroid_x_nm"]),
        "equivalent_diameter_nm": float(row["equivalent_diameter_nm"]),
        "area_before_nm2": area_before,
        "area_after_nm2": area_after,
        "near_border": _near_border(row, field_of_view_nm, border_margin_nm),
    }


def detect_events(
    tracks: pd.DataFrame,
    *,
    search_range_nm: float,
    area_tolerance: float = 0.25,
    min_parent_fraction: float = 0.05,
    field_of_view_nm: tuple[float, float] | None = None,
    border_margin_nm: float = 0.0,
    group_by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Appearance, disappearance, coalescence and split events of a tracked movie.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Output of :func:`~.tracking.track_particles`.
    search_range_nm : float
        The linking search range in nm; a parent's centroid may be this far beyond touching
        distance from the coalesced particle.
    area_tolerance : float
        Largest relative difference between the coalesced particle's projected area and the
        summed area of its parents (0.25 = 25 %). Projected area shrinks as a neck fills in,
        so merges are caught in the first frame after contact.
    min_parent_fraction : float
        An ended track smaller than this fraction of the coalesced particle's area is not
        taken as a parent: a few-% area change of a large particle cannot tell a tiny
        neighbour merging from one dissolving next to it (Ostwald ripening).
    field_of_view_nm : (float, float), optional
        Height and width of the frames in nm, to flag events at the frame edge.
    border_margin_nm : float
        Extra distance from the edge, in nm, that still counts as ``near_border``.
    group_by : str or sequence of str, optional
        Column(s) that tell movies apart, as given to ``track_particles``.

    Returns
    -------
    pandas.DataFrame
        One row per event with :data:`EVENT_COLUMNS` (group columns first), sorted by
        frame: ``event`` is ``appearance``, ``disappearance``, ``coalescence`` or ``split``;
        ``track_id`` is the new, ending, coalesced or splitting track;
        ``related_track_ids`` lists, separated by ``;``, the tracks that merged
        (coalescence) or the tracks it split into (split); ``frame`` and ``time_s`` are the
        first frame after a merge or split and the last frame before a disappearance;
        position and diameter are those of the track's row there (of the whole particle
        before a split); ``area_before_nm2`` / ``area_after_nm2`` are the summed areas
        before and after (nm²).
    """
    check_particle_table(
        tracks,
        required=(
            "track_id",
            "frame",
            "centroid_y_nm",
            "centroid_x_nm",
            "equivalent_diameter_nm",
            "area_nm2",
        ),
    )
    if not np.isfinite(search_range_nm) or search_range_nm < 0:
        raise ValueError(
            f"search_range_nm must be a non-negative distance in nm, got {search_range_nm!r}"
        )
    if not 0 < area_tolerance < 1:
        raise ValueError(
            f"area_tolerance must be a fraction between 0 and 1, got {area_tolerance!r}"
        )
    group_columns = [group_by] if isinstance(group_by, str) else list(group_by or [])
    options = {
        "search_range_nm": float(search_range_nm),
        "area_tolerance": float(area_tolerance),
        "min_parent_fraction": float(min_parent_fraction),
        "field_of_view_nm": field_of_view_nm,
        "border_margin_nm": float(border_margin_nm),
    }
    rows: list[dict[str, object]] = []
    if not tracks.empty:
        if group_columns:
            for key, movie in tracks.groupby(group_columns, sort=True, dropna=False):
                keys = dict(
                    zip(group_columns, key if isinstance(key, tuple) else (key,), strict=True)
                )
                rows += [{**keys, **event} for event in _events_of_movie(movie, **options)]
        else:
            rows = _events_of_movie(tracks, **options)
    columns = group_columns + list(EVENT_COLUMNS)
    events = pd.DataFrame(rows, columns=columns)
    order = {"coalescence": 0, "split": 1, "disappearance": 2, "appearance": 3}
    events = events.sort_values(
        ["frame", "event", "track_id"], key=lambda s: s.map(order) if s.name == "event" else s
    )
    return events.reset_index(drop=True)


def coalescence_scores(
    events: pd.DataFrame,
    true_events: pd.DataFrame,
    tracks: pd.DataFrame,
    *,
    truth_column: str = "truth_id",
    frame_window: tuple[int, int] = (-1, 1),
    true_tracks: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Precision and recall of detected coalescences against known ones.

    A true coalescence (``event == "coalescence"``, ``frame``, the surviving
    ``particle_id`` and the absorbed ``related_particle_ids``, ``;``-separated, as in
    ``antema_scale.synth.generate_movie``) is found when a detected coalescence whose frame
    minus the true frame lies in ``frame_window`` involves tracks whose true identities
    (majority of each track's ``truth_column``) include the survivor and at least one
    absorbed particle. In images, touching particles often segment as one blob before
    they have truly merged; a window reaching back, e.g. ``(-10, 1)``, credits those.
    With ``true_tracks`` (the movie's per-frame truth with ``frame``, ``particle_id``,
    ``touches_border``), true merges in which a particle touches the frame edge in the
    frame before or of the merge are left out of the recall (border particles are not
    measured, so those merges cannot be seen); a detection matching one is not counted
    against the precision either.

    Parameters
    ----------
    events : pandas.DataFrame
        Output of :func:`detect_events`.
    true_events : pandas.DataFrame
        Known events with ``event``, ``frame``, ``particle_id``, ``related_particle_ids``.
    tracks : pandas.DataFrame
        The tracks the events came from, with ``truth_column``.
    truth_column : str
        Column of ``tracks`` holding the true identity of each detection.
    frame_window : (int, int)
        Smallest and largest accepted (detected frame - true frame).
    true_tracks : pandas.DataFrame, optional
        Per-frame truth, to leave out merges at the frame edge.

    Returns
    -------
    dict
        ``precision`` (matched detections / counted detections), ``recall`` (found true
        coalescences / counted true ones; NaN without any), ``n_detected``, ``n_true``
        (counted), ``n_at_border`` (true merges left out).
    """
    identity = (
        tracks.dropna(subset=[truth_column])
        .groupby("track_id")[truth_column]
        .agg(lambda values: values.mode().iloc[0])
    )
    detected = events[events["event"] == "coalescence"]
    true = true_events[true_events["event"] == "coalescence"]
    involved = []
    for _, row in detected.iterrows():
        ids = {
            int(row["track_id"]),
            *(int(t) for t in str(row["related_track_ids"]).split(";") if t),
        }
        involved.append({identity[t] for t in ids if t in identity.index})
    matched_detections: set[int] = set()
    border_detections: set[int] = set()
    found = 0
    at_border = 0
    for _, truth in true.iterrows():
        absorbed = {int(p) for p in str(truth["related_particle_ids"]).split(";") if p}
        hidden = _merge_at_border(
            true_tracks, int(truth["frame"]), {int(truth["particle_id"]), *absorbed}
        )
        at_border += hidden
        for position, (frame, members) in enumerate(zip(detected["frame"], involved, strict=True)):
            lead = int(frame) - int(truth["frame"])
            taken = matched_detections | border_detections
            if not frame_window[0] <= lead <= frame_window[1] or position in taken:
                continue
            if int(truth["particle_id"]) in members and members & absorbed:
                (border_detections if hidden else matched_detections).add(position)
                found += not hidden
                break
    n_detected = len(detected) - len(border_detections)
    n_true = len(true) - at_border
    return {
        "precision": len(matched_detections) / n_detected if n_detected else np.nan,
        "recall": found / n_true if n_true else np.nan,
        "n_detected": float(n_detected),
        "n_true": float(n_true),
        "n_at_border": float(at_border),
    }


def _merge_at_border(true_tracks: pd.DataFrame | None, frame: int, particle_ids: set[int]) -> bool:
    """Whether one of ``particle_ids`` touches the frame edge in ``frame - 1`` or ``frame``."""
    if true_tracks is None:
        return False
    rows = true_tracks[
        true_tracks["frame"].isin([frame - 1, frame])
        & true_tracks["particle_id"].isin(particle_ids)
    ]
    return bool(rows["touches_border"].any())
