"""Baseline only: a straightforward full-frame port of the reference program's approach.

This mirrors how the reference MATLAB program (ANTEMA) post-processes a mask, to give
``bench_separation.py`` an honest "before" number. It is *not* used by the package.
What makes it slow is deliberate, because it is what the reference does:

* cleaning, border clearing and labelling on the full frame;
* for each region to separate, a full-frame image layer; UECS erodes that full frame,
  labels the full frame after every step and measures each piece with ``regionprops``
  on a full-frame image;
* every regrown particle is kept as a full-frame layer of a 3-D stack, dilated on the
  full frame, and measured with ``regionprops`` on its full-frame layer.

Same rules as the package's ``uecs-paper`` mode (convexity 0.95, lower bound 0.5, marker
floor max(30 px, 0.5 nm disc), regrown non-convex discarded), measured with skimage's
``regionprops`` (``perimeter``, ``feret_diameter_max``, convex image perimeter).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
from skimage.measure import label, perimeter, regionprops
from skimage.morphology import remove_small_holes, remove_small_objects
from skimage.segmentation import clear_border

_DISK1 = ndi.generate_binary_structure(2, 1)
_SQUARE2 = np.ones((2, 2), dtype=bool)


def _convexity(region_image: np.ndarray, convex_image: np.ndarray) -> float:
    p = perimeter(region_image)
    return perimeter(convex_image) / p if p > 0 else 1.0


def _piece_is_convex(layer: np.ndarray, threshold: float) -> tuple[bool, int]:
    props = regionprops(layer.astype(np.uint8))[0]
    convex = (
        _convexity(props.image, props.image_convex) > threshold
        and 1 - props.area / props.area_convex < 0.05
    )
    return convex, int(props.area)


def _uecs_fullframe(layer: np.ndarray, threshold: float, min_marker: float) -> list[np.ndarray]:
    current = layer.copy()
    markers: list[tuple[np.ndarray, int]] = []
    step = 0
    while current.any():
        step += 1
        current = ndi.binary_erosion(current, _DISK1 if step % 2 else _SQUARE2)
        current = ndi.binary_opening(current, _DISK1)
        pieces = label(current, connectivity=2)
        for k in range(1, pieces.max() + 1):
            piece = pieces == k  # full-frame layer per piece
            convex, area = _piece_is_convex(piece, threshold)
            if area < min_marker:
                current[piece] = False
            elif convex:
                markers.append((piece, step))
                current[piece] = False
    grown_layers = []
    for marker, steps in markers:
        grown = marker
        for s in range(steps, 0, -1):
            grown = ndi.binary_dilation(grown, _DISK1 if s % 2 else _SQUARE2) & layer
        grown_layers.append(grown)
    return grown_layers


def _measure(layer_or_labels: np.ndarray, pixel_size_nm: float) -> list[dict[str, float]]:
    rows = []
    for props in regionprops(layer_or_labels.astype(np.int32)):
        area = props.area * pixel_size_nm**2
        p = props.perimeter * pixel_size_nm
        rows.append(
            {
                "area_nm2": area,
                "equivalent_diameter_nm": math.sqrt(4 * area / math.pi),
                "max_feret_nm": props.feret_diameter_max * pixel_size_nm,
                "perimeter_nm": p,
                "circularity": 4 * math.pi * area / p**2 if p > 0 else math.inf,
                "convexity": _convexity(props.image, props.image_convex),
            }
        )
    return rows


def reference_analyze(
    mask: np.ndarray, pixel_size_nm: float, *, threshold: float = 0.95, lower: float = 0.5
) -> pd.DataFrame:
    """Analyse a mask the way the reference program does (full-frame layers).

    Parameters
    ----------
    mask : numpy.ndarray of bool
        Particle map.
    pixel_size_nm : float
        Isotropic pixel size in nm.
    threshold, lower : float
        Convexity threshold and exclusion bound.

    Returns
    -------
    pandas.DataFrame
        One row per particle (area, equivalent diameter, max Feret, perimeter,
        circularity, convexity) and a ``separated`` column.
    """
    speck_px = math.pi * 0.25**2 / pixel_size_nm**2
    cleaned = remove_small_objects(
        mask.astype(bool), connectivity=2, max_size=max(int(speck_px) - 1, 0)
    )
    cleaned = remove_small_holes(cleaned, max_size=max(int(speck_px) - 1, 0))
    cleaned = clear_border(cleaned)
    labels = label(cleaned, connectivity=2)
    min_marker = max(30.0, speck_px)
    single = np.zeros_like(labels)
    stack = []  # full-frame layers of separated particles
    for props in regionprops(labels):
        value = _convexity(props.image, props.image_convex)
        if value >= threshold:
            single[labels == props.label] = props.label
        elif value >= lower:
            layer = labels == props.label  # full-frame layer
            for grown in _uecs_fullframe(layer, threshold, min_marker):
                gprops = regionprops(grown.astype(np.uint8))[0]
                if _convexity(gprops.image, gprops.image_convex) > threshold:
                    stack.append(grown)
    rows = [dict(r, separated=False) for r in _measure(single, pixel_size_nm)]
    if stack:
        layers = np.stack(stack)  # particles x pixels, as the reference
        for layer in layers:
            rows.extend(dict(r, separated=True) for r in _measure(layer, pixel_size_nm))
    return pd.DataFrame(rows)
