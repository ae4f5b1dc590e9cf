"""Time-series figures of a constructed movie: values behind the plots and files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk

from antema_scale.insitu import frame_summaries, growth_rates, track_particles
from antema_scale.insitu.timeseries import (
    FIGURE_FILES,
    contact_sheet,
    plot_growth_curves,
    plot_mean_diameter,
    size_histograms,
    write_overlay_movie,
    write_timeseries_figures,
)

PIXEL_NM = 0.5


def growing_movie(n_frames: int = 6) -> pd.DataFrame:
    """Three particles at fixed places, diameters growing by 0.5 nm per frame (1 s/frame)."""
    rows = []
    for frame in range(n_frames):
        for i, (y, x) in enumerate([(10.0, 10.0), (10.0, 30.0), (30.0, 20.0)]):
            diameter = 3.0 + i + 0.5 * frame
            rows.append(
                {
                    "frame": frame,
                    "time_s": float(frame),
                    "centroid_y_nm": y,
                    "centroid_x_nm": x,
                    "equivalent_diameter_nm": diameter,
                    "area_nm2": np.pi * diameter**2 / 4.0,
                }
            )
    return pd.DataFrame(rows)


def rendered_masks(movie: pd.DataFrame, shape: tuple[int, int] = (90, 90)) -> np.ndarray:
    """Boolean disc masks of the movie's particles, ``PIXEL_NM`` nm per pixel."""
    masks = np.zeros((movie["frame"].max() + 1, *shape), dtype=bool)
    for _, row in movie.iterrows():
        centre = (row["centroid_y_nm"] / PIXEL_NM, row["centroid_x_nm"] / PIXEL_NM)
        rr, cc = disk(centre, row["equivalent_diameter_nm"] / 2 / PIXEL_NM, shape=shape)
        masks[int(row["frame"]), rr, cc] = True
    return masks


def test_size_histograms_are_fractions_per_frame() -> None:
    movie = growing_movie()
    frames, edges, fractions = size_histograms(movie, bins=np.arange(2.0, 12.0, 1.0))
    assert frames.tolist() == list(range(6))
    assert np.allclose(fractions.sum(axis=0), 1.0)
    # frame 0: diameters 3, 4, 5 nm, one third in each of the bins [3,4), [4,5), [5,6)
    assert np.allclose(fractions[:, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0])
    assert edges[0] == 2.0


def test_mean_diameter_plot_draws_the_summary() -> None:
    summary = frame_summaries(growing_movie())
    ax = plot_mean_diameter(summary)
    mean_line = ax.get_lines()[0]
    assert np.allclose(mean_line.get_xdata(), np.arange(6.0))
    assert np.allclose(mean_line.get_ydata(), 4.0 + 0.5 * np.arange(6))
    assert ax.get_xlabel() == "time (s)"


def test_growth_curves_draw_tracks_and_fits() -> None:
    tracks = track_particles(growing_movie(), search_range_nm=2.0)
    rates = growth_rates(tracks)
    assert np.allclose(rates["growth_rate_nm_per_s"], 0.5)
    ax = plot_growth_curves(tracks, rates)
    # one data line and one dashed fit per track
    assert len(ax.get_lines()) == 6
    assert np.allclose(ax.get_lines()[1].get_ydata(), ax.get_lines()[0].get_ydata())


def test_contact_sheet_panels_and_errors() -> None:
    movie = growing_movie()
    tracks = track_particles(movie, search_range_nm=2.0)
    masks = rendered_masks(movie)
    images = np.where(masks, 0.2, 1.0).astype(np.float32)
    figure = contact_sheet(
        images, tracks, pixel_size_nm=PIXEL_NM, masks=masks, max_panels=4, columns=2
    )
    titled = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titled == ["frame 0, 0 s", "frame 2, 2 s", "frame 3, 3 s", "frame 5, 5 s"]
    labels = sorted(text.get_text() for text in figure.axes[0].texts)
    assert labels == sorted(str(t) for t in tracks["track_id"].unique())
    with pytest.raises(ValueError, match="masks for"):
        contact_sheet(images, tracks, pixel_size_nm=PIXEL_NM, masks=masks[:2])
    with pytest.raises(ValueError, match="2-D"):
        contact_sheet(images[:, :, :, None], tracks, pixel_size_nm=PIXEL_NM)


def test_write_timeseries_figures_writes_pngs(tmp_path: Path) -> None:
    movie = growing_movie()
    tracks = track_particles(movie, search_range_nm=2.0)
    images = np.where(rendered_masks(movie), 0.2, 1.0)
    written = write_timeseries_figures(
        tmp_path,
        frame_summaries(movie),
        tracks,
        growth_rates(tracks),
        images=images,
        pixel_size_nm=PIXEL_NM,
        movie_images=images,
    )
    assert set(written) == set(FIGURE_FILES)
    for name, path in written.items():
        assert path.parent == tmp_path
        magic = b"GIF89a" if name == "overlay_movie" else b"\x89PNG\r\n\x1a\n"
        assert path.read_bytes()[: len(magic)] == magic
    without_images = write_timeseries_figures(
        tmp_path / "no_images", frame_summaries(movie), tracks
    )
    assert "contact_sheet" not in without_images


def test_overlay_movie_has_one_gif_frame_per_image(tmp_path: Path) -> None:
    from PIL import Image

    movie = growing_movie()
    tracks = track_particles(movie, search_range_nm=2.0)
    masks = rendered_masks(movie)
    path = write_overlay_movie(
        tmp_path / "overlay.gif",
        np.where(masks, 0.2, 1.0)[::2],
        tracks,
        pixel_size_nm=PIXEL_NM,
        masks=masks[::2],
        frame_indices=[0, 2, 4],
        size_inches=2.0,
    )
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        assert gif.size == (200, 200)
    with pytest.raises(ValueError, match="same length"):
        write_overlay_movie(
            tmp_path / "x.gif", masks, tracks, pixel_size_nm=PIXEL_NM, frame_indices=[0]
        )
