"""Exact ground truth of a synthetic micrograph: per-particle masks and the truth table.

Definitions (the same as the particle analysis; lengths in nm, areas in nm²):

* **mask** — pixel ``(r, c)`` belongs to a particle when its centre lies inside the
  projected outline; overlapping pixels belong to every particle that covers them, so
  masks are stored per particle as bounding-box crops with an ``offset`` (row, col).
  Particles cut by the border keep only their visible part.
* **area_nm2** — number of mask pixels times ``pixel_size_nm**2``.
* **equivalent_diameter_nm** — diameter of the disc of that area, ``2 * sqrt(area / pi)``.
* **max_feret_nm / min_feret_nm** — largest / smallest caliper width of the convex hull
  of the *corner points* of the mask pixels (each pixel is a unit square), i.e. the exact
  Feret diameters of the union of pixel squares (the analysis's definition, computed
  with its own functions from :mod:`antema_scale.particles.geometry`).
* **perimeter_nm** — the particle analysis's default estimator: length of the iso-0.5
  contour of the mask after a 1 px Gaussian blur
  (:func:`antema_scale.particles.geometry.contour_perimeters_nm`).
* **circularity** — ``4 * pi * area / perimeter**2``.
* **convexity** — convex-hull perimeter / perimeter of that same contour (the analysis's
  definition; below 0.95 the analysis calls a region non-convex); **solidity** — area /
  digital convex area.

All of these come from :func:`antema_scale.particles.measure.measure_particle` applied to
the exact mask, so a difference between truth and analysis is never a difference of
definitions.
* **centroid_y_nm / centroid_x_nm** — mean pixel index times the pixel size (pixel
  ``(0, 0)`` is centred at ``(0, 0)`` nm).
* **overlaps** — the mask shares at least one pixel with another particle's mask
  (``n_overlaps``, ``overlap_ids``, ``overlap_area_nm2`` give the details).
* **touches_border** — the mask has a pixel in the first/last row or column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from antema_scale.particles.measure import measure_particle
from antema_scale.synth.shapes import ParticleSpec

#: Columns of the truth table, in order (design columns follow the measured ones).
TRUTH_COLUMNS: tuple[str, ...] = (
    "particle_id",
    "area_px",
    "area_nm2",
    "equivalent_diameter_nm",
    "min_feret_nm",
    "max_feret_nm",
    "aspect_ratio",
    "perimeter_nm",
    "circularity",
    "convexity",
    "solidity",
    "centroid_y_nm",
    "centroid_x_nm",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
    "overlaps",
    "n_overlaps",
    "overlap_ids",
    "overlap_area_nm2",
    "touches_border",
    "shape",
    "design_diameter_nm",
    "design_aspect",
    "design_angle_deg",
    "thickness_nm",
    "design_center_y_nm",
    "design_center_x_nm",
)

#: Columns taken from the particle analysis's own measurement of each truth mask.
_MEASURED_COLUMNS: tuple[str, ...] = (
    "area_nm2",
    "equivalent_diameter_nm",
    "min_feret_nm",
    "max_feret_nm",
    "aspect_ratio",
    "perimeter_nm",
    "circularity",
    "convexity",
    "solidity",
    "centroid_y_nm",
    "centroid_x_nm",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
)


@dataclass
class ParticleCrop:
    """One particle's exact mask on its bounding box.

    Attributes
    ----------
    mask : ndarray of bool
        The particle's pixels inside the crop.
    offset : tuple of int
        ``(row, col)`` of the crop's first pixel in the image.
    """

    mask: np.ndarray
    offset: tuple[int, int]

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """``(min_row, min_col, max_row, max_col)`` in image px, max exclusive."""
        return (
            self.offset[0],
            self.offset[1],
            self.offset[0] + self.mask.shape[0],
            self.offset[1] + self.mask.shape[1],
        )

    def tight(self) -> ParticleCrop:
        """The same particle on the smallest crop that holds it."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        if rows.size == 0:
            return self
        return ParticleCrop(
            mask=self.mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy(),
            offset=(self.offset[0] + int(rows[0]), self.offset[1] + int(cols[0])),
        )


def feret_diameters(mask: np.ndarray, pixel_size_nm: float = 1.0) -> tuple[float, float]:
    """Minimum and maximum Feret diameter of a mask (convex hull of the pixel corners).

    Measured by the particle analysis itself (:func:`measure_particle`), so truth and
    measurement share one definition. Returns ``(0.0, 0.0)`` for an empty mask; units
    are those of ``pixel_size_nm`` (px when 1).
    """
    if not mask.any():
        return 0.0, 0.0
    measured = measure_particle(mask, (0, 0), (pixel_size_nm, pixel_size_nm))
    return float(measured["min_feret_nm"]), float(measured["max_feret_nm"])


def measure_crop(crop: ParticleCrop, pixel_size_nm: float) -> dict[str, float | int]:
    """Exact size and shape of one particle mask (see module docstring for definitions).

    Delegates to the particle analysis's :func:`measure_particle` (default estimators) so
    that truth and measurement use the very same definitions.
    """
    measured = measure_particle(crop.mask, crop.offset, (pixel_size_nm, pixel_size_nm))
    return {"area_px": int(crop.mask.sum())} | {key: measured[key] for key in _MEASURED_COLUMNS}


def overlapping_pairs(crops: list[ParticleCrop]) -> list[tuple[int, int, int]]:
    """All pairs ``(i, j, shared_px)`` (i < j) whose masks share pixels."""
    if len(crops) < 2:
        return []
    boxes = np.array([c.bbox for c in crops])
    r0, c0, r1, c1 = boxes.T
    order = np.argsort(r0, kind="stable")
    sorted_r0 = r0[order]
    pairs: list[tuple[int, int, int]] = []
    # Sweep over rows: only boxes starting before this one ends can intersect it.
    for position, i in enumerate(order):
        end = int(np.searchsorted(sorted_r0, r1[i], side="left"))
        others = order[position + 1 : end]
        others = others[(c0[others] < c1[i]) & (c0[i] < c1[others]) & (r0[i] < r1[others])]
        for j in others:
            top, left = max(r0[i], r0[j]), max(c0[i], c0[j])
            bottom, right = min(r1[i], r1[j]), min(c1[i], c1[j])
            a = crops[i].mask[top - r0[i] : bottom - r0[i], left - c0[i] : right - c0[i]]
            b = crops[j].mask[top - r0[j] : bottom - r0[j], left - c0[j] : right - c0[j]]
            shared = int(np.count_nonzero(a & b))
            if shared:
                pairs.append((int(min(i, j)), int(max(i, j)), shared))
    return sorted(pairs)


def union_mask(crops: list[ParticleCrop], shape: tuple[int, int]) -> np.ndarray:
    """Boolean union of all particle masks on an image of ``shape`` px."""
    out = np.zeros(shape, dtype=bool)
    for crop in crops:
        r0, c0 = crop.offset
        h, w = crop.mask.shape
        out[r0 : r0 + h, c0 : c0 + w] |= crop.mask
    return out


def touches_border(crop: ParticleCrop, shape: tuple[int, int]) -> bool:
    """Whether the mask has a pixel in the first/last row or column of the image."""
    r0, c0, r1, c1 = crop.bbox
    m = crop.mask
    return bool(
        (r0 == 0 and m[0].any())
        or (c0 == 0 and m[:, 0].any())
        or (r1 == shape[0] and m[-1].any())
        or (c1 == shape[1] and m[:, -1].any())
    )


def truth_table(
    crops: list[ParticleCrop],
    specs: list[ParticleSpec],
    pixel_size_nm: float,
    shape: tuple[int, int],
    particle_ids: list[int] | None = None,
) -> pd.DataFrame:
    """The per-particle truth table (one row per crop, ``particle_id`` from 1).

    Parameters
    ----------
    crops : list of ParticleCrop
        Exact masks, clipped to the image.
    specs : list of ParticleSpec
        The design geometry of the same particles (for the ``design_*`` columns).
    pixel_size_nm : float
        nm/px.
    shape : tuple of int
        Image shape, px.
    particle_ids : list of int, optional
        Identities to use instead of 1..n (movies keep a particle's id over frames).
    """
    n = len(crops)
    ids = list(range(1, n + 1)) if particle_ids is None else [int(i) for i in particle_ids]
    partners: list[list[int]] = [[] for _ in range(n)]
    shared_px = np.zeros(n, dtype=np.int64)
    for i, j, shared in overlapping_pairs(crops):
        partners[i].append(ids[j])
        partners[j].append(ids[i])
        shared_px[i] += shared
        shared_px[j] += shared
    rows = []
    for k, (crop, spec) in enumerate(zip(crops, specs, strict=True)):
        row: dict[str, object] = {"particle_id": ids[k]}
        row.update(measure_crop(crop, pixel_size_nm))
        row.update(
            {
                "overlaps": bool(partners[k]),
                "n_overlaps": len(partners[k]),
                "overlap_ids": ";".join(str(p) for p in sorted(partners[k])),
                "overlap_area_nm2": float(shared_px[k]) * pixel_size_nm**2,
                "touches_border": touches_border(crop, shape),
                "shape": spec.shape,
                "design_diameter_nm": 2.0 * spec.equivalent_radius_nm,
                "design_aspect": spec.aspect,
                "design_angle_deg": float(np.degrees(spec.angle_rad)),
                "thickness_nm": spec.thickness_nm,
                "design_center_y_nm": spec.center_y_nm,
                "design_center_x_nm": spec.center_x_nm,
            }
        )
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))
    if n == 0:
        numeric = {c: float for c in _MEASURED_COLUMNS} | {
            "area_px": np.int64,
            "n_overlaps": np.int64,
            "overlap_area_nm2": float,
        }
        table = table.astype(
            numeric | {"overlaps": bool, "touches_border": bool, "particle_id": np.int64}
        )
    return table
