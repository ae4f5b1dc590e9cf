"""Cleaning of a binary particle map in physical units (DESIGN.md section 1, step 4).

* specks whose equivalent circular diameter is below a size in nm are removed;
* holes (background enclosed by a particle) whose equivalent diameter is below a size in
  nm are filled (optionally all holes);
* regions touching the image border are identified (the caller drops or flags them).

Particles are 8-connected, background 4-connected (so a hole is a 4-connected background
component that does not reach the image border), as MATLAB's ``bwconncomp``/``imfill``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

PARTICLE_CONNECTIVITY = ndi.generate_binary_structure(2, 2)
BACKGROUND_CONNECTIVITY = ndi.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class CleanedMask:
    """Result of :func:`clean_mask`.

    Attributes
    ----------
    labels : numpy.ndarray of int32
        Label image of the cleaned map (0 = background, regions 1..n).
    n_regions : int
        Largest label (labels of removed specks may be unused).
    touches_border : numpy.ndarray of bool
        ``touches_border[k]`` is True when region ``k`` touches the image border
        (index 0 unused).
    holes_per_region : numpy.ndarray of int
        ``holes_per_region[k]``: holes left in region ``k`` after filling (its Euler
        number is ``1 - holes``; index 0 unused).
    specks_removed : int
        Number of specks removed.
    holes_filled : int
        Number of holes filled.
    """

    labels: np.ndarray
    n_regions: int
    touches_border: np.ndarray
    holes_per_region: np.ndarray
    specks_removed: int
    holes_filled: int


def disc_area_px(diameter_nm: float, spacing: tuple[float, float]) -> float:
    """Area in pixels of a disc of ``diameter_nm`` with pixels of ``spacing`` (nm)."""
    return math.pi * diameter_nm**2 / 4.0 / (spacing[0] * spacing[1])


def _border_labels(labels: np.ndarray) -> np.ndarray:
    """Unique labels present on the outer rows/columns of a label image."""
    edges = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.unique(edges)


def _holes_per_region(
    holes: np.ndarray, kept_holes: np.ndarray, labels: np.ndarray, n_regions: int
) -> np.ndarray:
    """Count the holes of each region.

    The pixel just above a hole's topmost-leftmost pixel belongs to the region that
    encloses the hole (an island inside the hole lies lower).
    """
    counts = np.zeros(n_regions + 1, dtype=np.int64)
    if len(kept_holes) == 0:
        return counts
    slices = ndi.find_objects(holes)
    for hole in kept_holes:
        rows, cols = slices[hole - 1]
        top = rows.start
        first = cols.start + int(np.argmax(holes[top, cols] == hole))
        counts[labels[top - 1, first]] += 1
    counts[0] = 0
    return counts


def clean_mask(
    mask: np.ndarray,
    spacing: tuple[float, float],
    *,
    min_particle_diameter_nm: float = 0.5,
    max_hole_diameter_nm: float = 0.5,
    fill_all_holes: bool = False,
) -> CleanedMask:
    """Remove specks and fill small holes, in nm, and label the regions.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        2-D particle map (True = particle).
    spacing : tuple of float
        Pixel size ``(dy, dx)`` in nm.
    min_particle_diameter_nm : float
        Regions whose equivalent diameter (nm) is strictly below this are removed.
    max_hole_diameter_nm : float
        Holes whose equivalent diameter (nm) is strictly below this are filled.
    fill_all_holes : bool
        Fill every hole regardless of size.

    Returns
    -------
    CleanedMask
        Labels and bookkeeping.
    """
    labels, n = ndi.label(mask, structure=PARTICLE_CONNECTIVITY)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    specks = sizes < disc_area_px(min_particle_diameter_nm, spacing)
    specks[0] = False
    specks_removed = int(specks.sum())
    cleaned = mask & ~specks[labels] if specks_removed else mask.astype(bool, copy=True)

    holes, n_holes = ndi.label(~cleaned, structure=BACKGROUND_CONNECTIVITY)
    outside = _border_labels(holes)
    hole_sizes = np.bincount(holes.ravel(), minlength=n_holes + 1)
    fill = (
        np.ones(n_holes + 1, dtype=bool)
        if fill_all_holes
        else (hole_sizes < disc_area_px(max_hole_diameter_nm, spacing))
    )
    fill[0] = False
    fill[outside] = False
    holes_filled = int(fill.sum())
    if holes_filled:
        # filling may merge an island into the particle around it: label again
        cleaned |= fill[holes]
        labels, n = ndi.label(cleaned, structure=PARTICLE_CONNECTIVITY)
    elif specks_removed:
        labels[specks[labels]] = 0  # removed labels simply stay unused
    touches = np.zeros(n + 1, dtype=bool)
    touches[_border_labels(labels)] = True
    touches[0] = False
    kept_holes = np.flatnonzero(~fill)
    kept_holes = kept_holes[(kept_holes > 0) & ~np.isin(kept_holes, outside)]
    return CleanedMask(
        labels=labels.astype(np.int32, copy=False),
        n_regions=int(n),
        touches_border=touches,
        holes_per_region=_holes_per_region(holes, kept_holes, labels, n),
        specks_removed=specks_removed,
        holes_filled=holes_filled,
    )
