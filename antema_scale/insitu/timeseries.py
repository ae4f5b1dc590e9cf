"""Time-series figures of an in-situ movie (matplotlib, no display needed).

Figures are built on :class:`matplotlib.figure.Figure` objects directly (the Agg canvas,
no pyplot state), so they can be drawn in worker processes and in tests:

* :func:`plot_mean_diameter`: mean equivalent diameter vs time with a ±1 std band and
  the particle count;
* :func:`plot_size_heatmap`: the diameter histogram of every frame as a heat map;
* :func:`plot_growth_curves`: diameter vs time of the longest tracks with their linear fits;
* :func:`contact_sheet`: a grid of frames with particle outlines and track ids;
* :func:`write_overlay_movie`: the same overlay as an animated GIF.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: File names written by :func:`write_timeseries_figures`.
FIGURE_FILES: dict[str, str] = {
    "mean_diameter": "mean_diameter_vs_time.png",
    "size_heatmap": "size_distribution_vs_time.png",
    "growth_curves": "growth_curves.png",
    "contact_sheet": "contact_sheet.png",
    "overlay_movie": "overlay_movie.gif",
}


def _time_axis(table: pd.DataFrame) -> tuple[str, str]:
    """Column and label of the x axis: time in s when every frame has one, else frame."""
    if "time_s" in table.columns and len(table) and table["time_s"].notna().all():
        return "time_s", "time (s)"
    return "frame", "frame"


def _new_axes(ax: Axes | None, size: tuple[float, float] = (6.4, 4.0)) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size, layout="constrained").add_subplot()


def plot_mean_diameter(summary: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Mean equivalent diameter vs time with a ±1 standard deviation band.

    Parameters
    ----------
    summary : pandas.DataFrame
        Output of :func:`~.frames.frame_summaries`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; a new figure is made otherwise.

    Returns
    -------
    matplotlib.axes.Axes
        The axes (diameter in nm on the left axis, particle count on a twin right axis).
    """
    ax = _new_axes(ax)
    column, label = _time_axis(summary)
    ordered = summary.sort_values(column)
    x = ordered[column].to_numpy(float)
    mean = ordered["mean_diameter_nm"].to_numpy(float)
    std = np.nan_to_num(ordered["std_diameter_nm"].to_numpy(float))
    ax.fill_between(x, mean - std, mean + std, color="tab:blue", alpha=0.25, label="±1 std")
    ax.plot(x, mean, color="tab:blue", marker="o", markersize=3, label="mean")
    ax.set_xlabel(label)
    ax.set_ylabel("equivalent diameter (nm)")
    counts = ax.twinx()
    count = ordered["count"].to_numpy(float)
    counts.plot(x, count, color="tab:grey", linestyle=":", label="count")
    counts.set_ylabel("particles per frame")
    counts.set_ylim(0, 1.25 * float(count.max(initial=0.0)) + 1.0)
    lines = ax.get_legend_handles_labels()
    more = counts.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="best", fontsize="small")
    ax.set_title("Mean particle size")
    return ax


def _bin_edges(centres: np.ndarray) -> np.ndarray:
    """Edges around sorted centres (half-way points; unit width for a single centre)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[:-1] + centres[1:]) / 2.0
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def size_histograms(
    particles: pd.DataFrame, *, bins: int | np.ndarray = 30
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Diameter histogram of every frame, normalised to the fraction of that frame's particles.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle table (``frame``, ``equivalent_diameter_nm``, optional ``time_s``).
    bins : int or array of float
        Number of diameter bins over the whole movie, or the bin edges in nm.

    Returns
    -------
    (frames, diameter_edges_nm, fractions)
        Sorted frame indices, diameter bin edges (nm) and a ``(n_bins, n_frames)`` array
        of the fraction of each frame's particles in each bin (columns sum to 1, or 0 for
        an empty frame).
    """
    diameters = particles["equivalent_diameter_nm"].to_numpy(float)
    diameters = diameters[np.isfinite(diameters)]
    if isinstance(bins, int | np.integer):
        low, high = (0.0, 1.0) if diameters.size == 0 else (diameters.min(), diameters.max())
        edges = np.linspace(low, high if high > low else low + 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
    frames = np.sort(pd.unique(particles["frame"].astype(np.int64)))
    fractions = np.zeros((len(edges) - 1, len(frames)))
    for column, (_, rows) in enumerate(
        particles.groupby(particles["frame"].astype(np.int64), sort=True)
    ):
        counts, _ = np.histogram(rows["equivalent_diameter_nm"].dropna(), bins=edges)
        fractions[:, column] = counts / counts.sum() if counts.sum() else 0.0
    return frames, edges, fractions


def plot_size_heatmap(
    particles: pd.DataFrame, *, bins: int | np.ndarray = 30, ax: Axes | None = None
) -> Axes:
    """Heat map of the diameter distribution (fraction of particles per bin) vs time.

    Parameters
    ----------
    particles : pandas.DataFrame
        Per-frame particle table (or tracks table).
    bins : int or array of float
        Number of diameter bins, or bin edges in nm.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into.

    Returns
    -------
    matplotlib.axes.Axes
        Time (or frame) on x, equivalent diameter (nm) on y, colour = fraction of that
        frame's particles.
    """
    ax = _new_axes(ax)
    frames, edges, fractions = size_histograms(particles, bins=bins)
    column, label = _time_axis(particles)
    if column == "time_s":
        times = (
            particles.groupby(particles["frame"].astype(np.int64))["time_s"].first().reindex(frames)
        )
        x = times.to_numpy(float)
    else:
        x = frames.astype(float)
    if len(x):
        image = ax.pcolormesh(_bin_edges(x), edges, fractions, cmap="viridis", shading="flat")
        ax.figure.colorbar(image, ax=ax, label="fraction of particles in frame")
    ax.set_xlabel(label)
    ax.set_ylabel("equivalent diameter (nm)")
    ax.set_title("Size distribution over time")
    return ax


def plot_growth_curves(
    tracks: pd.DataFrame,
    rates: pd.DataFrame | None = None,
    *,
    max_tracks: int = 20,
    min_length: int = 3,
    ax: Axes | None = None,
) -> Axes:
    """Diameter vs time of the longest tracks, with their fitted growth lines.

    Parameters
    ----------
    tracks : pandas.DataFrame
        Output of :func:`~.tracking.track_particles`.
    rates : pandas.DataFrame, optional
        Output of :func:`~.tracking.growth_rates`; its fits are drawn dashed.
    max_tracks : int
        At most this many tracks (the longest) are drawn.
    min_length : int
        Tracks seen in fewer frames are not drawn.
    ax : matplotlib.axes.Axes, optional
        Axes to draw into.

    Returns
    -------
    matplotlib.axes.Axes
        One coloured line per track, labelled by track id.
    """
    ax = _new_axes(ax)
    column, label = _time_axis(tracks)
    lengths = tracks.groupby("track_id").size()
    longest = lengths[lengths >= min_length].sort_values(ascending=False, kind="stable")
    chosen = sorted(longest.index[: int(max_tracks)])
    fits = rates.set_index("track_id") if rates is not None and len(rates) else None
    for track_id in chosen:
        track = tracks[tracks["track_id"] == track_id].sort_values("frame")
        x = track[column].to_numpy(float)
        line = ax.plot(
            x, track["equivalent_diameter_nm"], marker=".", linewidth=1, label=f"track {track_id}"
        )[0]
        if fits is not None and column == "time_s" and track_id in fits.index:
            fit = fits.loc[track_id]
            ax.plot(
                x,
                fit["intercept_nm"] + fit["growth_rate_nm_per_s"] * x,
                linestyle="--",
                linewidth=1,
                color=line.get_color(),
            )
    ax.set_xlabel(label)
    ax.set_ylabel("equivalent diameter (nm)")
    ax.set_title(f"Growth curves ({len(chosen)} longest tracks)")
    if 0 < len(chosen) <= 10:
        ax.legend(fontsize="x-small", loc="best")
    return ax


def _pixel_sizes(pixel_size_nm: float | tuple[float, float]) -> tuple[float, float]:
    size_y, size_x = (pixel_size_nm, pixel_size_nm) if np.isscalar(pixel_size_nm) else pixel_size_nm
    if not (float(size_y) > 0 and float(size_x) > 0):
        raise ValueError(f"pixel size must be positive nm, got {pixel_size_nm!r}")
    return float(size_y), float(size_x)


def panel_positions(n_frames: int, max_panels: int) -> np.ndarray:
    """Positions of up to ``max_panels`` frames spread evenly over the movie, first and last included."""
    if n_frames <= max_panels:
        return np.arange(n_frames)
    return np.unique(np.round(np.linspace(0, n_frames - 1, max_panels)).astype(int))


def track_colour(track_id: int) -> tuple[float, float, float, float]:
    """The colour of a track, the same in every panel and figure (tab20 cycle)."""
    from matplotlib import colormaps

    return colormaps["tab20"](int(track_id) % 20)


def _draw_frame(
    ax: Axes,
    image: np.ndarray,
    rows: pd.DataFrame,
    mask: np.ndarray | None,
    pixel_size: tuple[float, float],
    title: str,
) -> None:
    from matplotlib.patches import Ellipse
    from matplotlib.patheffects import withStroke
    from skimage.measure import find_contours

    ax.imshow(image, cmap="gray", interpolation="nearest")
    if mask is not None:
        for contour in find_contours(np.asarray(mask) > 0, 0.5):
            ax.plot(contour[:, 1], contour[:, 0], color="yellow", linewidth=0.6)
    size_y, size_x = pixel_size
    for _, row in rows.iterrows():
        y_px, x_px = row["centroid_y_nm"] / size_y, row["centroid_x_nm"] / size_x
        colour = track_colour(int(row["track_id"])) if "track_id" in row else "cyan"
        if mask is None:
            diameter = float(row["equivalent_diameter_nm"])
            ax.add_patch(
                Ellipse(
                    (x_px, y_px),
                    diameter / size_x,
                    diameter / size_y,
                    fill=False,
                    color=colour,
                    linewidth=0.8,
                )
            )
        if "track_id" in row:
            ax.text(
                x_px,
                y_px,
                str(int(row["track_id"])),
                color=colour,
                fontsize=7,
                fontweight="bold",
                ha="center",
                va="center",
                path_effects=[withStroke(linewidth=2, foreground="black")],
            )
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def _rows_and_title(
    by_frame: dict[int, pd.DataFrame], tracks: pd.DataFrame, frame: int
) -> tuple[pd.DataFrame, str]:
    """The detections of ``frame`` and a panel title with its frame index and time."""
    rows = by_frame.get(frame, tracks.iloc[0:0])
    time = rows["time_s"].iloc[0] if "time_s" in rows and len(rows) else np.nan
    return rows, f"frame {frame}" + (f", {time:.3g} s" if np.isfinite(time) else "")


def contact_sheet(
    images: np.ndarray | Sequence[np.ndarray],
    tracks: pd.DataFrame,
    *,
    pixel_size_nm: float | tuple[float, float],
    masks: np.ndarray | Sequence[np.ndarray] | None = None,
    frame_indices: Sequence[int] | None = None,
    max_panels: int = 12,
    columns: int = 4,
) -> Figure:
    """A grid of movie frames with particle outlines and track ids.

    Parameters
    ----------
    images : array (frame, y, x) or sequence of 2-D arrays
        The frames.
    tracks : pandas.DataFrame
        Output of :func:`~.tracking.track_particles` (or a particle table without
        ``track_id``: outlines only). Centroids in nm are turned into pixels by dividing by
        the pixel size (pixel (0, 0) at 0 nm, as ``particles.analyze_mask`` measures them).
    pixel_size_nm : float or (float, float)
        Pixel size in nm, isotropic or ``(y, x)``.
    masks : array (frame, y, x) or sequence of 2-D arrays, optional
        Segmentation masks (bool or labels) of the frames: their outlines are drawn.
        Without them each particle is drawn as an ellipse of its equivalent diameter.
    frame_indices : sequence of int, optional
        Frame index of each image (the ``frame`` column); defaults to ``0..n-1``.
    max_panels : int
        At most this many frames, spread evenly over the movie (first and last included).
    columns : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        The sheet; each panel is titled with its frame and time.

    Raises
    ------
    ValueError
        When images and masks or frame indices disagree in number, or an image is not 2-D.
    """
    frames = [np.asarray(image) for image in images]
    if any(frame.ndim != 2 for frame in frames):
        raise ValueError("every frame of the contact sheet must be a 2-D image")
    indices = list(range(len(frames))) if frame_indices is None else [int(i) for i in frame_indices]
    if len(indices) != len(frames):
        raise ValueError(f"{len(indices)} frame indices for {len(frames)} images")
    mask_list = None if masks is None else list(masks)
    if mask_list is not None and len(mask_list) != len(frames):
        raise ValueError(f"{len(mask_list)} masks for {len(frames)} images")
    pixel_size = _pixel_sizes(pixel_size_nm)
    chosen = panel_positions(len(frames), max(int(max_panels), 1))
    n_columns = max(1, min(int(columns), len(chosen)))
    n_rows = max(1, int(np.ceil(len(chosen) / n_columns)))
    figure = Figure(figsize=(2.6 * n_columns, 2.6 * n_rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_rows, n_columns, squeeze=False)).ravel()
    by_frame = {int(f): rows for f, rows in tracks.groupby(tracks["frame"].astype(np.int64))}
    for ax, position in zip(axes, chosen, strict=False):
        rows, title = _rows_and_title(by_frame, tracks, indices[position])
        mask = None if mask_list is None else mask_list[position]
        _draw_frame(ax, frames[position], rows, mask, pixel_size, title)
    for ax in axes[len(chosen) :]:
        ax.set_axis_off()
    return figure


def write_overlay_movie(
    path: str | Path,
    images: np.ndarray | Sequence[np.ndarray],
    tracks: pd.DataFrame,
    *,
    pixel_size_nm: float | tuple[float, float],
    masks: np.ndarray | Sequence[np.ndarray] | None = None,
    frame_indices: Sequence[int] | None = None,
    fps: float = 5.0,
    size_inches: float = 5.0,
) -> Path:
    """An animated GIF of the frames with particle outlines and track ids.

    Parameters
    ----------
    path : str or Path
        GIF file to write.
    images, tracks, pixel_size_nm, masks, frame_indices
        As for :func:`contact_sheet`; every image given becomes one frame of the GIF.
    fps : float
        Frames per second of the animation.
    size_inches : float
        Width and height of each frame in inches (100 dpi).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        When images and masks or frame indices disagree in number, or an image is not 2-D.
    """
    from matplotlib.animation import PillowWriter

    frames = list(images)
    if any(np.ndim(frame) != 2 for frame in frames):
        raise ValueError("every frame of the overlay movie must be a 2-D image")
    indices = list(range(len(frames))) if frame_indices is None else [int(i) for i in frame_indices]
    mask_list = None if masks is None else list(masks)
    if len(indices) != len(frames) or (mask_list is not None and len(mask_list) != len(frames)):
        raise ValueError("images, masks and frame indices must have the same length")
    pixel_size = _pixel_sizes(pixel_size_nm)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(size_inches, size_inches), layout="constrained")
    by_frame = {int(f): rows for f, rows in tracks.groupby(tracks["frame"].astype(np.int64))}
    writer = PillowWriter(fps=fps)
    with writer.saving(figure, str(target), dpi=100):
        for position, frame in enumerate(indices):
            figure.clear()
            ax = figure.add_subplot()
            rows, title = _rows_and_title(by_frame, tracks, frame)
            mask = None if mask_list is None else mask_list[position]
            _draw_frame(ax, np.asarray(frames[position]), rows, mask, pixel_size, title)
            writer.grab_frame()
    return target


def write_timeseries_figures(
    output_dir: str | Path,
    summary: pd.DataFrame,
    tracks: pd.DataFrame,
    rates: pd.DataFrame | None = None,
    *,
    images: np.ndarray | Sequence[np.ndarray] | None = None,
    masks: np.ndarray | Sequence[np.ndarray] | None = None,
    pixel_size_nm: float | tuple[float, float] | None = None,
    frame_indices: Sequence[int] | None = None,
    movie_images: np.ndarray | Sequence[np.ndarray] | None = None,
    movie_masks: np.ndarray | Sequence[np.ndarray] | None = None,
    movie_frame_indices: Sequence[int] | None = None,
    dpi: int = 150,
) -> dict[str, Path]:
    """Write the time-series PNGs of a movie into ``output_dir``.

    Parameters
    ----------
    output_dir : str or Path
        Folder for the figures (created if needed).
    summary : pandas.DataFrame
        Output of :func:`~.frames.frame_summaries`.
    tracks : pandas.DataFrame
        Output of :func:`~.tracking.track_particles`.
    rates : pandas.DataFrame, optional
        Output of :func:`~.tracking.growth_rates`.
    images, masks, pixel_size_nm, frame_indices
        As for :func:`contact_sheet`; the contact sheet is written only with images and a
        pixel size.
    movie_images, movie_masks, movie_frame_indices
        Frames for the animated overlay (:func:`write_overlay_movie`), written only with
        them and a pixel size.
    dpi : int
        Resolution of the PNGs.

    Returns
    -------
    dict of str to Path
        Figure name (keys of :data:`FIGURE_FILES`) to the file written.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Figure] = {
        "mean_diameter": plot_mean_diameter(summary).figure,
        "size_heatmap": plot_size_heatmap(tracks).figure,
        "growth_curves": plot_growth_curves(tracks, rates).figure,
    }
    if images is not None and pixel_size_nm is not None:
        figures["contact_sheet"] = contact_sheet(
            images, tracks, pixel_size_nm=pixel_size_nm, masks=masks, frame_indices=frame_indices
        )
    written = {}
    for name, figure in figures.items():
        path = folder / FIGURE_FILES[name]
        figure.savefig(path, dpi=dpi)
        written[name] = path
    if movie_images is not None and pixel_size_nm is not None:
        written["overlay_movie"] = write_overlay_movie(
            folder / FIGURE_FILES["overlay_movie"],
            movie_images,
            tracks,
            pixel_size_nm=pixel_size_nm,
            masks=movie_masks,
            frame_indices=movie_frame_indices,
        )
    return written
