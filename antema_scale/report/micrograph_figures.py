"""Per-image figures and the particle gallery: micrographs with a scale bar, segmentation
overlays, outlines of single and separated particles, separation lines, excluded regions.

Image coordinates are pixels of the original grid (large images are subsampled for
display only); lengths shown to the user are in nm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon, Rectangle

from antema_scale.report.figures import (
    EXCLUDED_COLOUR,
    MASK_COLOUR,
    SEPARATED_COLOUR,
    SEPARATION_LINE_COLOUR,
    SINGLE_COLOUR,
    new_figure,
)

#: Longest side, in pixels, of an image as drawn (larger images are subsampled for display).
DISPLAY_MAX_PIXELS = 1024

#: A particle crop: boolean mask of the particle and the (row, col) of its top-left pixel.
ParticleCrop = tuple[np.ndarray, tuple[int, int]]


@dataclass
class ImageRecord:
    """Everything needed to draw one image and its particles.

    Attributes
    ----------
    image_id : str
        Identifier of the image in the results.
    image : numpy.ndarray
        2-D pixel values.
    pixel_size_nm : tuple of float
        Pixel size ``(y, x)`` in nm.
    mask : numpy.ndarray, optional
        Boolean segmentation mask on the image grid.
    particle_masks : mapping, optional
        particle_id -> ``(crop mask, (row, col) offset)`` of every measured particle.
    n_frames : int
        Frames of the source (a movie is drawn by its first frame, ``image``).
    """

    image_id: str
    image: np.ndarray
    pixel_size_nm: tuple[float, float]
    mask: np.ndarray | None = None
    particle_masks: Mapping[int, ParticleCrop] | None = field(default=None)
    n_frames: int = 1


# --------------------------------------------------------------------------- image helpers


def nice_scale_bar_length(field_width_nm: float, fraction: float = 0.2) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k nm) close to ``fraction`` of the field.

    Parameters
    ----------
    field_width_nm : float
        Width of the shown field in nm (must be positive).
    fraction : float
        Target share of the width.

    Returns
    -------
    float
        Bar length in nm, at most ``fraction`` of the width when possible.

    Raises
    ------
    ValueError
        If ``field_width_nm`` is not a positive finite number.
    """
    if not (math.isfinite(field_width_nm) and field_width_nm > 0):
        raise ValueError(f"field width must be a positive number of nm, got {field_width_nm}")
    target = field_width_nm * fraction
    exponent = math.floor(math.log10(target))
    best = 10.0**exponent
    for mantissa in (1.0, 2.0, 5.0):
        candidate = mantissa * 10.0**exponent
        if candidate <= target:
            best = candidate
    return best


def format_length_nm(length_nm: float) -> str:
    """``"500 nm"``, ``"2 µm"`` or ``"0.5 nm"`` for a scale-bar label."""
    if length_nm >= 1000:
        return f"{length_nm / 1000:g} µm"
    return f"{length_nm:g} nm"


def add_scale_bar(axis: Axes, image_shape: tuple[int, int], pixel_size_x_nm: float) -> float:
    """Draw a labelled scale bar in the lower right of an image axis (pixel coordinates).

    Parameters
    ----------
    axis : matplotlib.axes.Axes
        Axis showing the image with pixel coordinates.
    image_shape : tuple of int
        ``(rows, cols)`` of the full-resolution image.
    pixel_size_x_nm : float
        Horizontal pixel size in nm.

    Returns
    -------
    float
        The bar length in nm.
    """
    rows, cols = image_shape
    length_nm = nice_scale_bar_length(cols * pixel_size_x_nm)
    length_px = length_nm / pixel_size_x_nm
    margin = 0.04 * cols
    height = max(0.012 * rows, 2.0)
    x0 = cols - margin - length_px
    y0 = rows - margin - height
    axis.add_patch(
        Rectangle((x0, y0), length_px, height, facecolor="white", edgecolor="black", lw=0.8)
    )
    axis.text(
        x0 + length_px / 2,
        y0 - 0.01 * rows,
        format_length_nm(length_nm),
        color="white",
        ha="center",
        va="bottom",
        fontsize=10,
        fontweight="bold",
        bbox={"facecolor": "black", "alpha": 0.45, "edgecolor": "none", "pad": 1.5},
    )
    return length_nm


def display_image(axis: Axes, image: np.ndarray) -> None:
    """Show a grey image with robust contrast (0.5–99.5 % percentiles), subsampled so the
    longest side is at most ``DISPLAY_MAX_PIXELS``, in full-resolution pixel coordinates."""
    image = np.asarray(image, dtype=float)
    step = max(1, math.ceil(max(image.shape) / DISPLAY_MAX_PIXELS))
    shown = image[::step, ::step]
    finite = shown[np.isfinite(shown)]
    low, high = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    rows, cols = image.shape
    axis.imshow(
        shown,
        cmap="gray",
        vmin=low,
        vmax=high,
        extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
        interpolation="antialiased",
    )
    axis.set_xlim(-0.5, cols - 0.5)
    axis.set_ylim(rows - 0.5, -0.5)
    axis.set_axis_off()


def overlay_mask(
    axis: Axes, mask: np.ndarray, colour: str = MASK_COLOUR, alpha: float = 0.45
) -> None:
    """Overlay a boolean mask as a translucent colour (subsampled like the image)."""
    mask = np.asarray(mask, dtype=bool)
    step = max(1, math.ceil(max(mask.shape) / DISPLAY_MAX_PIXELS))
    shown = mask[::step, ::step]
    rgba = np.zeros((*shown.shape, 4), dtype=np.float32)
    rgba[shown] = (*to_rgb(colour), alpha)
    rows, cols = mask.shape
    axis.imshow(rgba, extent=(-0.5, cols - 0.5, rows - 0.5, -0.5), interpolation="nearest")


# --------------------------------------------------------------------------- outlines


@dataclass
class ParticleOutlines:
    """Outlines of one image's particles, in full-resolution (row, col) pixel coordinates.

    Attributes
    ----------
    single, separated : list of numpy.ndarray
        Closed contours (N×2 arrays of row, col) of unseparated and separated particles.
    separated_boxes : list of tuple
        ``(min_row, min_col, max_row, max_col)`` of separated particles whose crops are not
        available (drawn as boxes instead of outlines).
    separation_lines : list of numpy.ndarray
        Contours of the zones where separated particles of one region meet or overlap.
    excluded : list of numpy.ndarray
        Contours of mask regions that hold no measured particle.
    """

    single: list[np.ndarray] = field(default_factory=list)
    separated: list[np.ndarray] = field(default_factory=list)
    separated_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    separation_lines: list[np.ndarray] = field(default_factory=list)
    excluded: list[np.ndarray] = field(default_factory=list)


def particle_outlines(
    particles: pd.DataFrame,
    pixel_size_nm: tuple[float, float],
    *,
    mask: np.ndarray | None = None,
    particle_masks: Mapping[int, ParticleCrop] | None = None,
) -> ParticleOutlines:
    """Outlines of measured, separated and excluded particles of one image.

    Parameters
    ----------
    particles : pandas.DataFrame
        This image's particles (``particle_id``, ``centroid_y_nm``, ``centroid_x_nm``,
        ``separated``, ``parent_region``, bbox columns).
    pixel_size_nm : tuple of float
        ``(y, x)`` pixel size in nm, to turn centroids into pixels.
    mask : numpy.ndarray, optional
        Boolean segmentation mask: the outline of an unseparated particle without a crop is
        its connected region at the centroid, and regions holding no particle are
        "excluded".
    particle_masks : mapping, optional
        particle_id -> ``(crop, (row, col))``; used first when present.

    Returns
    -------
    ParticleOutlines
        Contours ready to draw.
    """
    from scipy import ndimage
    from skimage.measure import label

    outlines = ParticleOutlines()
    labels = label(np.asarray(mask, dtype=bool), connectivity=2) if mask is not None else None
    slices = ndimage.find_objects(labels) if labels is not None else []
    hit_labels: set[int] = set()
    crops = particle_masks or {}
    separated = _separated_flags(particles)
    for row, is_separated in zip(particles.itertuples(index=False), separated, strict=True):
        particle_id = int(getattr(row, "particle_id", -1))
        centre = _centroid_pixel(row, pixel_size_nm)
        if labels is not None and centre is not None and _inside(centre, labels.shape):
            hit = int(labels[centre])
            if hit:
                hit_labels.add(hit)
        target = outlines.separated if is_separated else outlines.single
        if particle_id in crops:
            crop, (row0, col0) = crops[particle_id]
            target.extend(_crop_contours(crop, row0, col0))
            if labels is not None:
                _mark_labels_under_crop(labels, crop, row0, col0, hit_labels)
        elif is_separated:
            box = _bbox(row)
            if box is not None:
                outlines.separated_boxes.append(box)
        elif labels is not None and centre is not None and _inside(centre, labels.shape):
            region_label = int(labels[centre])
            if region_label:
                outlines.single.extend(_region_contours(labels, region_label, slices))
    if crops:
        outlines.separation_lines.extend(_separation_zones(particles, separated, crops))
    if labels is not None:
        for region_label in range(1, int(labels.max()) + 1):
            if region_label not in hit_labels:
                outlines.excluded.extend(_region_contours(labels, region_label, slices))
    return outlines


def plot_image_overview(
    record: ImageRecord, particles: pd.DataFrame, *, title: str | None = None
) -> Figure:
    """Three panels of one image: the micrograph with a scale bar, the segmentation overlay,
    and the measured particles (single, separated, separation lines, excluded regions).

    Parameters
    ----------
    record : ImageRecord
        Image, pixel size, optional mask and per-particle crops.
    particles : pandas.DataFrame
        This image's particles.
    title : str, optional
        Figure title (default: the image id).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    rows, cols = record.image.shape
    aspect = rows / cols
    figure = new_figure(13.5, 4.6 * aspect + 0.9)
    axes = figure.subplots(1, 3)
    display_image(axes[0], record.image)
    add_scale_bar(axes[0], (rows, cols), record.pixel_size_nm[1])
    axes[0].set_title("Micrograph", fontsize=10)

    display_image(axes[1], record.image)
    if record.mask is not None:
        overlay_mask(axes[1], record.mask)
        axes[1].set_title("Segmentation", fontsize=10)
    else:
        axes[1].set_title("Segmentation (mask not stored)", fontsize=10)

    display_image(axes[2], record.image)
    outlines = particle_outlines(
        particles, record.pixel_size_nm, mask=record.mask, particle_masks=record.particle_masks
    )
    draw_outlines(axes[2], outlines)
    axes[2].set_title(f"Measured particles (n = {len(particles)})", fontsize=10)
    figure.legend(
        handles=_outline_legend(outlines),
        loc="outside lower center",
        ncols=5,
        fontsize=9,
        frameon=False,
    )
    figure.suptitle(title if title is not None else record.image_id, fontsize=11)
    return figure


def draw_outlines(axis: Axes, outlines: ParticleOutlines) -> None:
    """Draw particle contours on an image axis (pixel coordinates)."""
    for contour in outlines.excluded:
        axis.add_patch(
            Polygon(
                contour[:, ::-1],
                closed=True,
                facecolor="none",
                edgecolor=EXCLUDED_COLOUR,
                hatch="////",
                lw=0.8,
            )
        )
    for contour in outlines.single:
        axis.plot(contour[:, 1], contour[:, 0], color=SINGLE_COLOUR, lw=1.0)
    for contour in outlines.separated:
        axis.plot(contour[:, 1], contour[:, 0], color=SEPARATED_COLOUR, lw=1.0)
    for min_row, min_col, max_row, max_col in outlines.separated_boxes:
        axis.add_patch(
            Rectangle(
                (min_col - 0.5, min_row - 0.5),
                max_col - min_col,
                max_row - min_row,
                facecolor="none",
                edgecolor=SEPARATED_COLOUR,
                lw=1.0,
                ls="--",
            )
        )
    for contour in outlines.separation_lines:
        axis.add_patch(
            Polygon(
                contour[:, ::-1],
                closed=True,
                facecolor=SEPARATION_LINE_COLOUR,
                edgecolor=SEPARATION_LINE_COLOUR,
                alpha=0.6,
                lw=1.2,
                zorder=4,
            )
        )


# --------------------------------------------------------------------------- gallery


#: Smallest side, in pixels, of a gallery cell (tiny particles are shown with context).
GALLERY_MIN_FIELD_PX = 32

#: Gallery rows: title -> (column to sort by, ascending).
GALLERY_ROWS: dict[str, tuple[str, bool]] = {
    "Largest": ("equivalent_diameter_nm", False),
    "Smallest": ("equivalent_diameter_nm", True),
    "Least convex": ("convexity", True),
}


def gallery_selection(particles: pd.DataFrame, per_row: int = 6) -> dict[str, pd.DataFrame]:
    """The largest, smallest and least convex particles, for a quick sanity check.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table.
    per_row : int
        Particles per category.

    Returns
    -------
    dict
        Category title -> rows of ``particles`` (categories whose column is missing are
        left out).
    """
    selection = {}
    for title, (column, ascending) in GALLERY_ROWS.items():
        if column in particles.columns and particles[column].notna().any():
            ordered = particles.dropna(subset=[column]).sort_values(
                column, ascending=ascending, kind="stable"
            )
            selection[title] = ordered.head(per_row)
    return selection


def plot_particle_gallery(
    particles: pd.DataFrame,
    load_image: Callable[[str], ImageRecord | None],
    *,
    per_row: int = 6,
    padding: float = 0.4,
) -> Figure | None:
    """A grid of particle crops: largest, smallest and least convex particles.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table of the run (``image_id`` and bbox columns needed).
    load_image : callable
        image_id -> :class:`ImageRecord` (or None when the image is unavailable).
    per_row : int
        Particles per category.
    padding : float
        Extra margin around each bounding box, as a share of its size.

    Returns
    -------
    matplotlib.figure.Figure or None
        The gallery, or None when no particle image could be loaded.
    """
    selection = gallery_selection(particles, per_row)
    if not selection:
        return None
    figure = new_figure(1.9 * per_row, 2.15 * len(selection) + 0.3)
    axes = figure.subplots(len(selection), per_row, squeeze=False)
    cells: dict[str, list[tuple[Axes, object]]] = {}
    for axes_row, (title, rows) in zip(axes, selection.items(), strict=True):
        for axis in axes_row:
            axis.set_axis_off()
        axes_row[0].text(
            -0.08,
            0.5,
            title,
            transform=axes_row[0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=10,
            fontweight="bold",
        )
        for axis, row in zip(axes_row, rows.itertuples(index=False), strict=False):
            cells.setdefault(str(row.image_id), []).append((axis, row))
    drawn = 0
    for image_id, image_cells in cells.items():  # one image in memory at a time
        record = load_image(image_id)
        for axis, row in image_cells:
            if record is None or _bbox(row) is None:
                axis.text(0.5, 0.5, "image\nunavailable", ha="center", va="center", fontsize=8)
                continue
            _draw_gallery_cell(axis, record, row, padding)
            drawn += 1
    if drawn == 0:
        return None
    return figure


def _draw_gallery_cell(axis: Axes, record: ImageRecord, row: object, padding: float) -> None:
    min_row, min_col, max_row, max_col = _bbox(row)  # type: ignore[misc]
    size = max(max_row - min_row, max_col - min_col)
    pad = max(int(math.ceil(padding * size)) + 2, (GALLERY_MIN_FIELD_PX - size) // 2)
    rows, cols = record.image.shape
    r0, r1 = max(0, min_row - pad), min(rows, max_row + pad)
    c0, c1 = max(0, min_col - pad), min(cols, max_col + pad)
    crop = np.asarray(record.image[r0:r1, c0:c1], dtype=float)
    low, high = np.percentile(crop, [0.5, 99.5]) if crop.size else (0.0, 1.0)
    axis.imshow(
        crop,
        cmap="gray",
        vmin=low,
        vmax=max(high, low + 1e-9),
        extent=(c0 - 0.5, c1 - 0.5, r1 - 0.5, r0 - 0.5),
    )
    particle_id = int(getattr(row, "particle_id", -1))
    separated = bool(getattr(row, "separated", False))
    colour = SEPARATED_COLOUR if separated else SINGLE_COLOUR
    crops = record.particle_masks or {}
    if particle_id in crops:
        crop_mask, (row0, col0) = crops[particle_id]
        for contour in _crop_contours(crop_mask, row0, col0):
            axis.plot(contour[:, 1], contour[:, 0], color=colour, lw=1.2)
    else:
        axis.add_patch(
            Rectangle(
                (min_col - 0.5, min_row - 0.5),
                max_col - min_col,
                max_row - min_row,
                facecolor="none",
                edgecolor=colour,
                lw=1.0,
                ls="--",
            )
        )
    axis.set_xlim(c0 - 0.5, c1 - 0.5)
    axis.set_ylim(r1 - 0.5, r0 - 0.5)
    diameter = getattr(row, "equivalent_diameter_nm", float("nan"))
    convexity = getattr(row, "convexity", float("nan"))
    axis.set_title(
        f"{record.image_id} #{particle_id}\nd={diameter:.3g} nm, cvx={convexity:.2f}",
        fontsize=7,
    )


# --------------------------------------------------------------------------- internals


def _separated_flags(particles: pd.DataFrame) -> list[bool]:
    if "separated" not in particles.columns:
        return [False] * len(particles)
    return [bool(value) if pd.notna(value) else False for value in particles["separated"]]


def _centroid_pixel(row: object, pixel_size_nm: tuple[float, float]) -> tuple[int, int] | None:
    y_nm = getattr(row, "centroid_y_nm", None)
    x_nm = getattr(row, "centroid_x_nm", None)
    if y_nm is None or x_nm is None or not (np.isfinite(y_nm) and np.isfinite(x_nm)):
        return None
    return int(round(y_nm / pixel_size_nm[0])), int(round(x_nm / pixel_size_nm[1]))


def _inside(pixel: tuple[int, int], shape: tuple[int, ...]) -> bool:
    return 0 <= pixel[0] < shape[0] and 0 <= pixel[1] < shape[1]


def _bbox(row: object) -> tuple[int, int, int, int] | None:
    values = [
        getattr(row, name, None)
        for name in ("bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col")
    ]
    if any(value is None or not np.isfinite(value) for value in values):
        return None
    return tuple(int(value) for value in values)  # type: ignore[return-value]


def _crop_contours(crop: np.ndarray, row0: int, col0: int) -> list[np.ndarray]:
    from skimage.measure import find_contours

    padded = np.pad(np.asarray(crop, dtype=float), 1)
    return [contour + (row0 - 1, col0 - 1) for contour in find_contours(padded, 0.5)]


def _region_contours(
    labels: np.ndarray, region_label: int, slices: list[tuple[slice, slice] | None]
) -> list[np.ndarray]:
    """Contours of one labelled region, from its bounding box (``slices`` from
    ``scipy.ndimage.find_objects(labels)``) so that the cost does not grow with the image."""
    box = slices[region_label - 1] if region_label - 1 < len(slices) else None
    if box is None:
        return []
    rows, cols = box
    crop = labels[rows, cols] == region_label
    return _crop_contours(crop, rows.start, cols.start)


def _mark_labels_under_crop(
    labels: np.ndarray, crop: np.ndarray, row0: int, col0: int, hit_labels: set[int]
) -> None:
    window = labels[row0 : row0 + crop.shape[0], col0 : col0 + crop.shape[1]]
    covered = window[np.asarray(crop, dtype=bool)[: window.shape[0], : window.shape[1]]]
    hit_labels.update(int(value) for value in np.unique(covered) if value)


def _separation_zones(
    particles: pd.DataFrame, separated: list[bool], crops: Mapping[int, ParticleCrop]
) -> list[np.ndarray]:
    """Contours of the zones where two or more separated particles of one parent region
    meet (touching cut lines) or overlap (shared pixels)."""
    from scipy import ndimage

    if "parent_region" not in particles.columns:
        return []
    groups: dict[object, list[ParticleCrop]] = {}
    for particle_id, parent, is_separated in zip(
        particles["particle_id"], particles["parent_region"], separated, strict=True
    ):
        if is_separated and int(particle_id) in crops and pd.notna(parent):
            groups.setdefault(parent, []).append(crops[int(particle_id)])
    contours: list[np.ndarray] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        top = min(offset[0] for _, offset in members) - 1
        left = min(offset[1] for _, offset in members) - 1
        bottom = max(offset[0] + crop.shape[0] for crop, offset in members) + 1
        right = max(offset[1] + crop.shape[1] for crop, offset in members) + 1
        count = np.zeros((bottom - top, right - left), dtype=np.int16)
        union = np.zeros_like(count, dtype=bool)
        for crop, (row0, col0) in members:
            placed = np.zeros_like(union)
            placed[
                row0 - top : row0 - top + crop.shape[0], col0 - left : col0 - left + crop.shape[1]
            ] = crop
            union |= placed
            count += ndimage.binary_dilation(placed)
        zone = (count >= 2) & union
        if zone.any():
            contours.extend(_crop_contours(zone, top, left))
    return contours


def _outline_legend(outlines: ParticleOutlines) -> list[object]:
    handles: list[object] = [
        Line2D([], [], color=SINGLE_COLOUR, lw=1.5, label="single particle"),
        Line2D([], [], color=SEPARATED_COLOUR, lw=1.5, label="separated particle"),
    ]
    if outlines.separated_boxes:
        handles.append(
            Line2D([], [], color=SEPARATED_COLOUR, lw=1.2, ls="--", label="separated (box only)")
        )
    handles.append(
        Line2D([], [], color=SEPARATION_LINE_COLOUR, lw=1.5, label="separation line / overlap")
    )
    handles.append(
        Patch(facecolor="none", edgecolor=EXCLUDED_COLOUR, hatch="////", label="not measured")
    )
    return handles
