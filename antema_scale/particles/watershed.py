"""Distance-transform watershed separation with overlap-preserving reconstruction.

On one region's crop:

1. Euclidean distance transform in nm (per-axis sampling, so anisotropic pixels are
   handled): each pixel's distance to the nearest background pixel.
2. Markers: the regional maxima of the distance map that stand out by at least ``h`` nm
   (h-maxima transform). A region with a single marker is not split.
3. Watershed of the negated distance map from those markers, inside the region, gives one
   basin per particle.
4. Each particle is reconstructed as its basin plus the union of the maximal inscribed
   discs centred in the basin's core (medial pixels whose distance is within ``h`` of the
   basin's maximum): a disc of radius ``distance(c)`` around each such ``c``. For
   overlapping discs this gives back the whole disc, overlap included, instead of the
   basin alone (a basin lacks half of the overlap lens, which biases the diameter of two
   discs at 40 % overlap by -7 %). Using only the core (not the whole medial axis) keeps
   the discs centred on the neck from spilling into the neighbour. Reconstructed
   particles may overlap.

The marker height ``h`` is ``max(h_nm, h_fraction * largest inscribed radius)`` and at
least one pixel, so it scales with particle size. Two discs of radius ``r`` whose centres
are ``d`` apart give a saddle of depth ``r - sqrt(r² - d²/4)``: ``0.2 r`` at 40 % overlap
(``d = 1.2 r``), ``0.56 r`` at 10 %.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from antema_scale.particles.geometry import zero_pad

_EIGHT = ndi.generate_binary_structure(2, 2)
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_MAX_PAIRS = 4_000_000


def distance_map_nm(region: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Distance (nm) of every region pixel to the nearest background pixel centre."""
    return ndi.distance_transform_edt(region, sampling=spacing)


def marker_height_nm(
    distance: np.ndarray,
    spacing: tuple[float, float],
    *,
    h_nm: float | None = None,
    h_fraction: float = 0.1,
) -> float:
    """The h of the h-maxima transform, in nm (see the module docstring)."""
    h = max(h_fraction * float(distance.max()), max(spacing))
    return max(h, h_nm) if h_nm is not None else h


def distance_markers(distance: np.ndarray, h: float) -> tuple[np.ndarray, int]:
    """Label the h-maxima of a distance map (8-connected), returning ``(labels, count)``."""
    peaks = h_maxima(distance, h).astype(bool) & (distance > 0)
    labels, count = ndi.label(peaks, structure=_EIGHT)
    return labels, int(count)


def medial_pixels(distance: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Centres of maximal inscribed discs: no 8-neighbour's disc contains this pixel's disc.

    A disc of radius ``D(c)`` around ``c`` lies inside the disc around a neighbour ``q``
    when ``D(q) >= D(c) + |q - c|``.
    """
    padded = zero_pad(distance, 1)
    medial = distance > 0
    rows, cols = distance.shape
    for dr, dc in _NEIGHBOURS:
        step = float(np.hypot(dr * spacing[0], dc * spacing[1]))
        neighbour = padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
        medial &= neighbour < distance + step - 1e-9
    return medial


def union_of_discs(
    centres: np.ndarray,
    radii: np.ndarray,
    region: np.ndarray,
    spacing: tuple[float, float],
) -> np.ndarray:
    """Region pixels that lie strictly inside at least one disc (centres in px, radii nm)."""
    targets = np.argwhere(region)
    inside = np.zeros(len(targets), dtype=bool)
    scale = np.asarray(spacing, dtype=float)
    target_nm = targets * scale
    centre_nm = centres * scale
    chunk = max(1, _MAX_PAIRS // max(1, len(targets)))
    for start in range(0, len(centres), chunk):
        c = centre_nm[start : start + chunk]
        r = radii[start : start + chunk]
        d2 = ((target_nm[:, None, :] - c[None, :, :]) ** 2).sum(axis=-1)
        inside |= (d2 < (r[None, :] ** 2)).any(axis=1)
    out = np.zeros_like(region)
    out[targets[inside, 0], targets[inside, 1]] = True
    return out


def watershed_separate(
    region: np.ndarray,
    spacing: tuple[float, float],
    *,
    h_nm: float | None = None,
    h_fraction: float = 0.1,
) -> list[np.ndarray]:
    """Split a region into overlapping particles with a distance-transform watershed.

    Parameters
    ----------
    region : numpy.ndarray of bool
        The region crop, padded with at least one background pixel.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    h_nm : float or None
        Minimum marker height in nm (see the module docstring).
    h_fraction : float
        Marker height as a fraction of the largest inscribed radius.

    Returns
    -------
    list of numpy.ndarray of bool
        One mask per particle (same shape as ``region``); a single-marker region gives a
        list with one element, the region itself.
    """
    distance = distance_map_nm(region, spacing)
    h = marker_height_nm(distance, spacing, h_nm=h_nm, h_fraction=h_fraction)
    markers, count = distance_markers(distance, h)
    if count < 2:
        return [region.copy()]
    return reconstruct_from_markers(region, spacing, markers, count, distance=distance, h=h)


def reconstruct_from_markers(
    region: np.ndarray,
    spacing: tuple[float, float],
    markers: np.ndarray,
    count: int,
    *,
    distance: np.ndarray | None = None,
    h: float | None = None,
) -> list[np.ndarray]:
    """Watershed basins of labelled markers, each grown back to its overlapping particle.

    Parameters
    ----------
    region : numpy.ndarray of bool
        The region crop.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    markers : numpy.ndarray of int
        Marker labels ``1..count`` (e.g. distance maxima or UECS markers).
    count : int
        Number of markers.
    distance : numpy.ndarray, optional
        :func:`distance_map_nm` of ``region`` when already computed.
    h : float, optional
        Core depth in nm (default: :func:`marker_height_nm`).

    Returns
    -------
    list of numpy.ndarray of bool
        One particle mask per marker (particles may overlap).
    """
    if distance is None:
        distance = distance_map_nm(region, spacing)
    if h is None:
        h = marker_height_nm(distance, spacing)
    basins = watershed(-distance, markers, mask=region)
    medial = medial_pixels(distance, spacing)
    particles = []
    for label in range(1, count + 1):
        basin = basins == label
        if not basin.any():
            particles.append(basin)
            continue
        core = medial & basin & (distance >= distance[basin].max() - h)
        centres = np.argwhere(core)
        # distance is measured to the nearest background pixel *centre*, half a pixel
        # beyond the particle's edge: shrink the discs by that half pixel
        radii = distance[core] - 0.5 * min(spacing)
        particle = union_of_discs(centres, radii, region, spacing) | basin
        particles.append(particle)
    return particles
