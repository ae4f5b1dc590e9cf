"""Link the particles of an in-situ movie into tracks with trackpy, in nm.

Linking is trackpy's Crocker–Grier algorithm (``trackpy.link``) on particle centroids
in nm. Stage drift is removed before linking: by default a first linking pass gives the
median displacement of linked particles between frames (:func:`~.drift.drift_from_links`),
positions are corrected by it and linked again, so the search range only has to cover
the particles' own motion. A drift measured from the images
(:func:`~.drift.drift_from_images`) can be passed instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from antema_scale.insitu.drift import DRIFT_COLUMNS, drift_from_links, zero_drift
from antema_scale.insitu.frames import check_particle_table, with_frame_times

#: Columns that lead every tracks table (the input's other columns follow them).
TRACK_COLUMNS: tuple[str, ...] = (
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
)

#: Columns of the table returned by :func:`growth_rates`.
GROWTH_COLUMNS: tuple[str, ...] = (
    "track_id",
    "n_points",
    "t_start_s",
    "t_end_s",
    "diameter_start_nm",
    "diameter_end_nm",
    "growth_rate_nm_per_s",
    "growth_rate_stderr_nm_per_s",
    "intercept_nm",
    "r_squared",
    "area_rate_nm2_per_s",
    "area_rate_stderr_nm2_per_s",
)

_POSITION = ["centroid_y_nm", "centroid_x_nm"]


class CrowdedLinkingError(ValueError):
    """Particles too crowded for the search range: the linking problem cannot be solved."""


_LINK_POSITION = ["_link_y_nm", "_link_x_nm"]


def _link(
    table: pd.DataFrame, search_range_nm: float, memory: int, adaptive_stop_nm: float | None
) -> pd.Series:
    """trackpy labels for the rows of ``table`` (linked on the ``_link_*`` columns)."""
    import trackpy

    trackpy.quiet()
    # crowded subnetworks shrink the search range instead of failing (only they are affected)
    stop = 0.25 * float(search_range_nm) if adaptive_stop_nm is None else float(adaptive_stop_nm)
    options: dict[str, object] = {"memory": int(memory), "adaptive_stop": stop}
    from trackpy.linking import SubnetOversizeException

    with warnings.catch_warnings():
        # trackpy 0.7 calls sort_values(inplace=True), deprecated by pandas 3: not ours to fix
        warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
        try:
            linked = trackpy.link(
                table[_LINK_POSITION + ["frame"]],
                float(search_range_nm),
                pos_columns=_LINK_POSITION,
                t_column="frame",
                **options,
            )
        except SubnetOversizeException as error:
            raise CrowdedLinkingError(
                f"too many particles lie within the {search_range_nm:.3g} nm search range of "
                f"each other to link them unambiguously ({error}); use a search range below "
                "the particle spacing (the default is 0.4 x the median nearest-neighbour "
                "distance) or a smaller adaptive_stop_nm"
            ) from None
    return linked["particle"].reindex(table.index)


def _apply_drift(table: pd.DataFrame, drift: pd.DataFrame) -> pd.DataFrame:
    per_row = drift.reindex(table["frame"].to_numpy()).fillna(0.0)
    out = table.copy()
    out["drift_y_nm"] = per_row["drift_y_nm"].to_numpy()
    out["drift_x_nm"] = per_row["drift_x_nm"].to_numpy()
    out["_link_y_nm"] = out["centroid_y_nm"] - out["drift_y_nm"]
    out["_link_x_nm"] = out["centroid_x_nm"] - out["drift_x_nm"]
    return out


def _track_one_movie(
    table: pd.DataFrame,
    *,
    search_range_nm: float,
    memory: int,
    correct_drift: bool,
    drift_nm: pd.DataFrame | None,
    drift_passes: int,
    drift_search_range_nm: float | None,
    adaptive_stop_nm: float | None,
) -> pd.DataFrame:
    frames = np.sort(pd.unique(table["frame"]))
    drift = zero_drift(frames) if drift_nm is None else drift_nm[list(DRIFT_COLUMNS)].astype(float)
    current = _apply_drift(table, drift)
    wide_first_pass = correct_drift and drift_nm is None and drift_search_range_nm is not None
    if wide_first_pass:
        # a wide first pass only to measure the drift; crowded subnetworks shrink back
        wide_stop = min(search_range_nm, drift_search_range_nm)
        labels = _link(current, drift_search_range_nm, memory, adaptive_stop_nm or 0.5 * wide_stop)
    else:
        labels = _link(current, search_range_nm, memory, adaptive_stop_nm)
    if correct_drift and drift_nm is None:
        for _ in range(max(int(drift_passes), 1 if wide_first_pass else 0)):
            linked = current.assign(particle=labels)
            residual = drift_from_links(
                linked, pos_columns=("_link_y_nm", "_link_x_nm"), frames=frames
            )
            drift = drift.add(residual.reindex(drift.index).fillna(0.0), fill_value=0.0)
            current = _apply_drift(table, drift)
            labels = _link(current, search_range_nm, memory, adaptive_stop_nm)
    return current.drop(columns=_LINK_POSITION).assign(_label=labels.to_numpy())


def _renumber_tracks(tracks: pd.DataFrame, group_columns: list[str]) -> pd.Series:
    """Global track ids 0..n-1, ordered by group, first frame, then position."""
    keys = group_columns + ["_label"]
    first = (
        tracks.sort_values(["frame", "centroid_y_nm", "centroid_x_nm"])
        .groupby(keys, sort=False, dropna=False)
        .head(1)[keys]
        .reset_index(drop=True)
    )
    first["track_id"] = np.arange(len(first), dtype=np.int64)
    return tracks[keys].merge(first, on=keys, how="left")["track_id"].set_axis(tracks.index)


def track_particles(
    particles: pd.DataFrame,
    *,
    search_range_nm: float,
    memory: int = 0,
    frame_interval_s: float | None = None,
    correct_drift: bool = True,
    drift_nm: pd.DataFrame | None = None,
    drift_passes: int = 2,
    drift_search_range_nm: float | None = None,
    group_by: str | Sequence[str] | None = None,
    adaptive_stop_nm: float | None = None,
) -> pd.DataFrame:
    """Link per-frame particles into tracks (trackpy, positions in nm).

    Parameters
    ----------
    particles : pandas.DataFrame
        One row per particle per frame: ``frame`` (int), ``centroid_y_nm``,
        ``centroid_x_nm``, ``equivalent_diameter_nm``, ``area_nm2`` and optionally
        ``time_s``; any other columns are carried through.
    search_range_nm : float
        Largest distance in nm a particle may move between two frames it is seen in,
        after drift correction (trackpy's ``search_range``).
    memory : int
        Number of frames a particle may go missing and still keep its track.
    frame_interval_s : float, optional
        Seconds between frames, used where ``time_s`` is missing.
    correct_drift : bool
        Estimate the stage drift from a first linking pass (median displacement of
        linked particles) and link again on drift-corrected positions.
    drift_nm : pandas.DataFrame, optional
        Known cumulative drift per frame (index ``frame``; ``drift_y_nm``,
        ``drift_x_nm`` in nm), e.g. from :func:`~.drift.drift_from_images`; replaces the
        estimate.
    drift_passes : int
        Number of re-linking passes of the drift estimate.
    drift_search_range_nm : float, optional
        Search range in nm of the first linking pass, the one that only measures the drift:
        set it to the largest expected drift per frame when that exceeds
        ``search_range_nm`` (crowded subnetworks in that pass shrink adaptively).
    group_by : str or sequence of str, optional
        Column(s) that tell movies apart when ``particles`` holds several; each movie is
        tracked on its own. Track ids stay unique over all movies.
    adaptive_stop_nm : float, optional
        Passed to trackpy as ``adaptive_stop``: where too many candidates crowd one
        linking subnetwork, the search range shrinks (by 5 % steps) down to this many nm
        instead of failing. Default: a quarter of the search range. Uncrowded frames are
        linked with the full search range.

    Returns
    -------
    pandas.DataFrame
        The particle rows with :data:`TRACK_COLUMNS` first: ``track_id`` (int, unique),
        ``drift_*_nm`` (drift of that frame relative to the first, nm) and
        ``track_length`` (number of frames the track is seen in); sorted by track and frame.

    Raises
    ------
    MovieTableError
        When a needed column is missing or ``frame`` is not integer.
    ValueError
        When ``search_range_nm`` is not positive or ``memory`` is negative.
    CrowdedLinkingError
        When particles are so crowded within the search range that trackpy cannot link
        them even after shrinking it to ``adaptive_stop_nm``.
    """
    check_particle_table(particles)
    if not np.isfinite(search_range_nm) or search_range_nm <= 0:
        raise ValueError(
            f"search_range_nm must be a positive distance in nm, got {search_range_nm!r}"
        )
    if memory < 0:
        raise ValueError(f"memory must be >= 0 frames, got {memory!r}")
    group_columns = [group_by] if isinstance(group_by, str) else list(group_by or [])
    missing = [c for c in group_columns if c not in particles.columns]
    if missing:
        raise ValueError(f"group_by column(s) {missing} are not in the particle table")
    finite = particles[_POSITION].notna().all(axis=1)
    table = with_frame_times(particles[finite], frame_interval_s=frame_interval_s)
    table["frame"] = table["frame"].astype(np.int64)
    table = table.drop(
        columns=[c for c in (*DRIFT_COLUMNS, "track_id", "track_length") if c in table.columns]
    )
    if table.empty:
        empty = table.assign(
            track_id=pd.Series(dtype=np.int64), drift_y_nm=0.0, drift_x_nm=0.0, track_length=0
        )
        return empty[list(TRACK_COLUMNS) + [c for c in table.columns if c not in TRACK_COLUMNS]]

    options = {
        "search_range_nm": search_range_nm,
        "memory": memory,
        "correct_drift": correct_drift,
        "drift_nm": drift_nm,
        "drift_passes": drift_passes,
        "drift_search_range_nm": drift_search_range_nm,
        "adaptive_stop_nm": adaptive_stop_nm,
    }
    if group_columns:
        pieces = [
            _track_one_movie(movie, **options)
            for _, movie in table.groupby(group_columns, sort=True, dropna=False)
        ]
        tracked = pd.concat(pieces)
    else:
        tracked = _track_one_movie(table, **options)
    tracked["track_id"] = _renumber_tracks(tracked, group_columns)
    tracked = tracked.drop(columns="_label")
    tracked["track_length"] = (
        tracked.groupby("track_id")["frame"].transform("size").astype(np.int64)
    )
    ordered = list(TRACK_COLUMNS) + [c for c in tracked.columns if c not in TRACK_COLUMNS]
    return tracked.sort_values(["track_id", "frame"])[ordered].reset_index(drop=True)


def _fit_line(time_s: np.ndarray, values: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares slope, its standard error, intercept and r² (NaN when undefined)."""
    from scipy.stats import linregress

    if np.ptp(time_s) == 0:
        return np.nan, np.nan, np.nan, np.nan
    if np.ptp(values) == 0:  # a constant: exact zero slope (linregress gives a NaN error)
        return 0.0, 0.0 if len(time_s) > 2 else np.nan, float(values[0]), np.nan
    fit = linregress(time_s, values)
    stderr = fit.stderr if len(time_s) > 2 else np.nan
    r_squared = fit.rvalue**2 if np.isfinite(fit.rvalue) else np.nan
    return float(fit.slope), float(stderr), float(fit.intercept), float(r_squared)


def growth_rates(tracks: pd.DataFrame, *, min_points: int = 3) -> pd.DataFrame:
    """Growth rate of every track: linear fit of equivalent diameter against time.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Output of :func:`track_particles` (``track_id``, ``time_s``,
        ``equivalent_diameter_nm``, ``area_nm2``).
    min_points : int
        Tracks seen in fewer frames are left out (at least 3 are needed for an
        uncertainty).

    Returns
    -------
    pandas.DataFrame
        One row per track with :data:`GROWTH_COLUMNS`: ``growth_rate_nm_per_s`` is the
        least-squares slope of equivalent diameter (nm) over time (s) with its standard
        error ``growth_rate_stderr_nm_per_s`` (NaN with 2 points); ``intercept_nm`` is the
        fitted diameter at t = 0; ``area_rate_nm2_per_s`` the same fit for projected area.

    Raises
    ------
    ValueError
        When the tracks have no frame times (pass ``frame_interval_s`` when tracking).
    """
    check_particle_table(
        tracks, required=("track_id", "time_s", "equivalent_diameter_nm", "area_nm2")
    )
    if min_points < 2:
        raise ValueError(f"min_points must be >= 2 to fit a line, got {min_points}")
    timed = tracks.dropna(subset=["time_s", "equivalent_diameter_nm"])
    if len(tracks) and timed.empty:
        raise ValueError(
            "tracks have no frame times (time_s is NaN): growth rates need seconds; "
            "give the frame interval (frame_interval_s / --frame-interval)"
        )
    rows = []
    for track_id, track in timed.groupby("track_id", sort=True):
        if len(track) < min_points:
            continue
        track = track.sort_values("time_s")
        time_s = track["time_s"].to_numpy(float)
        diameter = track["equivalent_diameter_nm"].to_numpy(float)
        slope, stderr, intercept, r_squared = _fit_line(time_s, diameter)
        area_slope, area_stderr, _, _ = _fit_line(time_s, track["area_nm2"].to_numpy(float))
        rows.append(
            {
                "track_id": track_id,
                "n_points": len(track),
                "t_start_s": time_s[0],
                "t_end_s": time_s[-1],
                "diameter_start_nm": diameter[0],
                "diameter_end_nm": diameter[-1],
                "growth_rate_nm_per_s": slope,
                "growth_rate_stderr_nm_per_s": stderr,
                "intercept_nm": intercept,
                "r_squared": r_squared,
                "area_rate_nm2_per_s": area_slope,
                "area_rate_stderr_nm2_per_s": area_stderr,
            }
        )
    result = pd.DataFrame(rows, columns=list(GROWTH_COLUMNS))
    return result.astype({"track_id": np.int64, "n_points": np.int64})


def tracking_scores(tracks: pd.DataFrame, *, truth_column: str = "truth_id") -> dict[str, float]:
    """Purity and completeness of tracks against known particle identities.

    Every detection (row) with a known true identity counts once. With ``N`` such
    detections, ``T`` the found tracks and ``G`` the true particles:

    * **purity** = Σ over tracks T of max over G of |T ∩ G|, divided by N: the fraction of
      detections that carry the majority identity of their track. Tracks that jump from
      one particle to another lower it.
    * **completeness** = Σ over true particles G of max over T of |T ∩ G|, divided by N:
      the fraction of each particle's detections that sit in its single best track.
      Tracks broken into pieces lower it.

    Both are 1 for perfect tracking.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Output of :func:`track_particles` with a column of true identities.
    truth_column : str
        Column with the true particle identity (NaN = unknown, not counted).

    Returns
    -------
    dict
        ``purity``, ``completeness`` (fractions 0..1), ``n_detections``, ``n_tracks``,
        ``n_true_particles``.
    """
    check_particle_table(tracks, required=("track_id", truth_column))
    known = tracks.dropna(subset=[truth_column])
    if known.empty:
        raise ValueError(f"no detection has a true identity in column {truth_column!r}")
    overlap = known.groupby(["track_id", truth_column]).size()
    n_detections = float(len(known))
    purity = overlap.groupby(level="track_id").max().sum() / n_detections
    completeness = overlap.groupby(level=truth_column).max().sum() / n_detections
    return {
        "purity": float(purity),
        "completeness": float(completeness),
        "n_detections": n_detections,
        "n_tracks": float(known["track_id"].nunique()),
        "n_true_particles": float(known[truth_column].nunique()),
    }


def default_search_range_nm(particles: pd.DataFrame) -> float:
    """A linking search range from the particles themselves, in nm.

    The smaller of the median equivalent diameter and 40 % of the median distance from
    a particle to its nearest neighbour in the same frame: a particle may move by about
    its own size between frames, but never so far that its neighbour becomes as likely a
    match. Drift is removed before linking, so it does not count here.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle table (``frame``, centroids and ``equivalent_diameter_nm``, nm).

    Returns
    -------
    float
        Search range in nm.

    Raises
    ------
    MovieTableError
        When a needed column is missing.
    ValueError
        When the table holds no particle with a finite diameter.
    """
    from scipy.spatial import cKDTree

    check_particle_table(particles)
    diameters = particles["equivalent_diameter_nm"].to_numpy(float)
    diameters = diameters[np.isfinite(diameters) & (diameters > 0)]
    if diameters.size == 0:
        raise ValueError("cannot choose a search range: no particle has a finite diameter")
    group = [c for c in ("image_id", "frame") if c in particles.columns]
    nearest: list[np.ndarray] = []
    for _, rows in particles.groupby(group):
        points = rows[_POSITION].dropna().to_numpy(float)
        if len(points) > 1:
            distances, _ = cKDTree(points).query(points, k=2)
            nearest.append(distances[:, 1])
    search = float(np.median(diameters))
    if nearest:
        search = min(search, 0.4 * float(np.median(np.concatenate(nearest))))
    return search
