"""Ultimate erosion for convex sets (UECS, Park & Ding), on one region's crop.

As described in the ANTEMA paper and DESIGN.md section 1 step 6:

1. The region is eroded step by step, alternating a radius-1 disk (3x3 cross) and a 2x2
   square, each erosion followed by a small opening (3x3 cross) that removes one-pixel
   spurs.
2. After every step each connected piece is tested: once it is convex (convexity above
   the threshold and ``1 - area / convex_area < 0.05``) it stops eroding and becomes a
   marker, remembering its number of erosion steps. Pieces smaller than the marker floor
   (``max(30 px, area of a 0.5 nm disc)``) are dropped, convex or not.
3. Each marker is dilated back with the same structuring elements in reverse order, as
   many steps as it was eroded, never outside the original region. Regrown particles may
   overlap: each keeps its own mask.
4. A regrown particle that is still non-convex is discarded (reported by the caller).

Everything works on the region's cropped bounding box, never on full frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from antema_scale.particles.convexity import is_convex_piece
from antema_scale.particles.geometry import convexity

_DISK1 = ndi.generate_binary_structure(2, 1)
_SQUARE2 = np.ones((2, 2), dtype=bool)
_EIGHT = ndi.generate_binary_structure(2, 2)


def erosion_element(step: int) -> np.ndarray:
    """Structuring element of erosion step ``step`` (1-based): odd disk, even 2x2."""
    return _DISK1 if step % 2 == 1 else _SQUARE2


@dataclass(frozen=True)
class UecsMarker:
    """A convex piece found by ultimate erosion.

    Attributes
    ----------
    mask : numpy.ndarray of bool
        Marker pixels, same shape as the region crop.
    erosion_steps : int
        Number of erosions it took.
    """

    mask: np.ndarray
    erosion_steps: int


@dataclass(frozen=True)
class UecsParticle:
    """A regrown particle.

    Attributes
    ----------
    mask : numpy.ndarray of bool
        Particle pixels, same shape as the region crop.
    erosion_steps : int
        Erosion steps of its marker.
    convex : bool
        Whether the regrown particle passed the convexity threshold.
    convexity : float
        Its convexity.
    marker : numpy.ndarray of bool
        The marker it grew from.
    """

    mask: np.ndarray
    erosion_steps: int
    convex: bool
    convexity: float
    marker: np.ndarray


def uecs_markers(
    region: np.ndarray,
    spacing: tuple[float, float],
    *,
    convexity_threshold: float = 0.95,
    solidity_tolerance: float = 0.05,
    min_marker_px: float = 30.0,
) -> list[UecsMarker]:
    """Ultimate erosion: convex markers of a region.

    Parameters
    ----------
    region : numpy.ndarray of bool
        The region crop, padded with at least one background pixel.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    convexity_threshold : float
        Convexity a piece must exceed to stop eroding.
    solidity_tolerance : float
        ``1 - area / convex_area`` must be below this for a piece to stop.
    min_marker_px : float
        Pieces with fewer pixels are dropped.

    Returns
    -------
    list of UecsMarker
        Markers in the order they were found.
    """
    current = region.copy()
    markers: list[UecsMarker] = []
    step = 0
    while current.any():
        step += 1
        current = ndi.binary_erosion(current, erosion_element(step))
        current = ndi.binary_opening(current, _DISK1)
        labels, n = ndi.label(current, structure=_EIGHT)
        if n == 0:
            break
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        for index, slc in enumerate(ndi.find_objects(labels), start=1):
            if slc is None:
                continue
            piece = labels[slc] == index
            if sizes[index] < min_marker_px:
                current[slc][piece] = False
                continue
            if is_convex_piece(
                piece,
                spacing,
                threshold=convexity_threshold,
                solidity_tolerance=solidity_tolerance,
                holes_filled=True,
            ):
                marker = np.zeros_like(region)
                marker[slc] = piece
                markers.append(UecsMarker(mask=marker, erosion_steps=step))
                current[slc][piece] = False
    return markers


def regrow_marker(marker: UecsMarker, region: np.ndarray) -> np.ndarray:
    """Dilate a marker back as many steps as it was eroded, confined to the region.

    Parameters
    ----------
    marker : UecsMarker
        Marker found by :func:`uecs_markers`.
    region : numpy.ndarray of bool
        The region crop the marker came from.

    Returns
    -------
    numpy.ndarray of bool
        The regrown particle, same shape as ``region``.
    """
    grown = marker.mask.copy()
    for step in range(marker.erosion_steps, 0, -1):
        grown = ndi.binary_dilation(grown, erosion_element(step)) & region
    return grown


def uecs_separate(
    region: np.ndarray,
    spacing: tuple[float, float],
    *,
    convexity_threshold: float = 0.95,
    solidity_tolerance: float = 0.05,
    min_marker_px: float = 30.0,
    holes_filled: bool = False,
) -> list[UecsParticle]:
    """Split a non-convex region into (possibly overlapping) convex particles with UECS.

    Parameters
    ----------
    region : numpy.ndarray of bool
        The region crop, padded with at least one background pixel.
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    convexity_threshold : float
        Convexity threshold for markers and regrown particles.
    solidity_tolerance : float
        Marker solidity tolerance (``1 - area / convex_area``).
    min_marker_px : float
        Marker size floor in pixels.
    holes_filled : bool
        The region has no holes (regrown particles need no hole filling for their
        contour).

    Returns
    -------
    list of UecsParticle
        Every regrown particle, with ``convex`` telling whether it should be kept.
    """
    particles = []
    for marker in uecs_markers(
        region,
        spacing,
        convexity_threshold=convexity_threshold,
        solidity_tolerance=solidity_tolerance,
        min_marker_px=min_marker_px,
    ):
        grown = regrow_marker(marker, region)
        value = convexity(grown, spacing, holes_filled=holes_filled)
        particles.append(
            UecsParticle(
                mask=grown,
                erosion_steps=marker.erosion_steps,
                convex=value > convexity_threshold,
                convexity=value,
                marker=marker.mask,
            )
        )
    return particles
