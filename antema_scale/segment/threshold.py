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
"""

from __future__ import annotations

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


def threshold_segment(
    image: np.ndarray,
    pixel_size_nm: float,
    *,
    method: str = "otsu",
    sigma_px: float = 2.0,
    polarity: str = "auto",
    block_size_nm: float | None = None,
) -> Prediction:
    """Segment particles by thresholding a blurred image.

    Parameters
    ----------
    image : numpy.ndarray
        2-D grey image, any real dtype.
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

    Returns
    -------
    Prediction
        Mask, pseudo-probability and quality on the image's own grid.

    Raises
    ------
    ValueError
        Not a finite 2-D real image, bad pixel size, unknown method or polarity.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2-D grey image, got shape {image.shape}")
    if np.iscomplexobj(image) or not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"image must be real-valued, got dtype {image.dtype}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or infinite values")
    if not (np.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"pixel size must be a positive number of nm/px, got {pixel_size_nm}")
    if method not in ("otsu", "local"):
        raise ValueError(f"method must be 'otsu' or 'local', got {method!r}")
    if polarity not in ("auto", "dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")
    smooth = image.astype(np.float32)
    if sigma_px > 0:
        smooth = ndimage.gaussian_filter(smooth, sigma_px, mode="reflect")
    lo, hi = np.percentile(smooth, (1, 99))
    if not hi > lo:
        empty = np.zeros(image.shape, dtype=np.float32)
        quality = {
            "mean_margin": 1.0,
            "uncertain_fraction": 0.0,
            "particle_fraction": 0.0,
            "separability": 0.0,
            "polarity": 0.0,
            "out_of_distribution": True,
        }
        return Prediction(empty.astype(bool), empty, quality)
    global_t = float(threshold_otsu(smooth))
    separability = otsu_separability(smooth, global_t)
    if polarity == "auto":
        sign = -1.0 if (smooth > global_t).mean() > 0.5 else 1.0
    else:
        sign = 1.0 if polarity == "bright" else -1.0
    if method == "otsu":
        level: np.ndarray | float = global_t
    else:
        # Slowly varying background (illumination, support thickness) removed, then Otsu.
        side = block_size_nm / pixel_size_nm if block_size_nm else min(image.shape) / 4
        background = ndimage.gaussian_filter(smooth, max(side / 2, 1.0), mode="reflect")
        corrected = smooth - background
        level = background + float(threshold_otsu(corrected))
    scale = 0.05 * (hi - lo)
    probability = 1.0 / (1.0 + np.exp(-np.clip(sign * (smooth - level) / scale, -30, 30)))
    probability = probability.astype(np.float32)
    margin = np.abs(2.0 * probability - 1.0)
    quality: dict[str, float | bool] = {
        "mean_margin": float(margin.mean()),
        "uncertain_fraction": float(((probability > 0.25) & (probability < 0.75)).mean()),
        "particle_fraction": float((probability > 0.5).mean()),
        "separability": separability,
        "polarity": sign,
        "out_of_distribution": bool(separability < MIN_SEPARABILITY),
    }
    return Prediction(probability > 0.5, probability, quality)
