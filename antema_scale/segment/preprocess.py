"""Pre-processing shared by training and inference: resampling to the working grid,
Gaussian denoising, robust min-max rescaling and standardisation.

The same function prepares training images and images at inference, so the network
always sees what it was trained on. Steps, in order:

1. **Resample** the image so that its pixel size lies inside the model's working range
   ``[min_nm, max_nm]`` (nm/px): an image sampled finer than ``min_nm`` is shrunk, one
   coarser than ``max_nm`` is enlarged, one inside is left alone. One model thus serves
   many magnifications while particles keep a size (in pixels) it has seen in training.
2. **Gaussian blur** with ``sigma_px`` pixels *of the working grid* (the paper uses 2 px on
   its own grid; since the working grid has a bounded pixel size, a sigma in working pixels
   is also a bounded physical length: ``sigma_px * [min_nm, max_nm]``).
3. **Robust min-max rescale** to ``0..1`` between the ``clip_percentiles`` (the paper's
   strict min-max, made robust to hot pixels and dead columns).
4. **Standardise** to zero mean, unit standard deviation per image (instead of the paper's
   fixed dataset constants, so that bright-field and HAADF images of any contrast land in
   the same range). The result is one grey channel (the paper fed 3 identical channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.transform import resize

__all__ = [
    "MAX_ENLARGEMENT",
    "MAX_WORKING_PIXELS",
    "Preprocessing",
    "largest_zoom_factor",
    "normalise_intensity",
    "prepare_image",
    "resample",
    "working_zoom",
]

#: Largest enlargement onto the working grid (working px per original px). An image
#: coarser than that shows the network nothing like what it was trained on, and blowing
#: it up costs memory with the square of the zoom: :func:`prepare_image` refuses it (the
#: threshold baseline works on the native grid and takes such images).
MAX_ENLARGEMENT = 16.0
#: Largest working grid in pixels that enlargement or refinement may create
#: (16384², about 1 GB per float32 copy); an image larger than this on its own grid is
#: still taken at its own size.
MAX_WORKING_PIXELS = 2**28


@dataclass(frozen=True)
class Preprocessing:
    """Pre-processing parameters, stored in every model file.

    Parameters
    ----------
    pixel_size_range_nm : tuple of float
        ``(min, max)`` working pixel size of the model in nm/px.
    sigma_px : float
        Gaussian blur sigma in pixels of the working grid (0 disables it).
    clip_percentiles : tuple of float
        Lower and upper percentile mapped to 0 and 1 before standardising.
    """

    pixel_size_range_nm: tuple[float, float] = (0.125, 0.5)
    sigma_px: float = 1.0
    clip_percentiles: tuple[float, float] = (0.5, 99.5)

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form for model metadata."""
        return {
            "pixel_size_range_nm": [float(v) for v in self.pixel_size_range_nm],
            "sigma_px": float(self.sigma_px),
            "clip_percentiles": [float(v) for v in self.clip_percentiles],
            "steps": [
                "resample into pixel_size_range_nm (anti-aliased bilinear)",
                "gaussian blur sigma_px on the working grid",
                "clip to clip_percentiles and rescale to 0..1",
                "standardise per image (zero mean, unit std)",
                "one grey channel",
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Preprocessing:
        """Inverse of :meth:`to_dict`."""
        lo, hi = data["pixel_size_range_nm"]  # type: ignore[misc]
        p_lo, p_hi = data["clip_percentiles"]  # type: ignore[misc]
        return cls((float(lo), float(hi)), float(data["sigma_px"]), (float(p_lo), float(p_hi)))  # type: ignore[arg-type]


def working_zoom(pixel_size_nm: float, pixel_size_range_nm: tuple[float, float]) -> float:
    """Zoom factor (working pixels per original pixel) that brings an image into range.

    Parameters
    ----------
    pixel_size_nm : float
        Pixel size of the image in nm/px (positive, finite).
    pixel_size_range_nm : tuple of float
        Working range ``(min, max)`` in nm/px.

    Returns
    -------
    float
        ``pixel_size_nm / clip(pixel_size_nm, min, max)``: < 1 shrinks, > 1 enlarges, 1 keeps.
    """
    if not (isinstance(pixel_size_nm, int | float | np.floating) and math.isfinite(pixel_size_nm)):
        raise ValueError(f"pixel size must be a finite number of nm/px, got {pixel_size_nm!r}")
    if pixel_size_nm <= 0:
        raise ValueError(f"pixel size must be positive (nm/px), got {pixel_size_nm}")
    lo, hi = pixel_size_range_nm
    target = min(max(float(pixel_size_nm), lo), hi)
    return float(pixel_size_nm) / target


def resample(array: np.ndarray, shape: tuple[int, int], *, order: int = 1) -> np.ndarray:
    """Resize a 2-D float array to ``shape`` (anti-aliased when shrinking).

    Returns the input unchanged (as float32) when the shape already matches.
    """
    array = np.asarray(array, dtype=np.float32)
    if tuple(array.shape) == tuple(shape):
        return array
    shrinking = shape[0] < array.shape[0] or shape[1] < array.shape[1]
    out = resize(
        array, shape, order=order, mode="reflect", anti_aliasing=shrinking, preserve_range=True
    )
    return out.astype(np.float32, copy=False)


def working_shape(shape: tuple[int, int], zoom: float) -> tuple[int, int]:
    """Shape on the working grid of an image of ``shape`` resampled by ``zoom`` (>= 1 px)."""
    return (max(1, round(shape[0] * zoom)), max(1, round(shape[1] * zoom)))


def largest_zoom_factor(shape: tuple[int, int], zoom: float) -> float:
    """Largest extra zoom on top of ``zoom`` that keeps the working grid of an image of
    ``shape`` within :data:`MAX_WORKING_PIXELS` (or the image's own size, if larger).

    Returns a value < 1 when even ``zoom`` alone exceeds the limit.
    """
    limit = max(MAX_WORKING_PIXELS, shape[0] * shape[1])
    return math.sqrt(limit / (shape[0] * shape[1])) / zoom


def normalise_intensity(
    image: np.ndarray, sigma_px: float, clip_percentiles: tuple[float, float]
) -> np.ndarray:
    """Blur, robustly rescale to 0..1 and standardise one image (float32 output).

    A constant image (no contrast at all) comes back as zeros instead of NaNs.
    """
    image = np.asarray(image, dtype=np.float32)
    if sigma_px > 0:
        image = ndimage.gaussian_filter(image, sigma_px, mode="reflect")
    lo, hi = np.percentile(image, clip_percentiles)
    if not hi > lo:
        return np.zeros_like(image, dtype=np.float32)
    scaled = np.clip((image - lo) / (hi - lo), 0.0, 1.0)
    std = float(scaled.std())
    if std < 1e-6:
        return np.zeros_like(image, dtype=np.float32)
    return ((scaled - float(scaled.mean())) / std).astype(np.float32)


def prepare_image(
    image: np.ndarray,
    pixel_size_nm: float,
    preprocessing: Preprocessing,
    *,
    zoom_factor: float = 1.0,
) -> tuple[np.ndarray, float]:
    """Bring one micrograph onto the model's working grid and normalise it.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (any real dtype); colour images must be converted to grey before.
    pixel_size_nm : float
        Pixel size of ``image`` in nm/px.
    preprocessing : Preprocessing
        The model's pre-processing parameters.
    zoom_factor : float
        Extra zoom on top of the working zoom (> 1: a finer grid than the working range,
        used by the inference's scale adaptation for images of small particles).

    Returns
    -------
    prepared : numpy.ndarray
        float32 image on the working grid, zero mean and unit std.
    zoom : float
        Working pixels per original pixel (see :func:`working_zoom`), times ``zoom_factor``.

    Raises
    ------
    ValueError
        Not a finite, non-empty, real 2-D image; a pixel size that would need more than
        :data:`MAX_ENLARGEMENT` x enlargement; a working grid larger than
        :data:`MAX_WORKING_PIXELS` (see :func:`largest_zoom_factor`).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
    if image.size == 0:
        raise ValueError("image is empty")
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise ValueError(f"image must be real-valued, got dtype {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    if not (math.isfinite(zoom_factor) and zoom_factor > 0):
        raise ValueError(f"zoom_factor must be a positive number, got {zoom_factor!r}")
    base = working_zoom(pixel_size_nm, preprocessing.pixel_size_range_nm)
    low, high = preprocessing.pixel_size_range_nm
    if base > MAX_ENLARGEMENT:
        raise ValueError(
            f"pixel size {pixel_size_nm:.4g} nm/px is {base:.0f}x coarser than the model's "
            f"working range ({low:g}-{high:g} nm/px); the network enlarges images at most "
            f"{MAX_ENLARGEMENT:g}x (up to {high * MAX_ENLARGEMENT:g} nm/px): use the threshold "
            "segmenter (--segmenter threshold) or a model trained for this magnification"
        )
    if zoom_factor > largest_zoom_factor(image.shape, base) * (1 + 1e-9):
        shape = working_shape(image.shape, base * zoom_factor)
        raise ValueError(
            f"the working grid would be {shape[0]} x {shape[1]} px (image {image.shape[0]} x "
            f"{image.shape[1]} px enlarged {base * zoom_factor:.3g}x), more than the "
            f"{MAX_WORKING_PIXELS:,} px allowed: crop or bin the image, or use the threshold segmenter"
        )
    zoom = base * zoom_factor
    resampled = resample(image, working_shape(image.shape, zoom))
    prepared = normalise_intensity(
        resampled, preprocessing.sigma_px, preprocessing.clip_percentiles
    )
    return prepared, zoom
