"""Track the movies of a pipeline results folder and write the tracking outputs.

A results folder of ``antema-scale analyze`` holds ``particles.parquet`` (for movies: one
row per particle per frame, with ``frame`` and ``time_s``), ``images.parquet`` (one row
per image or movie: pixel size, ``height_px``, ``width_px``, ``frames``) and
``store.zarr`` (pixels and masks). Each movie (one ``image_id``) is tracked on its own.

Outputs, in the tracking folder:

* ``tracks.parquet`` -- the tracks table (:func:`~.tracking.track_particles`);
* ``events.csv`` -- appearance, disappearance, coalescence, split (:func:`~.events.detect_events`);
* ``frame_summary.csv`` -- per movie and frame: count, mean/std diameter, area fraction;
* ``growth_rates.csv`` -- per track: linear growth rate of the diameter (nm/s) ± s.e.;
* ``figures/<movie>/*.png`` -- time-series figures and a contact sheet, and
  ``overlay_movie.gif`` (frames with outlines and track ids).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from antema_scale.insitu.events import EVENT_COLUMNS, detect_events
from antema_scale.insitu.frames import FRAME_SUMMARY_COLUMNS, frame_summaries
from antema_scale.insitu.timeseries import panel_positions, write_timeseries_figures
from antema_scale.insitu.tracking import (
    GROWTH_COLUMNS,
    default_search_range_nm,
    growth_rates,
    track_particles,
)

#: Column that tells the movies of a results folder apart.
MOVIE_COLUMN = "image_id"

#: Panels of the contact sheet drawn from each movie.
CONTACT_SHEET_PANELS = 12

#: Frames of the animated overlay of each movie (spread evenly over it).
OVERLAY_MOVIE_FRAMES = 60


@dataclass
class MovieFrames:
    """Some frames of a movie for the contact sheet: pixels, masks, pixel size in nm."""

    images: np.ndarray
    masks: np.ndarray | None
    pixel_size_nm: tuple[float, float]
    frame_indices: list[int]


#: ``loader(image_id, max_frames)``: up to ``max_frames`` frames of a movie spread evenly
#: over it (None when unavailable).
MovieLoader = Callable[[str, int], "MovieFrames | None"]


#: Seconds between frames: one value, one per movie id, or None (unknown).
FrameInterval = float | Mapping[object, float] | None


def _interval_of(frame_interval_s: FrameInterval, movie_id: object) -> float | None:
    if isinstance(frame_interval_s, Mapping):
        value = frame_interval_s.get(movie_id)
        return None if value is None else float(value)
    return frame_interval_s


class TrackingInputError(ValueError):
    """A results folder or table cannot be tracked (no movie, missing file or column)."""


@dataclass
class TrackingResult:
    """Everything :func:`track_movies` computes, plus the files written (if any)."""

    tracks: pd.DataFrame
    events: pd.DataFrame
    frame_summary: pd.DataFrame
    growth: pd.DataFrame
    search_range_nm: float
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def load_movie_particles(results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The per-frame particle rows and the images table of a results folder.

    Parameters
    ----------
    results_dir : str or Path
        Folder written by ``antema-scale analyze``.

    Returns
    -------
    particles, images : pandas.DataFrame
        Rows of movie frames only (``frame`` not NaN); ``images`` is None when
        ``images.parquet`` is absent.

    Raises
    ------
    TrackingInputError
        When ``particles.parquet`` is missing or holds no movie frames.
    """
    folder = Path(results_dir)
    path = folder / "particles.parquet"
    if not path.is_file():
        raise TrackingInputError(f"{folder} is not a results folder: {path.name} is missing")
    particles = pd.read_parquet(path)
    if "frame" not in particles.columns or particles["frame"].isna().all():
        raise TrackingInputError(
            f"{path} holds no movie: it has no 'frame' values; analyse a movie "
            "(a file with a frame axis) to get per-frame particle rows"
        )
    movies = particles[particles["frame"].notna()].copy()
    movies["frame"] = movies["frame"].astype(np.int64)
    images_path = folder / "images.parquet"
    images = pd.read_parquet(images_path) if images_path.is_file() else None
    return movies, images


def _movie_geometry(
    images: pd.DataFrame | None, movie_id: object
) -> tuple[tuple[float, float] | None, int | None]:
    """Field of view (height, width) in nm and number of frames of a movie, where known."""
    if images is None or MOVIE_COLUMN not in images.columns:
        return None, None
    rows = images[images[MOVIE_COLUMN] == movie_id]
    if rows.empty:
        return None, None
    row = rows.iloc[0]
    needed = ("height_px", "width_px", "pixel_size_nm_y", "pixel_size_nm_x")
    field_of_view = None
    if all(name in row.index and pd.notna(row[name]) for name in needed):
        field_of_view = (
            float(row["height_px"]) * float(row["pixel_size_nm_y"]),
            float(row["width_px"]) * float(row["pixel_size_nm_x"]),
        )
    n_frames = int(row["frames"]) if "frames" in row.index and pd.notna(row["frames"]) else None
    return field_of_view, n_frames


def _movies(table: pd.DataFrame) -> list[tuple[object, pd.DataFrame]]:
    if MOVIE_COLUMN in table.columns:
        return list(table.groupby(MOVIE_COLUMN, sort=True))
    return [(None, table)]


def _summaries(
    particles: pd.DataFrame, images: pd.DataFrame | None, frame_interval_s: FrameInterval
) -> pd.DataFrame:
    pieces = []
    for movie_id, movie in _movies(particles):
        field_of_view, n_frames = _movie_geometry(images, movie_id)
        # every frame of the movie is listed, so frames without particles count 0
        frames = None if n_frames is None else pd.DataFrame({"frame": np.arange(n_frames)})
        area = None if field_of_view is None else field_of_view[0] * field_of_view[1]
        summary = frame_summaries(
            movie,
            image_area_nm2=area,
            frames=frames,
            frame_interval_s=_interval_of(frame_interval_s, movie_id),
        )
        if movie_id is not None:
            summary.insert(0, MOVIE_COLUMN, movie_id)
        pieces.append(summary)
    columns = ([MOVIE_COLUMN] if MOVIE_COLUMN in particles.columns else []) + list(
        FRAME_SUMMARY_COLUMNS
    )
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=columns)


def track_movies(
    particles: pd.DataFrame,
    images: pd.DataFrame | None = None,
    *,
    search_range_nm: float | None = None,
    memory: int = 0,
    frame_interval_s: FrameInterval = None,
    correct_drift: bool = True,
    max_drift_nm: float | None = None,
    drift_nm: dict[object, pd.DataFrame] | None = None,
    area_tolerance: float = 0.25,
    min_track_points: int = 3,
) -> TrackingResult:
    """Track every movie of a per-frame particle table; events, summaries and growth rates.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle rows (``image_id`` tells movies apart when present).
    images : pandas.DataFrame, optional
        The run's images table: field of view (for area fractions and border events) and
        number of frames (so that empty frames are summarised).
    search_range_nm : float, optional
        Linking search range in nm; default :func:`~.tracking.default_search_range_nm`.
    memory : int
        Frames a particle may be missed and keep its track.
    frame_interval_s : float or mapping movie id -> float, optional
        Seconds between frames, where the files gave no frame times (one value for all
        movies, or one per ``image_id``).
    correct_drift : bool
        Estimate and remove stage drift before linking.
    max_drift_nm : float, optional
        Largest stage drift per frame in nm, when it exceeds the search range: the first,
        drift-measuring linking pass searches this far.
    drift_nm : dict, optional
        Known drift table per movie id (see :func:`~.drift.drift_from_images`).
    area_tolerance : float
        Relative area tolerance of the coalescence test.
    min_track_points : int
        Shortest track that gets a growth rate.

    Returns
    -------
    TrackingResult
        Tables (``files`` empty: see :func:`write_tracking_outputs`).
    """
    notes: list[str] = []
    search = (
        float(search_range_nm)
        if search_range_nm is not None
        else default_search_range_nm(particles)
    )
    pieces = []
    for movie_id, movie in _movies(particles):
        known_drift = None if drift_nm is None else drift_nm.get(movie_id)
        pieces.append(
            track_particles(
                movie,
                search_range_nm=search,
                memory=memory,
                frame_interval_s=_interval_of(frame_interval_s, movie_id),
                correct_drift=correct_drift,
                drift_nm=known_drift,
                drift_search_range_nm=max_drift_nm,
            )
        )
    tracks = _renumber_across_movies(pieces)
    event_pieces = []
    for movie_id, movie_tracks in _movies(tracks):
        field_of_view, _ = _movie_geometry(images, movie_id)
        events = detect_events(
            movie_tracks,
            search_range_nm=search,
            area_tolerance=area_tolerance,
            field_of_view_nm=field_of_view,
        )
        if movie_id is not None:
            events.insert(0, MOVIE_COLUMN, movie_id)
        event_pieces.append(events)
    event_columns = ([MOVIE_COLUMN] if MOVIE_COLUMN in tracks.columns else []) + list(EVENT_COLUMNS)
    events = (
        pd.concat(event_pieces, ignore_index=True)
        if event_pieces
        else pd.DataFrame(columns=event_columns)
    )
    if tracks.empty or tracks["time_s"].isna().any():
        growth = pd.DataFrame(columns=list(GROWTH_COLUMNS))
        if not tracks.empty:
            notes.append(
                "no frame times in the files: growth rates need --frame-interval (seconds per frame)"
            )
    else:
        growth = growth_rates(tracks, min_points=min_track_points)
    if MOVIE_COLUMN in tracks.columns and len(growth):
        movie_of = tracks.groupby("track_id")[MOVIE_COLUMN].first()
        growth.insert(0, MOVIE_COLUMN, growth["track_id"].map(movie_of))
    summary = _summaries(particles, images, frame_interval_s)
    return TrackingResult(tracks, events, summary, growth, search, notes)


def _renumber_across_movies(pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-movie tracks, shifting track ids so they stay unique."""
    shifted = []
    offset = 0
    for piece in pieces:
        shifted.append(piece.assign(track_id=piece["track_id"] + offset))
        offset += int(piece["track_id"].max()) + 1 if len(piece) else 0
    return pd.concat(shifted, ignore_index=True) if shifted else pd.DataFrame()


def _safe_name(movie_id: object) -> str:
    """A folder name for a movie id (letters, digits, ``._-``)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", str(movie_id)).strip("._")
    return text or "movie"


def write_tracking_outputs(
    result: TrackingResult,
    output_dir: str | Path,
    *,
    figures: bool = True,
    movie_loader: MovieLoader | None = None,
    overlay_frames: int = OVERLAY_MOVIE_FRAMES,
) -> dict[str, Path]:
    """Write the tables and figures of :func:`track_movies` into ``output_dir``.

    Parameters
    ----------
    result : TrackingResult
        What to write; its ``files`` are updated.
    output_dir : str or Path
        Tracking folder (created).
    figures : bool
        Also draw the time-series figures of every movie under ``figures/<movie>/``.
    movie_loader : callable, optional
        ``movie_loader(image_id, max_frames) -> MovieFrames or None`` (e.g.
        :func:`store_movie_loader`); with it a contact sheet of each movie is drawn, and an
        animated overlay (GIF).
    overlay_frames : int
        Frames in the animated overlay of each movie (0: none).

    Returns
    -------
    dict of str to Path
        Output name to file written.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "tracks": folder / "tracks.parquet",
        "events": folder / "events.csv",
        "frame_summary": folder / "frame_summary.csv",
        "growth_rates": folder / "growth_rates.csv",
    }
    result.tracks.to_parquet(files["tracks"], index=False)
    result.events.to_csv(files["events"], index=False)
    result.frame_summary.to_csv(files["frame_summary"], index=False)
    result.growth.to_csv(files["growth_rates"], index=False)
    if figures and not result.tracks.empty:
        summaries = dict(_movies(result.frame_summary))
        rates = dict(_movies(result.growth)) if len(result.growth) else {}
        for movie_id, movie_tracks in _movies(result.tracks):
            can_load = movie_loader is not None and movie_id is not None
            loaded = movie_loader(str(movie_id), CONTACT_SHEET_PANELS) if can_load else None
            animated = (
                movie_loader(str(movie_id), overlay_frames)
                if can_load and overlay_frames > 0
                else None
            )
            written = write_timeseries_figures(
                folder / "figures" / _safe_name(movie_id if movie_id is not None else "movie"),
                summaries.get(movie_id, result.frame_summary),
                movie_tracks,
                rates.get(movie_id),
                images=None if loaded is None else loaded.images,
                masks=None if loaded is None else loaded.masks,
                pixel_size_nm=None if loaded is None else loaded.pixel_size_nm,
                frame_indices=None if loaded is None else loaded.frame_indices,
                movie_images=None if animated is None else animated.images,
                movie_masks=None if animated is None else animated.masks,
                movie_frame_indices=None if animated is None else animated.frame_indices,
            )
            prefix = "" if movie_id is None else f"{_safe_name(movie_id)}:"
            files.update({f"{prefix}{name}": path for name, path in written.items()})
    result.files = files
    return files


def store_movie_loader(store_path: str | Path) -> MovieLoader:
    """A :data:`MovieLoader` reading movie frames (and masks) from a run's Zarr store.

    Only the frames shown are read (lazily, through Dask), so long movies stay cheap.

    Parameters
    ----------
    store_path : str or Path
        The run's ``store.zarr``.

    Returns
    -------
    callable
        ``loader(image_id, max_frames)``: up to ``max_frames`` frames spread evenly over the
        movie, or None when the store, the movie or its pixel size is not there (masks are
        None when not written).
    """

    def load(image_id: str, max_frames: int) -> MovieFrames | None:
        try:
            from antema_scale.io.store import open_store

            store = open_store(store_path)
            image = store.read_image(image_id, lazy=True)
        except (ImportError, FileNotFoundError, LookupError):
            return None
        if image.ndim != 3:
            return None
        positions = panel_positions(image.shape[0], max(int(max_frames), 1))
        try:
            mask = store.read_mask(image_id, lazy=True)
            masks = np.asarray(mask.isel({mask.dims[0]: positions}).values, dtype=bool)
        except (LookupError, ValueError, OSError):  # mask not written (yet): outlines only
            masks = None
        pixel_size = (float(image.attrs["pixel_size_nm_y"]), float(image.attrs["pixel_size_nm_x"]))
        return MovieFrames(
            images=np.asarray(image.isel({image.dims[0]: positions}).values),
            masks=masks,
            pixel_size_nm=pixel_size,
            frame_indices=[int(p) for p in positions],
        )

    return load


def track_results(
    results_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    figures: bool = True,
    drift_from_frames: bool = False,
    overlay_frames: int = OVERLAY_MOVIE_FRAMES,
    **options: object,
) -> TrackingResult:
    """Track the movies of a results folder and write the tracking outputs.

    Parameters
    ----------
    results_dir : str or Path
        Folder written by ``antema-scale analyze`` (``particles.parquet`` with ``frame``).
    output_dir : str or Path, optional
        Tracking folder; default ``<results_dir>/tracking``.
    figures : bool
        Draw the time-series figures and contact sheets (pixels from ``store.zarr``).
    overlay_frames : int
        Frames of the animated overlay GIF of each movie (0: none).
    drift_from_frames : bool
        Measure the stage drift by registering the movie frames in the store
        (:func:`~.drift.drift_from_images`) instead of from a first linking pass.
    **options
        Keywords of :func:`track_movies` (``search_range_nm``, ``memory``,
        ``frame_interval_s``, ``correct_drift``, ``max_drift_nm``, ``area_tolerance``,
        ``min_track_points``).

    Returns
    -------
    TrackingResult
        Tables, the search range used, notes, and ``files`` written.

    Raises
    ------
    TrackingInputError
        When the folder holds no movie.
    """
    folder = Path(results_dir)
    particles, images = load_movie_particles(folder)
    store = run_store_path(folder)
    notes: list[str] = []
    if options.get("frame_interval_s") is None:
        untimed = _untimed_movies(particles)
        file_times = file_frame_intervals(store, untimed)
        if file_times:
            options["frame_interval_s"] = file_times
            notes += [
                f"{movie}: no frame times; using the file's frame time {interval:.4g} s "
                "(instrument_frame_time_s) as the frame interval"
                for movie, interval in file_times.items()
            ]
    if drift_from_frames:
        movie_ids = [str(m) for m, _ in _movies(particles) if m is not None]
        drifts = frame_drifts(store, movie_ids)
        missing = sorted(set(movie_ids) - set(drifts))
        if missing:
            notes.append(
                f"no frames in the store for {missing}: their drift is estimated from links"
            )
        options["drift_nm"] = drifts
    result = track_movies(particles, images, **options)  # type: ignore[arg-type]
    result.notes[:0] = notes
    target = Path(output_dir) if output_dir is not None else folder / "tracking"
    write_tracking_outputs(
        result,
        target,
        figures=figures,
        movie_loader=store_movie_loader(store),
        overlay_frames=overlay_frames,
    )
    return result


def run_store_path(results_dir: Path) -> Path:
    """The run's Zarr store: ``store.zarr`` in the folder, or the one its manifest names."""
    import json

    from antema_scale.report.results import find_store

    manifest_path = results_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    except (OSError, ValueError):
        manifest = None
    return find_store(results_dir, manifest if isinstance(manifest, dict) else None)


def _untimed_movies(particles: pd.DataFrame) -> list[str]:
    if "time_s" not in particles.columns:
        return [str(m) for m, _ in _movies(particles) if m is not None]
    return [
        str(m) for m, movie in _movies(particles) if m is not None and movie["time_s"].isna().all()
    ]


def file_frame_intervals(store_path: Path, movie_ids: list[str]) -> dict[str, float]:
    """Frame times the files recorded (``instrument_frame_time_s``) for movies without a
    time axis, read from the store's image attributes; movies without one are left out."""
    if not movie_ids:
        return {}
    try:
        from antema_scale.io.store import open_store

        store = open_store(store_path)
    except (ImportError, FileNotFoundError, LookupError):
        return {}
    intervals = {}
    for movie_id in movie_ids:
        try:
            attrs = store.read_image(movie_id, lazy=True).attrs
        except (LookupError, OSError, ValueError):
            continue
        value = attrs.get("instrument_frame_time_s")
        if isinstance(value, int | float) and np.isfinite(value) and value > 0:
            intervals[movie_id] = float(value)
    return intervals


def frame_drifts(store_path: Path, movie_ids: list[str]) -> dict[str, pd.DataFrame]:
    """Stage drift of each movie measured on its frames in the store (one frame in memory
    at a time); movies the store cannot give back are left out."""
    from antema_scale.insitu.drift import drift_from_images

    try:
        from antema_scale.io.store import open_store

        store = open_store(store_path)
    except (ImportError, FileNotFoundError, LookupError):
        return {}
    drifts = {}
    for movie_id in movie_ids:
        try:
            image = store.read_image(movie_id, lazy=True)
        except (LookupError, OSError, ValueError):
            continue
        if image.ndim != 3:
            continue
        pixel_size = (float(image.attrs["pixel_size_nm_y"]), float(image.attrs["pixel_size_nm_x"]))
        frames = [image[index] for index in range(image.shape[0])]
        indices = image.coords[image.dims[0]].values if image.dims[0] in image.coords else None
        drifts[movie_id] = drift_from_images(frames, pixel_size, frame_indices=indices)
    return drifts
