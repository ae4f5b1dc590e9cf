"""Per-frame particle tables and per-frame summaries of an in-situ movie.

A movie analysed by the pipeline gives one particle table with one row per particle and
per frame: the columns of ``antema_scale.particles.analyze_mask`` plus ``frame`` (integer
index along the movie) and ``time_s`` (seconds from the first frame, NaN when unknown).
Everything here works on such pandas tables so that it runs without images.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: Columns a particle table needs before it can be summarised or tracked.
REQUIRED_PARTICLE_COLUMNS: tuple[str, ...] = (
    "frame",
    "centroid_y_nm",
    "centroid_x_nm",
    "equivalent_diameter_nm",
    "area_nm2",
)

#: Columns of the table returned by :func:`frame_summaries`.
FRAME_SUMMARY_COLUMNS: tuple[str, ...] = (
    "frame",
    "time_s",
    "count",
    "mean_diameter_nm",
    "std_diameter_nm",
    "median_diameter_nm",
    "total_area_nm2",
    "image_area_nm2",
    "area_fraction",
    "number_density_per_um2",
)


class MovieTableError(ValueError):
    """A particle table cannot be used as a movie table (missing or bad columns)."""


def check_particle_table(
    particles: pd.DataFrame, *, required: tuple[str, ...] = REQUIRED_PARTICLE_COLUMNS
) -> None:
    """Raise :class:`MovieTableError` when ``particles`` lacks a column a movie needs.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle table (lengths in nm, areas in nm², time in s).
    required : tuple of str
        Columns that must be present.

    Raises
    ------
    MovieTableError
        Naming every missing column, or when ``frame`` holds non-integer or negative values.
    """
    if not isinstance(particles, pd.DataFrame):
        raise MovieTableError(
            f"expected a pandas DataFrame of particles, got {type(particles).__name__}"
        )
    missing = [name for name in required if name not in particles.columns]
    if missing:
        raise MovieTableError(
            "particle table is missing column(s) "
            + ", ".join(repr(name) for name in missing)
            + "; a movie table needs one row per particle per frame with "
            + ", ".join(required)
        )
    if "frame" in particles.columns and len(particles):
        frames = pd.to_numeric(particles["frame"], errors="coerce")
        if frames.isna().any() or (frames < 0).any() or not np.all(np.mod(frames, 1) == 0):
            raise MovieTableError("column 'frame' must hold non-negative integer frame indices")


def frame_times(particles: pd.DataFrame, *, frame_interval_s: float | None = None) -> pd.Series:
    """Time of every frame in seconds, indexed by frame.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle table with ``frame`` and, optionally, ``time_s``.
    frame_interval_s : float, optional
        Seconds between consecutive frames, used for frames whose ``time_s`` is missing
        (time = frame * interval).

    Returns
    -------
    pandas.Series
        Float seconds (NaN where unknown) indexed by the integer frame index.
    """
    frames = np.sort(pd.unique(particles["frame"].astype(np.int64)))
    if "time_s" in particles.columns:
        known = particles[["frame", "time_s"]].dropna().astype({"frame": np.int64})
        times = known.groupby("frame")["time_s"].first().reindex(frames)
    else:
        times = pd.Series(np.nan, index=pd.Index(frames, name="frame"), dtype=float)
    if frame_interval_s is not None:
        if not np.isfinite(frame_interval_s) or frame_interval_s <= 0:
            raise ValueError(
                f"frame_interval_s must be a positive number of seconds, got {frame_interval_s!r}"
            )
        times = times.fillna(pd.Series(frames * float(frame_interval_s), index=times.index))
    times.index.name = "frame"
    times.name = "time_s"
    return times.astype(float)


def with_frame_times(
    particles: pd.DataFrame, *, frame_interval_s: float | None = None
) -> pd.DataFrame:
    """Copy of ``particles`` whose ``time_s`` column is filled from ``frame_interval_s``.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle table.
    frame_interval_s : float, optional
        Seconds between frames for rows without a time; without it missing times stay NaN.

    Returns
    -------
    pandas.DataFrame
        The table with a float ``time_s`` column (seconds).
    """
    out = particles.copy()
    times = frame_times(out, frame_interval_s=frame_interval_s)
    out["time_s"] = out["frame"].astype(np.int64).map(times).astype(float)
    return out


def _area_per_frame(
    frames: pd.Index, image_area_nm2: float | Mapping[int, float] | pd.Series | None
) -> pd.Series:
    if image_area_nm2 is None:
        return pd.Series(np.nan, index=frames, dtype=float)
    if isinstance(image_area_nm2, pd.Series | Mapping):
        areas = pd.Series(image_area_nm2, dtype=float).reindex(frames)
    else:
        areas = pd.Series(float(image_area_nm2), index=frames, dtype=float)
    if (areas.dropna() <= 0).any():
        raise ValueError("image_area_nm2 must be positive (nm²)")
    return areas


def frame_summaries(
    particles: pd.DataFrame,
    *,
    image_area_nm2: float | Mapping[int, float] | pd.Series | None = None,
    frames: pd.DataFrame | None = None,
    frame_interval_s: float | None = None,
) -> pd.DataFrame:
    """Count, size and coverage of the particles in every frame of a movie.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle table: ``frame``, ``equivalent_diameter_nm``, ``area_nm2`` and
        optionally ``time_s``.
    image_area_nm2 : float or mapping frame -> float, optional
        Area of the field of view in nm² (one value for all frames, or one per frame).
        Needed for ``area_fraction`` and ``number_density_per_um2``; NaN without it.
    frames : pandas.DataFrame, optional
        One row per frame of the movie with ``frame`` and optionally ``time_s`` and
        ``image_area_nm2``. Frames listed here but without particles get ``count`` 0, so
        empty frames are not lost. Its ``image_area_nm2`` is used where the argument is None.
    frame_interval_s : float, optional
        Seconds between frames, for frames whose time is not in the tables.

    Returns
    -------
    pandas.DataFrame
        One row per frame with :data:`FRAME_SUMMARY_COLUMNS`: diameters in nm, areas in
        nm², ``area_fraction`` = projected particle area / field area (overlapping
        particles count twice, so it can exceed the covered fraction), number density per
        µm². Mean and std are NaN for empty frames; std uses ``ddof=1`` (NaN for one particle).
    """
    check_particle_table(particles, required=("frame", "equivalent_diameter_nm", "area_nm2"))
    table = particles.copy()
    table["frame"] = table["frame"].astype(np.int64)
    frame_index = pd.Index(np.sort(pd.unique(table["frame"])), name="frame")
    times = frame_times(table, frame_interval_s=None) if len(table) else pd.Series(dtype=float)
    frame_area: pd.Series | None = None
    if frames is not None:
        check_particle_table(frames, required=("frame",))
        listed = frames.assign(frame=frames["frame"].astype(np.int64)).drop_duplicates("frame")
        frame_index = frame_index.union(pd.Index(listed["frame"], name="frame"))
        listed = listed.set_index("frame")
        if "time_s" in listed.columns:
            times = listed["time_s"].astype(float).combine_first(times)
        if "image_area_nm2" in listed.columns:
            frame_area = listed["image_area_nm2"].astype(float)
    times = times.reindex(frame_index)
    if frame_interval_s is not None:
        times = times.fillna(
            pd.Series(frame_index.to_numpy() * float(frame_interval_s), index=frame_index)
        )
    if image_area_nm2 is None and frame_area is not None:
        areas = frame_area.reindex(frame_index)
    else:
        areas = _area_per_frame(frame_index, image_area_nm2)

    grouped = table.groupby("frame")
    diameters = grouped["equivalent_diameter_nm"]
    summary = pd.DataFrame(
        {
            "count": grouped.size(),
            "mean_diameter_nm": diameters.mean(),
            "std_diameter_nm": diameters.std(ddof=1),
            "median_diameter_nm": diameters.median(),
            "total_area_nm2": grouped["area_nm2"].sum(),
        }
    ).reindex(frame_index)
    summary["count"] = summary["count"].fillna(0).astype(np.int64)
    summary["total_area_nm2"] = summary["total_area_nm2"].fillna(0.0)
    summary["time_s"] = times.astype(float)
    summary["image_area_nm2"] = areas.astype(float)
    summary["area_fraction"] = summary["total_area_nm2"] / summary["image_area_nm2"]
    summary["number_density_per_um2"] = summary["count"] / (summary["image_area_nm2"] / 1.0e6)
    return summary.reset_index()[list(FRAME_SUMMARY_COLUMNS)]
