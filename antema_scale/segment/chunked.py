"""Chunked (Dask + dask-image) path of the classical threshold segmenter.

:func:`antema_scale.segment.threshold_segment` sends large images (at least
:data:`CHUNKED_MIN_PIXELS` pixels, e.g. 8k x 8k montages) and Dask arrays (e.g. an image
read lazily from the Zarr store) here. The result equals the in-memory path pixel for
pixel; only the mean-based quality numbers may differ in their last digits (they are
summed per chunk in float64 instead of over the whole image in float32).

How each step is made chunk-wise and still exact:

- Gaussian blur (sigma ``sigma_px``): :func:`dask_image.ndfilters.gaussian_filter` over
  square chunks; dask-image overlaps neighbouring chunks by ``ceil(4 sigma)`` pixels, more
  than SciPy's kernel radius, so every output pixel sees the same neighbourhood as the
  whole-image filter (``mode="reflect"`` applies at the true image border only).
- Background Gaussian of the ``local`` method (sigma up to a few thousand pixels):
  separable, so it runs as two one-axis passes of
  :func:`dask_image.ndfilters.gaussian_filter` (sigma ``(s, 0)`` on full-height column
  strips, then ``(0, s)`` on full-width row strips). A strip spans its whole filtered
  axis, so no overlap is needed and each task holds one strip, instead of the near
  whole-image blocks a 2-D overlap of that depth would need. SciPy's 2-D filter is the
  same two passes with a float32 intermediate, so the result is identical.
- 1st / 99th percentiles (intensity scale of the pseudo-probability): exact order
  statistics by a two-pass radix selection on the float32 bit patterns (a 65,536-bin
  histogram of the upper 16 bits computed per chunk, then one of the lower 16 bits of the
  values in the selected bin), combined with NumPy's ``linear`` interpolation rule. No
  subsample, no approximation: equal to :func:`numpy.percentile` on the whole image.
- Otsu threshold: the 256-bin histogram over [min, max] that
  :func:`skimage.filters.threshold_otsu` builds, summed over chunks (``numpy.histogram``
  bins every value independently, so the counts are identical), then handed to
  ``threshold_otsu(hist=...)``.
- Mask and pseudo-probability: element-wise, per chunk, with the same expression as the
  in-memory path.

Memory: a NumPy input is read through views (no copy of the input); the blurred image
is written into one float32 buffer that is later overwritten in place by the
probability, so the peak is about input + 1 float32 image + the bool mask (+ 1 float32
image for the ``local`` background) + a few chunks per thread (the passes after the
blur read the buffer in :data:`STATISTICS_CHUNKS` views), instead of several
whole-image float32/float64 temporaries. A Dask input (lazy Zarr) is never held whole.
Measured: ``benchmarks/bench_chunked_threshold.py``.

Schedulers: inside a Dask worker (distributed) or any non-main thread (e.g. a task of
Dask's local threaded scheduler) the computations run with ``scheduler="synchronous"``
so that a one-thread worker does not start a thread pool of its own; in the main
thread they use Dask's ``"threads"`` scheduler. The scheduler is always given
explicitly, so a ``distributed.Client`` registered as default is never used from here
(it would ship the whole image through the scheduler).
"""

from __future__ import annotations

import math
import sys
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.array.core import slices_from_chunks
from dask_image import ndfilters
from scipy import ndimage
from skimage.filters import threshold_otsu

__all__ = [
    "CHUNKED_MIN_PIXELS",
    "DEFAULT_CHUNK_PX",
    "STATISTICS_CHUNKS",
    "STRIP_PX",
    "as_dask_image",
    "default_scheduler",
    "NumpyView",
    "exact_percentiles",
    "gaussian_background",
    "gaussian_blur",
    "high_digit_counts",
    "interpolate_percentiles",
    "is_dask_image",
    "lazy_view",
    "low_digit_counts",
    "order_statistics",
    "otsu_counts",
    "otsu_from_counts",
    "otsu_threshold",
    "per_block",
    "percentile_plan",
    "resolve_ranks",
    "select_prefixes",
    "otsu_threshold",
]

#: Images with at least this many pixels take the chunked path by default (64 MiB float32).
CHUNKED_MIN_PIXELS = 4096 * 4096

#: Default chunk side in pixels for NumPy inputs (the store's image chunks are <= 2048²).
DEFAULT_CHUNK_PX = 2048

#: Chunks of the passes over the in-memory blurred image (statistics, probability, mask):
#: small, so that per-chunk float64 temporaries stay a few MiB per thread.
STATISTICS_CHUNKS = (1024, 1024)

#: Width (height) of the column (row) strips of the large-sigma background Gaussian.
STRIP_PX = 512

#: Truncation of the Gaussian kernels in sigmas (SciPy's and dask-image's default).
_TRUNCATE = 4.0

#: Bins of the Otsu histogram (skimage's default).
_OTSU_BINS = 256

_DIGIT = 1 << 16


class NumpyView:
    """Array-like wrapper around a NumPy array for Dask graphs.

    ``dask.array.from_array`` copies a plain ``numpy.ndarray`` into per-chunk pieces when
    the graph is built (one extra copy of the whole image), and Dask hashes any array
    placed in a graph (about 1 s per GiB); through this wrapper each task takes a view of
    its chunk, and the token is a per-wrapper random id.
    """

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim
        self._token = uuid.uuid4().hex

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.array[key]

    def __dask_tokenize__(self) -> str:
        return self._token


def lazy_view(array: np.ndarray, chunks: Any) -> da.Array:
    """Dask array reading ``array`` through views, chunked as ``chunks``."""
    return da.from_array(
        NumpyView(array),
        chunks=chunks,
        asarray=False,
        name=False,
        meta=np.empty((0,) * array.ndim, dtype=array.dtype),
    )


def per_block(func: Any, *arrays: da.Array, scheduler: str, **kwargs: Any) -> list[Any]:
    """``func(index, *blocks, **kwargs)`` for every chunk, in one Dask computation.

    ``index`` is the chunk's tuple of slices into the whole array; all ``arrays`` share
    the same chunks. NumPy buffers among ``kwargs`` must be wrapped in :class:`NumpyView`
    (not hashed, written in place). Returns the results in chunk order.
    """
    slices = slices_from_chunks(arrays[0].chunks)
    blocks = [array.to_delayed().ravel() for array in arrays]
    call = dask.delayed(func, pure=False)
    tasks = [call(index, *parts, **kwargs) for index, *parts in zip(slices, *blocks, strict=True)]
    return list(dask.compute(*tasks, scheduler=scheduler))


def is_dask_image(image: Any) -> bool:
    """True for a Dask array or an xarray object backed by one.

    Parameters
    ----------
    image : object
        Anything :func:`threshold_segment` accepts.

    Returns
    -------
    bool
    """
    return isinstance(image, da.Array) or isinstance(getattr(image, "data", None), da.Array)


def default_scheduler() -> str:
    """Dask scheduler for the chunked computations of the calling thread.

    Returns
    -------
    str
        ``"synchronous"`` inside a distributed worker or any thread other than the main
        thread (nested parallelism: the caller already runs in parallel), else
        ``"threads"``.
    """
    distributed = sys.modules.get("distributed")  # never imported: not in a worker
    if distributed is not None:
        try:
            distributed.get_worker()
        except ValueError:
            pass
        else:
            return "synchronous"
    if threading.current_thread() is not threading.main_thread():
        return "synchronous"
    return "threads"


def as_dask_image(image: Any, chunk_px: int | None = None) -> da.Array:
    """A 2-D Dask array over ``image`` without copying a NumPy input.

    Parameters
    ----------
    image : numpy.ndarray, dask.array.Array or xarray.DataArray
        The image (pixels, any real dtype).
    chunk_px : int, optional
        Chunk side in pixels. Default: keep a Dask array's own chunks, else
        :data:`DEFAULT_CHUNK_PX`.

    Returns
    -------
    dask.array.Array
    """
    data = image.data if not isinstance(image, da.Array) and hasattr(image, "dims") else image
    if isinstance(data, da.Array):
        return data if chunk_px is None else data.rechunk((chunk_px,) * data.ndim)
    array = np.asarray(data)
    return lazy_view(array, (chunk_px or DEFAULT_CHUNK_PX,) * array.ndim)


def gaussian_blur(x: da.Array, sigma_px: float) -> da.Array:
    """Gaussian blur over chunks (dask-image), equal to SciPy's whole-image filter.

    Parameters
    ----------
    x : dask.array.Array
        2-D float32 image.
    sigma_px : float
        Sigma in pixels (``mode="reflect"``, kernel truncated at 4 sigma).

    Returns
    -------
    dask.array.Array
        Lazy float32 result with the chunks of ``x``.
    """
    return ndfilters.gaussian_filter(x, sigma_px, mode="reflect", truncate=_TRUNCATE)


def _axis_pass(strips: da.Array, sigma_px: float, axis: int) -> da.Array:
    """One-axis Gaussian over strips that span ``axis`` completely."""
    sigmas = tuple(sigma_px if a == axis else 0.0 for a in range(strips.ndim))
    if math.ceil(sigma_px * _TRUNCATE) < strips.shape[axis]:
        return ndfilters.gaussian_filter(strips, sigmas, mode="reflect", truncate=_TRUNCATE)
    # Kernel wider than the image: dask refuses an overlap deeper than the array, but a
    # strip holds the whole axis, so the plain per-strip filter is already exact.
    return strips.map_blocks(
        ndimage.gaussian_filter,
        sigma=sigmas,
        mode="reflect",
        truncate=_TRUNCATE,
        dtype=strips.dtype,
    )


def _write(index: tuple[slice, ...], block: np.ndarray, out: NumpyView) -> None:
    out.array[index] = block


def gaussian_background(
    smooth: np.ndarray, sigma_px: float, *, strip_px: int, scheduler: str
) -> np.ndarray:
    """Large-sigma Gaussian of a float32 image, as two one-axis passes over strips.

    Parameters
    ----------
    smooth : numpy.ndarray
        2-D float32 image (not modified).
    sigma_px : float
        Sigma in pixels (``mode="reflect"``, truncated at 4 sigma).
    strip_px : int
        Width of the column strips and height of the row strips in pixels.
    scheduler : str
        Dask scheduler.

    Returns
    -------
    numpy.ndarray
        float32, equal to ``scipy.ndimage.gaussian_filter(smooth, sigma_px, mode="reflect")``.
    """
    height, width = smooth.shape
    out = np.empty(smooth.shape, dtype=np.float32)
    target = NumpyView(out)
    columns = _axis_pass(lazy_view(smooth, (height, strip_px)), sigma_px, 0)
    per_block(_write, columns, scheduler=scheduler, out=target)
    # In place: each row strip is read, filtered into a new array and written back to the
    # same rows; the strips are disjoint and span the filtered axis (no overlap).
    rows = _axis_pass(lazy_view(out, (strip_px, width)), sigma_px, 1)
    per_block(_write, rows, scheduler=scheduler, out=target)
    return out


def _order_keys(block: np.ndarray) -> np.ndarray:
    """Unsigned 32-bit keys that sort like the float32 values (finite values only)."""
    bits = np.ascontiguousarray(block, dtype=np.float32).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint32(0x80000000))


def _key_to_float(key: int) -> np.float32:
    bits = key ^ 0x80000000 if key & 0x80000000 else (~key) & 0xFFFFFFFF
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


def high_digit_counts(block: np.ndarray) -> np.ndarray:
    """Pass 1 of the radix selection: counts of the upper 16 key bits of one chunk.

    Parameters
    ----------
    block : numpy.ndarray
        Finite float32 values.

    Returns
    -------
    numpy.ndarray
        int64, 65,536 counts; sum them over chunks.
    """
    return np.bincount((_order_keys(block) >> np.uint32(16)).ravel(), minlength=_DIGIT)


def low_digit_counts(block: np.ndarray, prefixes: Sequence[int]) -> np.ndarray:
    """Pass 2 of the radix selection: counts of the lower 16 key bits per upper prefix.

    Parameters
    ----------
    block : numpy.ndarray
        Finite float32 values.
    prefixes : sequence of int
        Upper 16-bit key prefixes (from :func:`select_prefixes`).

    Returns
    -------
    numpy.ndarray
        int64, shape ``(len(prefixes), 65536)``; sum over chunks.
    """
    keys = _order_keys(block).ravel()
    high = keys >> np.uint32(16)
    rows = [
        np.bincount(keys[high == prefix] & np.uint32(0xFFFF), minlength=_DIGIT)
        for prefix in prefixes
    ]
    return np.stack(rows) if rows else np.zeros((0, _DIGIT), dtype=np.int64)


def select_prefixes(high_counts: np.ndarray, ranks: Sequence[int]) -> tuple[int, ...]:
    """Upper 16-bit key prefix holding each rank (0-based) after pass 1."""
    cumulative = np.cumsum(high_counts)
    return tuple(int(np.searchsorted(cumulative, rank, side="right")) for rank in ranks)


def resolve_ranks(
    high_counts: np.ndarray,
    low_counts: np.ndarray,
    ranks: Sequence[int],
    prefixes: Sequence[int],
) -> np.ndarray:
    """Values at ``ranks`` from both passes' summed counts.

    Parameters
    ----------
    high_counts : numpy.ndarray
        Summed :func:`high_digit_counts`.
    low_counts : numpy.ndarray
        Summed :func:`low_digit_counts` for ``prefixes``.
    ranks : sequence of int
        0-based ranks in the sorted flattened values.
    prefixes : sequence of int
        The prefixes ``low_counts`` was computed for (each rank's prefix among them).

    Returns
    -------
    numpy.ndarray
        float32 value at each rank.
    """
    cumulative = np.cumsum(high_counts)
    order = list(prefixes)
    values = []
    for rank, prefix in zip(ranks, select_prefixes(high_counts, ranks), strict=True):
        below = int(cumulative[prefix - 1]) if prefix else 0
        within = np.cumsum(low_counts[order.index(prefix)])
        suffix = int(np.searchsorted(within, rank - below, side="right"))
        values.append(_key_to_float((prefix << 16) | suffix))
    return np.array(values, dtype=np.float32)


def order_statistics(x: da.Array, ranks: Sequence[int], *, scheduler: str) -> np.ndarray:
    """Exact order statistics of a float32 Dask array (radix selection, two passes).

    Pass 1 counts the upper 16 bits of order-preserving 32-bit keys per chunk; pass 2
    counts the lower 16 bits of the values whose upper bits hold a wanted rank.

    Parameters
    ----------
    x : dask.array.Array
        Finite float32 values, any shape.
    ranks : sequence of int
        0-based ranks in the sorted flattened array.
    scheduler : str
        Dask scheduler.

    Returns
    -------
    numpy.ndarray
        float32, the value at each rank (equal to ``np.sort(x, axis=None)[ranks]``;
        ``-0.0`` sorts before ``0.0``, which no comparison can tell apart).
    """
    high = np.sum(
        per_block(lambda _, block: high_digit_counts(block), x, scheduler=scheduler), axis=0
    )
    prefixes = tuple(sorted(set(select_prefixes(high, ranks))))
    low = np.sum(
        per_block(lambda _, block: low_digit_counts(block, prefixes), x, scheduler=scheduler),
        axis=0,
    )
    return resolve_ranks(high, low, ranks, prefixes)


def percentile_plan(n: int, percents: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks and weights of NumPy's ``linear`` percentile rule for ``n`` values.

    Parameters
    ----------
    n : int
        Number of values.
    percents : sequence of float
        Percentiles in 0..100.

    Returns
    -------
    previous, following : numpy.ndarray
        0-based ranks of the two order statistics each percentile interpolates.
    gamma : numpy.ndarray
        float64 interpolation weight of ``following``.
    """
    quantiles = np.true_divide(np.asarray(percents, dtype=np.float64), 100)
    virtual = (n - 1) * quantiles
    floor = np.floor(virtual)
    above = virtual >= n - 1
    previous = np.where(above, n - 1, floor).astype(np.intp)
    following = np.where(above, n - 1, floor + 1).astype(np.intp)
    gamma = virtual - np.where(above, -1.0, floor)
    return previous, following, gamma


def interpolate_percentiles(a: np.ndarray, b: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """NumPy's linear rule: ``a + (b - a) t``, written ``b - (b - a)(1 - t)`` from t >= 0.5.

    Parameters
    ----------
    a, b : numpy.ndarray
        float32 order statistics at the ``previous`` and ``following`` ranks.
    gamma : numpy.ndarray
        float64 weights from :func:`percentile_plan`.

    Returns
    -------
    numpy.ndarray
        float64 percentiles.
    """
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def exact_percentiles(x: da.Array, percents: Sequence[float], *, scheduler: str) -> np.ndarray:
    """Percentiles of a float32 Dask array, equal to ``numpy.percentile`` (``linear``).

    Parameters
    ----------
    x : dask.array.Array
        Finite float32 values.
    percents : sequence of float
        Percentiles in 0..100.
    scheduler : str
        Dask scheduler.

    Returns
    -------
    numpy.ndarray
        float64, as ``numpy.percentile`` returns for float32 input.
    """
    previous, following, gamma = percentile_plan(int(x.size), percents)
    ranks = sorted({int(r) for r in np.concatenate([previous, following])})
    by_rank = dict(zip(ranks, order_statistics(x, ranks, scheduler=scheduler), strict=True))
    a = np.array([by_rank[int(r)] for r in previous], dtype=np.float32)
    b = np.array([by_rank[int(r)] for r in following], dtype=np.float32)
    return interpolate_percentiles(a, b, gamma)


def otsu_counts(block: np.ndarray, low: np.float32, high: np.float32) -> np.ndarray:
    """One chunk's counts in skimage's 256-bin Otsu histogram over [low, high].

    Parameters
    ----------
    block : numpy.ndarray
        float32 values.
    low, high : numpy.float32
        Minimum and maximum of the whole array.

    Returns
    -------
    numpy.ndarray
        int64 counts; sum over chunks and pass to :func:`otsu_from_counts`.
    """
    return np.histogram(block, bins=_OTSU_BINS, range=(low, high))[0]


def otsu_from_counts(counts: np.ndarray, low: np.float32, high: np.float32) -> float:
    """``skimage.filters.threshold_otsu`` of the array whose histogram is ``counts``."""
    if low == high:
        return float(low)
    # The float32 edges numpy.histogram builds for this range, as skimage uses them.
    probe = np.array([low, high], dtype=np.float32)
    edges = np.histogram(probe, bins=_OTSU_BINS, range=(low, high))[1]
    centers = (edges[:-1] + edges[1:]) / 2.0
    return float(threshold_otsu(hist=(counts, centers)))


def otsu_threshold(x: da.Array, low: np.float32, high: np.float32, *, scheduler: str) -> float:
    """Otsu threshold of a float32 Dask array, equal to ``skimage.filters.threshold_otsu``.

    Parameters
    ----------
    x : dask.array.Array
        Finite float32 values.
    low, high : numpy.float32
        Minimum and maximum of ``x`` (the histogram range skimage uses).
    scheduler : str
        Dask scheduler.

    Returns
    -------
    float
    """
    if low == high:
        return float(low)
    counts = np.sum(
        per_block(lambda _, block: otsu_counts(block, low, high), x, scheduler=scheduler),
        axis=0,
    )
    return otsu_from_counts(counts, low, high)
