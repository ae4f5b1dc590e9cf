"""Tiled, batched inference of a segmentation model on micrographs of any size.

:func:`predict` takes images with their pixel sizes (nm/px), brings each onto the model's
working grid (:func:`antema_scale.segment.preprocess.prepare_image`), cuts it into
overlapping tiles whose origins are multiples of the network's output stride, runs the
tiles of all images in batches (``torch.inference_mode``, mixed precision as set by
``precision``: see *Precision*), blends the tile probabilities with a raised-cosine window
(so seams do not show), and maps the probability back onto the original pixel grid.
Every :class:`Prediction` carries a quality signal:

``mean_margin``
    mean of ``|2 p - 1|`` over the image (1 = the network is sure everywhere).
``uncertain_fraction``
    fraction of pixels with ``0.25 < p < 0.75``.
``particle_fraction``
    fraction of pixels predicted as particle.
``zoom``
    working pixels per original pixel (1 = no resampling), refinement included.
``particle_diameter_px``
    area-weighted median equivalent diameter of the particles found in the first pass,
    in pixels of the working grid (NaN when none was found).
``refine_zoom``
    extra zoom of the second pass (1 = no second pass; see *Scale adaptation*).
``out_of_distribution``
    True when ``mean_margin < QUALITY_THRESHOLDS["min_mean_margin"]`` or
    ``uncertain_fraction > QUALITY_THRESHOLDS["max_uncertain_fraction"]`` (a model file may
    carry its own calibrated ``quality_thresholds`` in its metadata), or when the image had
    to be resampled by more than ``max_zoom_factor`` either way.

Scale adaptation
----------------
The network outlines particles of 25 px and more on its working grid best; near its
6 px lower limit boundaries are coarse (the decoder works at a quarter of the input
resolution) and faint particles are missed. So :func:`predict` measures the (area-weighted)
median particle diameter of a first pass and, when it is below ``target_diameter_px``
(:data:`SCALE_ADAPTATION`), segments the image again on a grid finer by
``min(max_refine_zoom, target_diameter_px / diameter)`` and keeps that second pass,
except in regions of it far larger than the particles measured that the first pass did
not mark (:func:`keep_first_pass_in_unsupported_regions`).
Images of large particles (most real films at their working pixel size) are left alone.
The frames of a movie should share one decision (:func:`shared_refine_zoom`, passed to
:func:`predict` as ``refine_zooms``): the pipeline decides once per movie from a few
sample frames, so that a movie whose particle size sits near the target is not segmented
on two grids.

Flip averaging
--------------
With ``flips=8`` (the default of :func:`predict`) every tile is run in all eight
symmetries of the square (mirrored in x, in y, in both, and each of these transposed),
and the eight logit maps are averaged after mapping back (test-time augmentation): 8x the
network time for +0.020 to +0.025 particle IoU on the validation split over the network
alone (docs/MODEL_CARD.md). ``flips=4`` uses the four mirrors (+0.016 to +0.020, half the
time of 8), ``flips=2`` the identity and the 180-degree turn, ``flips=1`` the network alone.

Precision
---------
``precision="auto"`` (the default) runs the network in bfloat16/float16 autocast on CUDA
and in float32 on the CPU and MPS; ``"fp32"``, ``"bf16"`` and ``"fp16"`` force a type on
any device (:mod:`antema_scale.segment.precision`). Probabilities are returned in float32.

Host threads
------------
The work per image outside the network (resampling, the pre-filter and intensity
statistics, measuring the first pass, the quality signal, mapping back to the original
grid: ~60 ms per 1024² image on one core here) runs on ``host_threads`` threads
(default: ``torch.get_num_threads()``), one image per thread; numpy, scipy and
scikit-image release the GIL there. On a GPU this host work, not the network, bounds the
throughput (``benchmarks/bench_inference.py`` measures it with the network replaced by a
no-op). Results do not depend on the thread count.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from antema_scale.segment.errors import ImageInputError
from antema_scale.segment.model_file import SegmentationModel, resolve_device
from antema_scale.segment.precision import autocast, check_precision
from antema_scale.segment.preprocess import largest_zoom_factor, prepare_image, resample

__all__ = [
    "OUTPUT_STRIDE",
    "QUALITY_THRESHOLDS",
    "SCALE_ADAPTATION",
    "Prediction",
    "FLIP_VIEWS",
    "blend_window",
    "flip_averaged_logits",
    "keep_first_pass_in_unsupported_regions",
    "map_images",
    "median_particle_diameter_px",
    "predict",
    "predict_prepared",
    "quality_signal",
    "refine_zoom",
    "shared_refine_zoom",
    "tile_origins",
]

#: Tile origins are multiples of this (the encoder's total stride) so that every tile
#: samples the image on the same feature lattice.
OUTPUT_STRIDE = 32
#: Default out-of-distribution thresholds (see the module docstring): the 10th percentile
#: of ``mean_margin`` and the 90th of ``uncertain_fraction`` of the shipped model on its
#: validation images (EMPS + synthetic), so about 1 in 10 ordinary images is flagged.
QUALITY_THRESHOLDS: dict[str, float] = {
    "min_mean_margin": 0.74,
    "max_uncertain_fraction": 0.20,
    "max_zoom_factor": 16.0,
}
#: Defaults of the scale adaptation (see the module docstring): a second pass for images
#: whose first-pass median particle diameter is below ``target_diameter_px`` working
#: pixels, on a grid at most ``max_refine_zoom`` times finer. Chosen on the validation
#: split (docs/MODEL_CARD.md).
SCALE_ADAPTATION: dict[str, float] = {"target_diameter_px": 24.0, "max_refine_zoom": 2.0}
#: Mirror axes of the views averaged by ``flips`` = 1, 2, 4 or 8 (see the module
#: docstring); axes of an ``(N, C, H, W)`` batch. With 8, the four views are also run on
#: the transposed tile (:data:`TRANSPOSED_VIEWS`): all eight symmetries of the square.
FLIP_VIEWS: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((),),
    2: ((), (-2, -1)),
    4: ((), (-1,), (-2,), (-2, -1)),
    8: ((), (-1,), (-2,), (-2, -1)),
}
#: View counts of :data:`FLIP_VIEWS` that also run every view on the transposed tile.
TRANSPOSED_VIEWS = frozenset({8})
#: Connected components smaller than this (working pixels) are ignored when the first
#: pass's particle size is measured (isolated noise pixels).
MIN_COMPONENT_AREA_PX = 4
#: A region of the second pass larger than this many first-pass median particles, of
#: which the first pass marked less than :data:`NEW_REGION_SUPPORT`, keeps the first pass
#: (:func:`keep_first_pass_in_unsupported_regions`). On the validation split every factor
#: from 4 to 25 changed the same one image (docs/MODEL_CARD.md); the largest is kept.
NEW_REGION_AREA_FACTOR = 25.0
#: See :data:`NEW_REGION_AREA_FACTOR`.
NEW_REGION_SUPPORT = 0.1

_Result = TypeVar("_Result")


@dataclass
class Prediction:
    """Segmentation of one image on its original pixel grid.

    Attributes
    ----------
    mask : numpy.ndarray
        bool, True = particle.
    probability : numpy.ndarray
        float32 particle probability in 0..1.
    quality : dict
        Quality signal (see the module docstring); ``out_of_distribution`` is a bool.
    """

    mask: np.ndarray
    probability: np.ndarray
    quality: dict[str, float | bool] = field(default_factory=dict)


def _ceil_stride(n: float) -> int:
    return int(math.ceil(n / OUTPUT_STRIDE) * OUTPUT_STRIDE)


def tile_origins(length: int, tile: int, overlap: int) -> tuple[list[int], int, int]:
    """Tile start positions along one axis, the padded length they cover, the tile length.

    Uses the fewest tiles of at most ``tile`` pixels that cover ``length`` with at least
    ``overlap`` pixels shared by neighbours, then shrinks the tiles evenly so that little
    padding is computed. Tile lengths and starts are multiples of :data:`OUTPUT_STRIDE`.
    Returns ``(starts, padded_length, tile_length)``; the image is padded to
    ``padded_length >= length``.
    """
    if length <= tile:
        size = _ceil_stride(length)
        return [0], size, size
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, _ceil_stride((length + (n - 1) * overlap) / n))
    step = max(OUTPUT_STRIDE, ((size - overlap) // OUTPUT_STRIDE) * OUTPUT_STRIDE)
    while size + (n - 1) * step < length:
        n += 1
    return [i * step for i in range(n)], size + (n - 1) * step, size


def blend_window(shape: tuple[int, int], floor: float = 1e-3) -> np.ndarray:
    """2-D raised-cosine weights (float32), ``>= floor`` so every pixel counts."""
    axes = [np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2 for n in shape]
    return np.maximum(np.outer(axes[0], axes[1]), floor).astype(np.float32)


def _pad_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    pad = ((0, shape[0] - image.shape[0]), (0, shape[1] - image.shape[1]))
    if pad[0][1] == 0 and pad[1][1] == 0:
        return image
    return np.pad(image, pad, mode="symmetric")


def _check_flips(flips: int) -> None:
    if flips not in FLIP_VIEWS:
        raise ValueError(f"flips must be one of {sorted(FLIP_VIEWS)}, got {flips!r}")


def flip_averaged_logits(
    network: torch.nn.Module, batch: torch.Tensor, flips: int = 1
) -> torch.Tensor:
    """Logits of ``batch`` averaged over the mirrored views of :data:`FLIP_VIEWS`.

    Each view is mirrored (and, for ``flips=8``, transposed), run and mapped back, so the
    maps align pixel by pixel. ``flips=1`` is the plain forward pass.
    """
    _check_flips(flips)
    total = None
    sources = [(batch, False)]
    if flips in TRANSPOSED_VIEWS:
        sources.append((batch.transpose(-2, -1), True))
    for source, transposed in sources:
        for axes in FLIP_VIEWS[flips]:
            if axes:
                logits = torch.flip(network(torch.flip(source, axes)), axes).float()
            else:
                logits = network(source).float()
            if transposed:
                logits = logits.transpose(-2, -1)
            total = logits if total is None else total + logits
    return total / (len(FLIP_VIEWS[flips]) * len(sources))  # type: ignore[operator]


def predict_prepared(
    network: torch.nn.Module,
    images: Sequence[np.ndarray],
    *,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    flips: int = 1,
    precision: str = "auto",
) -> list[np.ndarray]:
    """Particle probability of prepared (working-grid, standardised) images, tiled.

    Parameters
    ----------
    network : torch.nn.Module
        Network returning one logit channel; used in eval mode.
    images : sequence of numpy.ndarray
        2-D float32 prepared images (any sizes).
    tile : int
        Tile side in working pixels (a multiple of 32 is best).
    overlap : int
        Overlap of neighbouring tiles in pixels (the blend zone).
    batch_size : int
        Tiles per forward pass (tiles of all images are batched together).
    device : torch.device or str
        Where to run.
    flips : int
        Mirrored views averaged per tile: 1, 2, 4 or 8 (:func:`flip_averaged_logits`).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast type of the network (see *Precision* in the module docstring).

    Returns
    -------
    list of numpy.ndarray
        float32 probability per image, same shape as the image.
    """
    if tile % OUTPUT_STRIDE:
        raise ValueError(f"tile must be a multiple of {OUTPUT_STRIDE}, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_flips(flips)
    check_precision(precision)
    device = resolve_device(device)
    network.eval()
    jobs: defaultdict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    padded_images, tilings = [], []
    for index, image in enumerate(images):
        ys, ph, th = tile_origins(image.shape[0], tile, overlap)
        xs, pw, tw = tile_origins(image.shape[1], tile, overlap)
        padded_images.append(torch.from_numpy(_pad_to(np.asarray(image, np.float32), (ph, pw))))
        tilings.append((ph, pw, th, tw, tuple(ys), tuple(xs)))
        for y in ys:
            for x in xs:
                jobs[(th, tw)].append((index, y, x))
    # Blending happens where the network runs: on a GPU only the finished maps come back.
    sums = [torch.zeros(tiling[:2], dtype=torch.float32, device=device) for tiling in tilings]
    windows = {size: torch.from_numpy(blend_window(size)).to(device) for size in jobs}
    with torch.inference_mode():
        for (th, tw), tiles in jobs.items():
            for start in range(0, len(tiles), batch_size):
                chunk = tiles[start : start + batch_size]
                batch = torch.stack([padded_images[i][y : y + th, x : x + tw] for i, y, x in chunk])
                with autocast(device, precision):
                    logits = flip_averaged_logits(network, batch[:, None].to(device), flips)
                probs = torch.sigmoid(logits.float())[:, 0]
                for (i, y, x), prob in zip(chunk, probs, strict=True):
                    sums[i][y : y + th, x : x + tw] += prob * windows[(th, tw)]
        weights = {
            tiling: _window_sum(tiling, windows, device) for tiling in dict.fromkeys(tilings)
        }
        return [
            (total / weights[tiling])[: img.shape[0], : img.shape[1]].contiguous().cpu().numpy()
            for total, tiling, img in zip(sums, tilings, images, strict=True)
        ]


def _window_sum(
    tiling: tuple[int, int, int, int, tuple[int, ...], tuple[int, ...]],
    windows: dict[tuple[int, int], torch.Tensor],
    device: torch.device,
) -> torch.Tensor:
    """Blend weights of a tiling ``(height, width, tile height, tile width, ys, xs)``: the
    sum of the windows of its tiles."""
    ph, pw, th, tw, ys, xs = tiling
    total = torch.zeros((ph, pw), dtype=torch.float32, device=device)
    for y in ys:
        for x in xs:
            total[y : y + th, x : x + tw] += windows[(th, tw)]
    return total


def median_particle_diameter_px(
    probability: np.ndarray, min_area_px: int = MIN_COMPONENT_AREA_PX
) -> float:
    """Area-weighted median equivalent diameter (px) of the regions with ``probability > 0.5``.

    The equivalent diameter of the region that the median particle pixel belongs to:
    half of the particle area lies in regions at least this large, so a crowd of small
    false specks barely moves it (an unweighted median would follow the specks). Regions
    smaller than ``min_area_px`` pixels are ignored; NaN when none is left.
    """
    from skimage.measure import label

    labels = label(np.asarray(probability) > 0.5, connectivity=1)
    areas = np.bincount(labels.ravel())[1:]
    areas = np.sort(areas[areas >= min_area_px])
    if areas.size == 0:
        return float("nan")
    cumulative = np.cumsum(areas)
    median_area = areas[np.searchsorted(cumulative, cumulative[-1] / 2.0)]
    return float(np.sqrt(4.0 * median_area / np.pi))


def keep_first_pass_in_unsupported_regions(
    first: np.ndarray,
    second: np.ndarray,
    diameter_px: float,
    *,
    area_factor: float = NEW_REGION_AREA_FACTOR,
    min_support: float = NEW_REGION_SUPPORT,
) -> np.ndarray:
    """The second pass's probability, with the first pass kept in regions it does not support.

    The second, finer pass of the scale adaptation exists for small particles. A region of
    the second pass that is larger than ``area_factor`` particles of ``diameter_px`` (the
    first pass's median, in second-pass pixels) and of which the first pass marked less
    than ``min_support`` as particle is not a small particle: on a finer grid a stretch of
    empty support can fill a whole tile and look, to the network, like the inside of a
    large particle (docs/MODEL_CARD.md, "Known weaknesses"). There the first pass
    (resampled to the second pass's grid) is kept.

    Parameters
    ----------
    first, second : numpy.ndarray
        Particle probability of the first pass and of the second, finer pass.
    diameter_px : float
        Median particle diameter of the first pass, in pixels of the second pass.
    area_factor : float
        Regions larger than this many particles of ``diameter_px`` are checked.
    min_support : float
        Smallest fraction of a checked region that the first pass must mark as particle.

    Returns
    -------
    numpy.ndarray
        float32 probability on the grid of ``second``.
    """
    from skimage.measure import label

    if not math.isfinite(diameter_px) or diameter_px <= 0:
        return second
    regions = label(second > 0.5, connectivity=1)
    count = int(regions.max())
    if count == 0:
        return second
    areas = np.bincount(regions.ravel(), minlength=count + 1)
    limit = area_factor * math.pi / 4.0 * diameter_px**2
    if areas[1:].max() <= limit:
        return second
    coarse = resample(first, second.shape)
    support = np.bincount(regions.ravel(), weights=(coarse > 0.5).ravel(), minlength=count + 1)
    unsupported = (areas > limit) & (support < min_support * areas)
    unsupported[0] = False
    if not unsupported.any():
        return second
    return np.where(unsupported[regions], coarse, second).astype(np.float32)


def refine_zoom(diameter_px: float, target_diameter_px: float, max_refine_zoom: float) -> float:
    """Extra zoom of the second pass for a first-pass median diameter (1 = no second pass).

    ``min(max_refine_zoom, target_diameter_px / diameter_px)`` when the particles are
    smaller than the target, else 1 (also for NaN: nothing found, nothing to refine).
    """
    if not math.isfinite(diameter_px) or diameter_px <= 0 or diameter_px >= target_diameter_px:
        return 1.0
    return float(min(max_refine_zoom, target_diameter_px / diameter_px))


def quality_signal(
    probability: np.ndarray, zoom: float, thresholds: dict[str, float] | None = None
) -> dict[str, float | bool]:
    """Per-image quality signal from a probability map (see the module docstring)."""
    limits = {**QUALITY_THRESHOLDS, **(thresholds or {})}
    margin = np.abs(2.0 * probability - 1.0)
    mean_margin = float(margin.mean()) if probability.size else 0.0
    uncertain = (
        float(((probability > 0.25) & (probability < 0.75)).mean()) if probability.size else 1.0
    )
    zoom_out = max(zoom, 1.0 / zoom) > limits["max_zoom_factor"]
    return {
        "mean_margin": mean_margin,
        "uncertain_fraction": uncertain,
        "particle_fraction": float((probability > 0.5).mean()) if probability.size else 0.0,
        "zoom": float(zoom),
        "out_of_distribution": bool(
            mean_margin < limits["min_mean_margin"]
            or uncertain > limits["max_uncertain_fraction"]
            or zoom_out
        ),
    }


def _network_pass(
    model: SegmentationModel, works: list[np.ndarray], **tiling: int | str
) -> list[np.ndarray]:
    """:func:`predict_prepared` with the model's inference network on its device (``tile``,
    ``overlap``, ``batch_size``, ``flips``, ``precision`` as keywords)."""
    return predict_prepared(model.inference_network(), works, device=model.device, **tiling)


def map_images(
    function: Callable[[int], _Result], count: int, threads: int | None = None
) -> list[_Result]:
    """``[function(0), ..., function(count - 1)]``, computed on up to ``threads`` threads.

    For the per-image host work of :func:`predict` (numpy, scipy and scikit-image release
    the GIL in it). ``threads`` defaults to ``torch.get_num_threads()``; 1 runs in this
    thread. The first exception (in index order) is raised, as a loop would.
    """
    workers = min(count, max(1, torch.get_num_threads() if threads is None else int(threads)))
    if workers <= 1:
        return [function(index) for index in range(count)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="antema-host") as pool:
        return list(pool.map(function, range(count)))


def _prepare_all(
    images: Sequence[np.ndarray],
    pixel_sizes_nm: Sequence[float],
    model: SegmentationModel,
    threads: int | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Working-grid images and their zooms; a bad image raises naming its index."""
    if len(images) != len(pixel_sizes_nm):
        raise ValueError(f"got {len(images)} images but {len(pixel_sizes_nm)} pixel sizes")

    def prepare(index: int) -> tuple[np.ndarray, float]:
        try:
            return prepare_image(images[index], pixel_sizes_nm[index], model.preprocessing)
        except ValueError as exc:
            raise ImageInputError(index, str(exc)) from exc

    done = map_images(prepare, len(images), threads)
    return [work for work, _ in done], [zoom for _, zoom in done]


def predict(
    model: SegmentationModel,
    images: Sequence[np.ndarray],
    pixel_sizes_nm: Sequence[float],
    *,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    tile: int = 512,
    overlap: int = 64,
    target_diameter_px: float | None = SCALE_ADAPTATION["target_diameter_px"],
    max_refine_zoom: float = SCALE_ADAPTATION["max_refine_zoom"],
    flips: int = 8,
    refine_zooms: Sequence[float | None] | None = None,
    precision: str = "auto",
    host_threads: int | None = None,
) -> list[Prediction]:
    """Segment micrographs with a model; one :class:`Prediction` per image.

    Parameters
    ----------
    model : SegmentationModel
        From :func:`antema_scale.segment.load_model`.
    images : sequence of numpy.ndarray
        2-D grey images, any size and real dtype.
    pixel_sizes_nm : sequence of float
        Pixel size of each image in nm/px.
    batch_size : int
        Tiles per forward pass.
    device : str or torch.device, optional
        ``auto|cpu|cuda|mps``; default: where the model already is.
    tile, overlap : int
        Tile side and overlap in working pixels.
    target_diameter_px : float or None
        Scale adaptation (see the module docstring): images whose first-pass median
        particle diameter is below this many working pixels are segmented again on a
        finer grid. ``None`` turns it off (one pass per image).
    max_refine_zoom : float
        Largest extra zoom of the second pass (>= 1).
    flips : int
        Views averaged per tile (see *Flip averaging*): 8 (default), 4, 2 or 1 (fastest:
        the network alone).
    refine_zooms : sequence of float or None, optional
        Per image, an extra zoom (>= 1) decided beforehand, e.g. once for all frames of
        a movie by :func:`shared_refine_zoom`: such an image is segmented in one pass on
        that grid, without a decision of its own. ``None`` entries (and the default)
        decide per image as described under ``target_diameter_px``.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast type of the network: ``"auto"`` = bfloat16/float16 on CUDA, float32
        elsewhere (see *Precision*).
    host_threads : int, optional
        Threads for the per-image work outside the network (see *Host threads*);
        default ``torch.get_num_threads()``. Results do not depend on it.

    Returns
    -------
    list of Prediction
        Masks and probabilities on each image's original grid, with quality signals.

    Raises
    ------
    ImageInputError
        (a ``ValueError``) A non-2-D/empty/non-finite image, a bad pixel size or one the
        model cannot reach (more than 16x enlargement); names the image index.
    ValueError
        Mismatched lengths, a refine zoom below 1.
    """
    if max_refine_zoom < 1:
        raise ValueError(f"max_refine_zoom must be >= 1, got {max_refine_zoom}")
    _check_flips(flips)
    check_precision(precision)
    fixed = [None] * len(images) if refine_zooms is None else list(refine_zooms)
    if len(fixed) != len(images):
        raise ValueError(f"got {len(images)} images but {len(fixed)} refine zooms")
    for index, value in enumerate(fixed):
        if value is not None and not value >= 1:
            raise ValueError(f"image {index}: refine zoom must be >= 1, got {value}")
    if host_threads is not None and host_threads < 1:
        raise ValueError(f"host_threads must be >= 1, got {host_threads}")
    if device is not None:
        model.to(device)
    prepared, zooms = _prepare_all(images, pixel_sizes_nm, model, host_threads)

    def run(works: list[np.ndarray]) -> list[np.ndarray]:
        return _network_pass(
            model,
            works,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            flips=flips,
            precision=precision,
        )

    count = len(images)
    probabilities: list[np.ndarray | None] = [None] * count
    diameters = [float("nan")] * count

    def capped(i: int, value: float) -> float:  # a second pass stays within MAX_WORKING_PIXELS
        return min(value, max(1.0, largest_zoom_factor(np.shape(images[i]), zooms[i])))

    refines = [1.0 if value is None else capped(i, float(value)) for i, value in enumerate(fixed)]
    # First pass on the working grid: images that decide for themselves, and those whose
    # fixed zoom is 1 (for them it is the only pass).
    first = [i for i in range(count) if fixed[i] is None or refines[i] == 1.0]
    for i, probability in zip(first, run([prepared[i] for i in first]), strict=True):
        probabilities[i] = probability
    deciding = [i for i in first if fixed[i] is None]
    measured = map_images(
        lambda k: median_particle_diameter_px(probabilities[deciding[k]]),
        len(deciding),
        host_threads,
    )
    for i, diameter in zip(deciding, measured, strict=True):
        diameters[i] = diameter
        if target_diameter_px is not None:
            refines[i] = capped(i, refine_zoom(diameter, target_diameter_px, max_refine_zoom))
    again = [i for i in range(count) if refines[i] > 1.0]
    if again:
        finer = map_images(
            lambda k: prepare_image(
                images[again[k]],
                pixel_sizes_nm[again[k]],
                model.preprocessing,
                zoom_factor=refines[again[k]],
            ),
            len(again),
            host_threads,
        )
        seconds = run([w for w, _ in finer])

        def checked(k: int) -> np.ndarray:  # the first pass vetoes large new regions
            i, first_pass = again[k], probabilities[again[k]]
            if first_pass is None:  # a fixed zoom: this is the image's only pass
                return seconds[k]
            return keep_first_pass_in_unsupported_regions(
                first_pass, seconds[k], diameters[i] * refines[i]
            )

        for i, prob, (_, zoom) in zip(
            again, map_images(checked, len(again), host_threads), finer, strict=True
        ):
            probabilities[i] = prob
            zooms[i] = zoom
    thresholds = model.metadata.get("quality_thresholds")

    def finish(i: int) -> Prediction:
        prob = probabilities[i]
        assert prob is not None
        diameter = diameters[i]
        if fixed[i] is not None:  # no first pass of its own: measured on its one pass
            diameter = median_particle_diameter_px(prob) / refines[i]
        quality = quality_signal(prob, zooms[i], thresholds)
        quality["particle_diameter_px"] = diameter
        quality["refine_zoom"] = refines[i]
        original = np.clip(resample(prob, tuple(np.shape(images[i]))), 0.0, 1.0)
        return Prediction(original > 0.5, original.astype(np.float32), quality)

    return map_images(finish, count, host_threads)


def shared_refine_zoom(
    model: SegmentationModel,
    images: Sequence[np.ndarray],
    pixel_sizes_nm: Sequence[float],
    *,
    batch_size: int = 4,
    tile: int = 512,
    overlap: int = 64,
    target_diameter_px: float = SCALE_ADAPTATION["target_diameter_px"],
    max_refine_zoom: float = SCALE_ADAPTATION["max_refine_zoom"],
    flips: int = 8,
    precision: str = "auto",
) -> tuple[float, float]:
    """One scale-adaptation decision for a set of images, e.g. sample frames of a movie.

    Every image gets the first pass of :func:`predict`; the median of their particle
    diameters (working px) decides one extra zoom for all. Passing that zoom to
    :func:`predict` as ``refine_zooms`` for every frame keeps a movie on one grid, so
    that particle sizes do not jump between frames when the decision would flip.

    Parameters
    ----------
    model : SegmentationModel
        From :func:`antema_scale.segment.load_model`.
    images : sequence of numpy.ndarray
        2-D grey images (at least one).
    pixel_sizes_nm : sequence of float
        Pixel size of each image in nm/px.
    batch_size, tile, overlap, target_diameter_px, max_refine_zoom, flips, precision
        As for :func:`predict`.

    Returns
    -------
    diameter_px : float
        Median of the images' area-weighted median particle diameters, working px (NaN
        when no image shows particles).
    zoom : float
        The extra zoom for all of them (1 = one pass on the working grid).
    """
    if not len(images):
        raise ValueError("shared_refine_zoom needs at least one image")
    _check_flips(flips)
    check_precision(precision)
    prepared, _ = _prepare_all(images, pixel_sizes_nm, model)
    probabilities = _network_pass(
        model,
        prepared,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        flips=flips,
        precision=precision,
    )
    found = [d for d in map(median_particle_diameter_px, probabilities) if math.isfinite(d)]
    diameter = float(np.median(found)) if found else float("nan")
    return diameter, refine_zoom(diameter, target_diameter_px, max_refine_zoom)
