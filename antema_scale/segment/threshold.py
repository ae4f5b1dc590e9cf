"""Classical baseline segmenter: Gaussian blur + Otsu (global) or background-corrected threshold.

Polarity is detected automatically: the background is assumed to be the majority of the
pixels, so if most pixels lie above the threshold the particles are the dark class
(bright-field TEM), otherwise the bright class (HAADF-STEM). The probability returned is a
logistic function of the distance to the threshold, in units of 5 % of the image's
1-99 % intensity range, so it is comparable in spirit (not in calibration) to the
network's.

Quality signal: ``mean_margin``, ``uncertain_fraction``, ``particle_fraction`` as for the
network, plus ``separability`` (Otsu's between-class / total variance, 0..1; a bimodal
image scores near 1) and ``polarity`` (+1 bright particles, -1 dark particles).
``out_of_distribution`` is True when ``separability < MIN_SEPARABILITY`` (the histogram is
not bimodal enough for a global threshold to mean anything).

Large images (at least :data:`~antema_scale.segment.chunked.CHUNKED_MIN_PIXELS` pixels)
and Dask arrays (e.g. ``Store.read_image(image_id, lazy=True)``) take a chunked path
(:mod:`antema_scale.segment.chunked`: dask-image Gaussian filters over chunks, exact
chunk-wise percentiles and Otsu histogram) with the same mask and probability as the
in-memory path and bounded temporaries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from antema_scale.segment.inference import Prediction

__all__ = ["MIN_SEPARABILITY", "otsu_separability", "threshold_segment"]

#: Below this Otsu separability the baseline flags an image as out of distribution.
MIN_SEPARABILITY = 0.5


def otsu_separability(values: np.ndarray, threshold: float) -> float:
    """Between-class variance / total variance for a split at ``threshold`` (0..1)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    total = values.var()
    if total <= 0:
        return 0.0
    upper = values > threshold
    w1 = upper.mean()
    if w1 in (0.0, 1.0):
        return 0.0
    m0, m1 = values[~upper].mean(), values[upper].mean()
    return float(w1 * (1 - w1) * (m1 - m0) ** 2 / total)


def _check_options(pixel_size_nm: float, method: str, polarity: str) -> None:
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"pixel size must be a positive number of nm/px, got {pixel_size_nm}")
    if method not in ("otsu", "local"):
        raise ValueError(f"method must be 'otsu' or 'local', got {method!r}")
    if polarity not in ("auto", "dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")


def _flat_prediction(shape: tuple[int, ...]) -> Prediction:
    """No particles: the 1-99 % intensity range is empty."""
    empty = np.zeros(shape, dtype=np.float32)
    quality: dict[str, float | bool] = {
        "mean_margin": 1.0,
        "uncertain_fraction": 0.0,
        "particle_fraction": 0.0,
        "separability": 0.0,
        "polarity": 0.0,
        "out_of_distribution": True,
    }
    return Prediction(empty.astype(bool), empty, quality)


def _sign(polarity: str, upper_fraction: float) -> float:
    """+1 for bright particles, -1 for dark; ``auto``: the minority class is the particles."""
    if polarity == "auto":
        return -1.0 if upper_fraction > 0.5 else 1.0
    return 1.0 if polarity == "bright" else -1.0


def _background_sigma(
    shape: tuple[int, ...], pixel_size_nm: float, block_size_nm: float | None
) -> float:
    """Sigma in pixels of the background Gaussian of the ``local`` method."""
    side = block_size_nm / pixel_size_nm if block_size_nm else min(shape) / 4
    return max(side / 2, 1.0)


def _probability(
    smooth: np.ndarray, level: np.ndarray | float, sign: float, scale: np.floating
) -> np.ndarray:
    """Logistic pseudo-probability of the signed distance to the threshold (float32)."""
    probability = 1.0 / (1.0 + np.exp(-np.clip(sign * (smooth - level) / scale, -30, 30)))
    return probability.astype(np.float32)


def _quality(
    mean_margin: float,
    uncertain_fraction: float,
    particle_fraction: float,
    separability: float,
    sign: float,
) -> dict[str, float | bool]:
    return {
        "mean_margin": float(mean_margin),
        "uncertain_fraction": float(uncertain_fraction),
        "particle_fraction": float(particle_fraction),
        "separability": float(separability),
        "polarity": sign,
        "out_of_distribution": bool(separability < MIN_SEPARABILITY),
    }


def threshold_segment(
    image: Any,
    pixel_size_nm: float,
    *,
    method: str = "otsu",
    sigma_px: float = 2.0,
    polarity: str = "auto",
    block_size_nm: float | None = None,
    chunked: bool | None = None,
    chunk_px: int | None = None,
    scheduler: str | None = None,
) -> Prediction:
    """Segment particles by thresholding a blurred image.

    Parameters
    ----------
    image : numpy.ndarray, dask.array.Array or xarray.DataArray
        2-D grey image, any real dtype; a Dask array (or an xarray backed by one, e.g.
        ``Store.read_image(image_id, lazy=True)``) is read chunk by chunk.
    pixel_size_nm : float
        Pixel size in nm/px (used for the local block size).
    method : {"otsu", "local"}
        Global Otsu threshold, or ``local``: Otsu after subtracting a smooth background
        (Gaussian of sigma ``block_size_nm / 2``, default a quarter of the shorter image
        side), which copes with uneven illumination.
    sigma_px : float
        Gaussian blur sigma in pixels (the paper's pre-processing uses 2 px).
    polarity : {"auto", "dark", "bright"}
        Particles darker or brighter than the background; ``auto`` detects it.
    block_size_nm : float, optional
        Background block size of the ``local`` method in nm.
    chunked : bool, optional
        Use the chunked Dask/dask-image path (:mod:`antema_scale.segment.chunked`).
        Default: for Dask inputs and images of at least
        :data:`~antema_scale.segment.chunked.CHUNKED_MIN_PIXELS` pixels. Same mask and
        probability either way.
    chunk_px : int, optional
        Chunk side in pixels for the chunked path (default: a Dask input's own chunks,
        else :data:`~antema_scale.segment.chunked.DEFAULT_CHUNK_PX`).
    scheduler : str, optional
        Dask scheduler for the chunked path (default
        :func:`~antema_scale.segment.chunked.default_scheduler`: ``"synchronous"`` inside
        Dask workers and other non-main threads, ``"threads"`` otherwise).

    Returns
    -------
    Prediction
        Mask, pseudo-probability and quality on the image's own grid (NumPy arrays).

    Raises
    ------
    ValueError
        Not a finite 2-D real image, bad pixel size, unknown method or polarity.
    """
    from antema_scale.segment import chunked as chunked_path

    lazy = chunked_path.is_dask_image(image)
    if not lazy:
        image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2-D grey image, got shape {image.shape}")
    if np.iscomplexobj(image) or not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"image must be real-valued, got dtype {image.dtype}")
    _check_options(pixel_size_nm, method, polarity)
    if chunked is None:
        chunked = lazy or image.size >= chunked_path.CHUNKED_MIN_PIXELS
    if chunked:
        return _threshold_chunked(
            image,
            pixel_size_nm,
            method=method,
            sigma_px=sigma_px,
            polarity=polarity,
            block_size_nm=block_size_nm,
            chunk_px=chunk_px,
            scheduler=scheduler or chunked_path.default_scheduler(),
        )
    if lazy:
        data = image.data if hasattr(image, "dims") else image
        image = np.asarray(data.compute(scheduler=scheduler or chunked_path.default_scheduler()))
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    smooth = image.astype(np.float32)
    if sigma_px > 0:
        smooth = ndimage.gaussian_filter(smooth, sigma_px, mode="reflect")
    lo, hi = np.percentile(smooth, (1, 99))
    if not hi > lo:
        return _flat_prediction(image.shape)
    global_t = float(threshold_otsu(smooth))
    separability = otsu_separability(smooth, global_t)
    sign = _sign(polarity, (smooth > global_t).mean())
    if method == "otsu":
        level: np.ndarray | float = global_t
    else:
        # Slowly varying background (illumination, support thickness) removed, then Otsu.
        sigma = _background_sigma(image.shape, pixel_size_nm, block_size_nm)
        background = ndimage.gaussian_filter(smooth, sigma, mode="reflect")
        corrected = smooth - background
        level = background + float(threshold_otsu(corrected))
    probability = _probability(smooth, level, sign, 0.05 * (hi - lo))
    margin = np.abs(2.0 * probability - 1.0)
    quality = _quality(
        margin.mean(),
        ((probability > 0.25) & (probability < 0.75)).mean(),
        (probability > 0.5).mean(),
        separability,
        sign,
    )
    return Prediction(probability > 0.5, probability, quality)


def _store_blurred(index: tuple[slice, ...], block: np.ndarray, out: Any) -> np.ndarray:
    """Pass 1: write one blurred chunk into the float32 buffer; its min, max and sum."""
    out.array[index] = block
    return np.array([block.min(), block.max(), block.sum(dtype=np.float64)], dtype=np.float64)


def _first_statistics(
    index: tuple[slice, ...], block: np.ndarray, low: np.float32, high: np.float32, mean: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Pass 2: radix counts (percentiles), Otsu histogram, squared deviations (variance)."""
    from antema_scale.segment import chunked as ck

    deviations = block.astype(np.float64).ravel()
    deviations -= mean
    return (
        ck.high_digit_counts(block),
        ck.otsu_counts(block, low, high),
        float(np.dot(deviations, deviations)),
    )


def _second_statistics(
    index: tuple[slice, ...], block: np.ndarray, prefixes: tuple[int, ...], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pass 3: radix counts of the lower bits; pixels above the Otsu threshold as the
    polarity test counts them (float32 comparison) and the float64 count and sum above
    it (as :func:`otsu_separability`)."""
    from antema_scale.segment import chunked as ck

    values = block.astype(np.float64)
    upper = values > threshold
    stats = np.array(
        [
            np.count_nonzero(block > threshold),
            np.count_nonzero(upper),
            np.sum(values, where=upper),
        ],
        dtype=np.float64,
    )
    return ck.low_digit_counts(block, prefixes), stats


def _corrected_range(
    index: tuple[slice, ...], smooth: np.ndarray, background: np.ndarray
) -> tuple[np.float32, np.float32]:
    corrected = smooth - background
    return corrected.min(), corrected.max()


def _finish(
    index: tuple[slice, ...],
    smooth: np.ndarray,
    *,
    out: Any,
    mask: Any,
    background: Any,
    offset: float,
    sign: float,
    scale: np.floating,
) -> np.ndarray:
    """Probability (written over the blurred chunk in ``out``) and mask of one chunk.

    Returns the chunk's margin sum, uncertain and particle pixel counts.
    """
    level = offset if background is None else background.array[index] + offset
    probability = _probability(smooth, level, sign, scale)
    margin = np.abs(2.0 * probability - 1.0)
    particles = probability > 0.5
    mask.array[index] = particles
    out.array[index] = probability
    return np.array(
        [
            margin.sum(dtype=np.float64),
            ((probability > 0.25) & (probability < 0.75)).sum(),
            particles.sum(),
        ],
        dtype=np.float64,
    )


def _threshold_chunked(
    image: Any,
    pixel_size_nm: float,
    *,
    method: str,
    sigma_px: float,
    polarity: str,
    block_size_nm: float | None,
    chunk_px: int | None,
    scheduler: str,
) -> Prediction:
    """The chunked path of :func:`threshold_segment` (see :mod:`antema_scale.segment.chunked`)."""
    from antema_scale.segment import chunked as ck

    x = ck.as_dask_image(image, chunk_px).astype(np.float32)
    blurred = ck.gaussian_blur(x, sigma_px) if sigma_px > 0 else x
    shape = tuple(int(n) for n in x.shape)
    n = int(x.size)
    # The blurred image lives in one float32 buffer, overwritten by the probability at the end.
    buffer = np.empty(shape, dtype=np.float32)
    view = ck.NumpyView(buffer)
    first = np.array(ck.per_block(_store_blurred, blurred, scheduler=scheduler, out=view))
    low, high = np.float32(first[:, 0].min()), np.float32(first[:, 1].max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("image contains NaN or infinite values")
    mean = float(first[:, 2].sum() / n)
    # Statistics and the final pass read the buffer in small square views (few temporaries).
    smooth = ck.lazy_view(buffer, ck.STATISTICS_CHUNKS)
    parts = ck.per_block(
        _first_statistics, smooth, scheduler=scheduler, low=low, high=high, mean=mean
    )
    high_counts = np.sum([part[0] for part in parts], axis=0)
    global_t = ck.otsu_from_counts(np.sum([part[1] for part in parts], axis=0), low, high)
    variance = sum(part[2] for part in parts) / n
    # Exact 1st/99th percentiles: numpy's linear rule on exact order statistics.
    previous, following, gamma = ck.percentile_plan(n, (1, 99))
    ranks = [int(r) for r in np.concatenate([previous, following])]
    prefixes = tuple(sorted(set(ck.select_prefixes(high_counts, ranks))))
    parts = ck.per_block(
        _second_statistics, smooth, scheduler=scheduler, prefixes=prefixes, threshold=global_t
    )
    low_counts = np.sum([part[0] for part in parts], axis=0)
    above, n_upper, upper_sum = np.sum([part[1] for part in parts], axis=0)
    values = ck.resolve_ranks(high_counts, low_counts, ranks, prefixes)
    lo, hi = ck.interpolate_percentiles(values[:2], values[2:], gamma)
    if not hi > lo:
        return _flat_prediction(shape)
    # otsu_separability from per-chunk sums (float64; equal up to rounding).
    total = mean * n
    w1 = n_upper / n
    separability = 0.0
    if variance > 0 and 0 < n_upper < n:
        m0, m1 = (total - upper_sum) / (n - n_upper), upper_sum / n_upper
        separability = float(w1 * (1 - w1) * (m1 - m0) ** 2 / variance)
    sign = _sign(polarity, above / n)
    background = None
    offset = global_t
    if method == "local":
        sigma = _background_sigma(shape, pixel_size_nm, block_size_nm)
        back = ck.gaussian_background(buffer, sigma, strip_px=ck.STRIP_PX, scheduler=scheduler)
        back_lazy = ck.lazy_view(back, ck.STATISTICS_CHUNKS)
        corrected_ranges = np.array(
            ck.per_block(_corrected_range, smooth, back_lazy, scheduler=scheduler)
        )
        offset = ck.otsu_threshold(
            smooth - back_lazy,
            corrected_ranges[:, 0].min(),
            corrected_ranges[:, 1].max(),
            scheduler=scheduler,
        )
        background = ck.NumpyView(back)
    mask = np.empty(shape, dtype=bool)
    sums = np.sum(
        ck.per_block(
            _finish,
            smooth,
            scheduler=scheduler,
            out=view,
            mask=ck.NumpyView(mask),
            background=background,
            offset=offset,
            sign=sign,
            scale=0.05 * (hi - lo),
        ),
        axis=0,
    )
    quality = _quality(sums[0] / n, sums[1] / n, sums[2] / n, separability, sign)
    return Prediction(mask, buffer, quality)
