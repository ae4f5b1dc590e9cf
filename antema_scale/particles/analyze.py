"""``analyze_mask``: from a binary particle map and a pixel size to a table of particles in nm.

DESIGN.md section 1, steps 4-7, per image: clean (specks, holes, border), classify each
region by convexity, separate overlapping particles, measure. Every region is handled on
its own cropped bounding box (plus padding), never on full-frame layers, so the cost grows
with the particle pixels, not with particles x image pixels.

Separation modes (``AnalysisOptions.separation``)
-------------------------------------------------
Regions at or above the convexity threshold are single particles, except in
``"hybrid"``, ``"uecs"`` and ``"watershed"`` modes when their solidity is below
``overlap_solidity`` (0.99) *and* a shape split finds two or more particles: two discs at
25-40 % linear overlap have a convexity of 0.96-0.98, above the paper's 0.95 threshold,
and would otherwise count as one particle.

``"hybrid"`` (default)
    Every region below the threshold (none is excluded for low convexity:
    ``min_convexity=None``) is split by the distance-map watershed with
    overlap-preserving reconstruction (:mod:`antema_scale.particles.watershed`), or by
    circles fitted to the outline arcs between concave points
    (:mod:`antema_scale.particles.arcs`) when those find more particles (compact
    triangles and clusters have a single distance-map core).
``"uecs"``
    The paper's UECS (:mod:`antema_scale.particles.uecs`) first; when its convex regrown
    particles cover less than ``uecs_min_coverage`` of the region (e.g. the erosion
    collapsed into one marker), the region falls back to the ``"hybrid"`` split.
``"uecs-paper"``
    The paper's method unchanged: regions below ``min_convexity`` (0.5) are excluded,
    regrown particles that are not convex are discarded, convex-looking overlaps are
    kept as one particle. Use ``AnalysisOptions.paper()``.
``"watershed"``
    The distance-map watershed alone.
``"none"``
    No separation: every region is one particle; ``convexity`` is reported and
    ``nonconvex`` flags regions below the threshold.

Measured accuracy (``benchmarks/separation_accuracy.py --repeats 6``: drawn equal discs of
5 and 10 nm at 0.1 and 0.25 nm/px, 24 scenes per row; a true disc is found when a
particle covers it with IoU >= 0.7; cells are recall / precision / mean absolute error of
the equivalent diameter of found discs; linear overlap ``1 - d / (2 r)``):

=============  ==================  ==================  ==================  ==================
scene          hybrid (default)    uecs                uecs-paper          watershed
=============  ==================  ==================  ==================  ==================
isolated       1.00 / 1.00 / 0.0%  1.00 / 1.00 / 0.0%  1.00 / 1.00 / 0.0%  1.00 / 1.00 / 0.0%
pair 10 %      1.00 / 1.00 / 0.2%  1.00 / 1.00 / 1.6%  1.00 / 1.00 / 1.6%  1.00 / 1.00 / 0.2%
pair 25 %      1.00 / 1.00 / 0.5%  1.00 / 1.00 / 0.9%  0.12 / 0.22 / 3.4%  1.00 / 1.00 / 0.5%
pair 40 %      1.00 / 1.00 / 2.4%  1.00 / 1.00 / 2.4%  0.00 / 0.00 / -     1.00 / 1.00 / 2.4%
chain of 3     1.00 / 0.97 / 1.1%  1.00 / 0.97 / 2.9%  0.67 / 0.86 / 3.4%  1.00 / 1.00 / 1.0%
chain of 4     1.00 / 0.97 / 1.4%  1.00 / 0.98 / 3.6%  0.81 / 0.95 / 3.8%  1.00 / 1.00 / 1.2%
triangle 15 %  0.94 / 0.94 / 1.2%  0.94 / 0.93 / 1.3%  0.33 / 0.61 / 1.7%  0.17 / 0.60 / 6.3%
triangle 30 %  1.00 / 1.00 / 0.6%  1.00 / 1.00 / 0.6%  0.00 / 0.00 / -     0.00 / 0.00 / -
cluster 4-6    0.89 / 0.97 / 1.6%  0.87 / 0.96 / 2.1%  0.48 / 0.81 / 3.1%  0.50 / 0.83 / 1.8%
=============  ==================  ==================  ==================  ==================

(``"none"`` finds only the isolated discs.) The paper's UECS loses pairs from about 25 %
overlap (their convexity passes 0.95, and the erosion collapses into one marker) and
compact triangles; the plain watershed loses compact triangles and clusters (one
distance-map core); the hybrid keeps the watershed's diameters and adds the arc split.

Exact truth masks of 8 ``antema_scale.synth`` micrographs per overlap level (mixed
shapes and sizes, IoU >= 0.5, recall / precision): level "medium" (5257 particles):
hybrid 0.671 / 0.955, uecs 0.670 / 0.955, uecs-paper 0.569 / 0.978, watershed
0.656 / 0.953, none 0.554 / 0.897; level "high" (dense rafts, 5482 particles): hybrid
0.273 / 0.862, uecs-paper 0.247 / 0.887, none 0.237 / 0.814 -- dense rafts stay
mostly unsplit by every mode.

Real outlines, 150 EMPS instance label maps (``benchmarks/separation_real.py``, 3153
instances, IoU >= 0.5, recall / precision / F1): hybrid 0.596 / 0.941 / 0.730, uecs
0.600 / 0.948 / 0.735, uecs-paper 0.596 / 0.982 / 0.742, watershed 0.593 / 0.964 /
0.735, none 0.541 / 0.976 / 0.696. On these real (often non-round) particles no mode
recovers more than the paper's UECS, and the hybrid pays about 4 points of precision
(splits of irregular single particles): use ``AnalysisOptions.paper()`` or
``separation="watershed"`` when particles are far from round.

Regions that cannot be split are excluded with reason ``"separation failed"`` unless
``keep_unseparated`` is set (then they are kept, flagged ``nonconvex``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from antema_scale.particles.arcs import arc_separate, count_necks
from antema_scale.particles.cleaning import CleanedMask, clean_mask, disc_area_px
from antema_scale.particles.convexity import classify_region
from antema_scale.particles.geometry import (
    centre_hull_px,
    contour_perimeters_nm,
    convex_area_px,
    zero_pad,
)
from antema_scale.particles.measure import measure_particle
from antema_scale.particles.table import (
    ParticleCrop,
    ParticleTable,
    typed_excluded_frame,
    typed_particles_frame,
)
from antema_scale.particles.uecs import UecsParticle, uecs_separate
from antema_scale.particles.watershed import watershed_separate

SeparationMode = Literal["hybrid", "uecs", "uecs-paper", "watershed", "none"]
SEPARATION_MODES: tuple[str, ...] = ("hybrid", "uecs", "uecs-paper", "watershed", "none")


@dataclass(frozen=True)
class AnalysisOptions:
    """Options of :func:`analyze_mask` (all sizes in nm unless the name says px).

    Attributes
    ----------
    min_particle_diameter_nm : float
        Specks with a smaller equivalent diameter are removed (paper: 0.5 nm).
    max_hole_diameter_nm : float
        Holes with a smaller equivalent diameter are filled (paper: 0.5 nm).
    fill_all_holes : bool
        Fill every hole inside particles.
    border : {"drop", "keep"}
        Drop regions touching the image border (reported as excluded, reason
        ``"touches border"``) or keep them with ``touches_border=True``.
    convexity_threshold : float
        Regions at or above are single particles (paper: 0.95).
    min_convexity : float or None
        Regions below are excluded (paper: 0.5); None never excludes on convexity.
    min_euler_number : int
        Regions with a smaller Euler number are excluded (paper: Euler number <= -10).
    separation : {"hybrid", "uecs", "uecs-paper", "watershed", "none"}
        Separation mode, see the module docstring.
    uecs_solidity_tolerance : float
        UECS marker test: ``1 - area / convex_area`` must be below it.
    uecs_min_marker_px : float
        UECS marker floor in pixels; the floor is ``max(this, disc of
        uecs_min_marker_diameter_nm)``.
    uecs_min_marker_diameter_nm : float
        UECS marker floor as a disc diameter in nm.
    uecs_min_coverage : float
        ``"uecs"`` mode: fall back to the hybrid split when the convex UECS particles
        cover less than this fraction of the region; also the coverage the arc split
        must reach.
    watershed_h_nm : float or None
        Minimum h of the h-maxima markers (nm); None: only the relative rule.
    watershed_h_fraction : float
        h as a fraction of the region's largest inscribed radius.
    overlap_solidity : float or None
        Convex regions with a solidity below this and two necks (see
        ``overlap_neck_depth``) are tried with the shape split (``"hybrid"``,
        ``"uecs"``, ``"watershed"``) and split when it finds two or more particles;
        None disables the check.
    overlap_neck_depth : float
        A neck is a concave point of the outline deeper than this fraction of the
        square root of the region's area (two discs at 40 % overlap: about 0.09).
    keep_unseparated : bool
        Keep regions that could not be split as one (nonconvex) particle.
    perimeter : {"contour", "matlab"}
        Perimeter estimator of ``perimeter_nm`` and ``circularity`` (see
        :mod:`antema_scale.particles.geometry`); ``"matlab"`` reproduces MATLAB
        ``regionprops`` perimeters and hence the reference program's circularity.
    padding_px : int
        Background pixels added around each region's bounding box.
    """

    min_particle_diameter_nm: float = 0.5
    max_hole_diameter_nm: float = 0.5
    fill_all_holes: bool = False
    border: Literal["drop", "keep"] = "drop"
    convexity_threshold: float = 0.95
    min_convexity: float | None = None
    min_euler_number: int = -9
    separation: SeparationMode = "hybrid"
    uecs_solidity_tolerance: float = 0.05
    uecs_min_marker_px: float = 30.0
    uecs_min_marker_diameter_nm: float = 0.5
    uecs_min_coverage: float = 0.9
    watershed_h_nm: float | None = None
    watershed_h_fraction: float = 0.1
    overlap_solidity: float | None = 0.99
    overlap_neck_depth: float = 0.04
    keep_unseparated: bool = False
    perimeter: Literal["contour", "matlab"] = "contour"
    padding_px: int = 2

    def __post_init__(self) -> None:
        if self.separation not in SEPARATION_MODES:
            raise ValueError(
                f"unknown separation mode {self.separation!r}; choose one of {SEPARATION_MODES}"
            )
        if self.border not in ("drop", "keep"):
            raise ValueError(f"border must be 'drop' or 'keep', not {self.border!r}")
        if self.perimeter not in ("contour", "matlab"):
            raise ValueError(f"perimeter must be 'contour' or 'matlab', not {self.perimeter!r}")
        if not 0.0 < self.convexity_threshold <= 1.0:
            raise ValueError(
                f"convexity_threshold must be in (0, 1], got {self.convexity_threshold}"
            )
        for name in ("min_particle_diameter_nm", "max_hole_diameter_nm", "uecs_min_marker_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.padding_px < 1:
            raise ValueError(f"padding_px must be >= 1, got {self.padding_px}")

    @classmethod
    def paper(cls, **changes: object) -> AnalysisOptions:
        """The paper's settings: UECS without fallback, regions below 0.5 excluded."""
        base = cls(separation="uecs-paper", min_convexity=0.5, overlap_solidity=None)
        return replace(base, **changes)


def pixel_spacing(pixel_size_nm: float | tuple[float, float]) -> tuple[float, float]:
    """Validate a pixel size (nm/px) and return it as ``(dy, dx)``.

    Raises
    ------
    ValueError
        When it is not one or two finite positive numbers.
    """
    values = (
        (pixel_size_nm, pixel_size_nm)
        if np.isscalar(pixel_size_nm)
        else tuple(np.asarray(pixel_size_nm, dtype=float).ravel())
    )
    if len(values) != 2:
        raise ValueError(f"pixel_size_nm must be a number or a (y, x) pair, got {pixel_size_nm!r}")
    try:
        dy, dx = float(values[0]), float(values[1])
    except (TypeError, ValueError) as error:
        raise ValueError(f"pixel_size_nm must be numeric, got {pixel_size_nm!r}") from error
    if not (math.isfinite(dy) and math.isfinite(dx) and dy > 0 and dx > 0):
        raise ValueError(f"pixel_size_nm must be finite and positive, got {pixel_size_nm!r}")
    return dy, dx


def as_binary_mask(mask: np.ndarray) -> np.ndarray:
    """Validate a particle map and return it as a 2-D boolean array.

    Raises
    ------
    ValueError
        When it is not 2-D, is empty, or holds NaN.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be a 2-D array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"mask is empty (shape {array.shape})")
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"mask must be boolean or numeric, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise ValueError("mask contains NaN")
    return array != 0


@dataclass
class _Collector:
    """Accumulates particle rows, crops and excluded rows of one image."""

    image_id: str
    spacing: tuple[float, float]
    options: AnalysisOptions
    rows: list[dict[str, object]]
    crops: list[ParticleCrop]
    excluded: list[dict[str, object]]

    def add_particle(
        self,
        mask: np.ndarray,
        offset: tuple[int, int],
        *,
        parent_region: int,
        separated: bool,
        method: str,
        erosion_steps: int,
        touches_border: bool,
        holes_filled: bool = False,
        contour_perimeters: tuple[float, float] | None = None,
        centre_hull: np.ndarray | None = None,
        convex_area: float | None = None,
    ) -> None:
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        tight = mask[r0:r1, c0:c1]
        tight_offset = (offset[0] + int(r0), offset[1] + int(c0))
        values = measure_particle(
            tight,
            tight_offset,
            self.spacing,
            perimeter=self.options.perimeter,
            contour_perimeters=contour_perimeters,
            holes_filled=holes_filled,
            centre_hull=centre_hull,
            convex_area=convex_area,
        )
        particle_id = len(self.rows) + 1
        self.rows.append(
            {
                "image_id": self.image_id,
                "particle_id": particle_id,
                **values,
                "separated": separated,
                "separation_method": method,
                "parent_region": parent_region,
                "erosion_steps": erosion_steps,
                "touches_border": touches_border,
                "nonconvex": values["convexity"] < self.options.convexity_threshold,
            }
        )
        self.crops.append(ParticleCrop(self.image_id, particle_id, tight.copy(), tight_offset))

    def add_excluded(
        self,
        mask: np.ndarray,
        offset: tuple[int, int],
        *,
        region_id: int,
        reason: str,
        convexity_value: float,
    ) -> None:
        rows, cols = np.nonzero(mask)
        self.excluded.append(
            {
                "image_id": self.image_id,
                "region_id": region_id,
                "reason": reason,
                "area_nm2": rows.size * self.spacing[0] * self.spacing[1],
                "convexity": convexity_value,
                "bbox_min_row": int(rows.min()) + offset[0] if rows.size else offset[0],
                "bbox_min_col": int(cols.min()) + offset[1] if rows.size else offset[1],
                "bbox_max_row": int(rows.max()) + 1 + offset[0] if rows.size else offset[0],
                "bbox_max_col": int(cols.max()) + 1 + offset[1] if rows.size else offset[1],
            }
        )


@dataclass
class _Region:
    """One labelled region on its padded crop.

    ``filled`` is the crop with its remaining holes filled (the crop itself when it has
    none); ``perimeters`` are the contour and hull perimeters of ``filled`` (nm).
    """

    label: int
    crop: np.ndarray
    offset: tuple[int, int]
    touches_border: bool
    holes: int
    filled: np.ndarray
    perimeters: tuple[float, float]

    @cached_property
    def centre_hull(self) -> np.ndarray:
        """Convex hull of the pixel centres (px; translation-free, so valid for any crop)."""
        return centre_hull_px(self.crop)

    @cached_property
    def convex_area(self) -> float:
        """Digital convex area in px (Pick's theorem on :attr:`centre_hull`)."""
        return convex_area_px(self.centre_hull)

    @property
    def convexity(self) -> float:
        perimeter, hull_perimeter = self.perimeters
        return hull_perimeter / perimeter if perimeter > 0 else 1.0


def _region(
    cleaned: CleanedMask,
    label: int,
    slc: tuple[slice, slice],
    spacing: tuple[float, float],
    padding: int,
) -> _Region:
    """Cut one region out of the label image (padded) and compute its contour perimeters."""
    rows, cols = slc
    crop = zero_pad(cleaned.labels[slc] == label, padding)
    holes = int(cleaned.holes_per_region[label])
    filled = ndi.binary_fill_holes(crop) if holes else crop
    return _Region(
        label=label,
        crop=crop,
        offset=(rows.start - padding, cols.start - padding),
        touches_border=bool(cleaned.touches_border[label]),
        holes=holes,
        filled=filled,
        perimeters=contour_perimeters_nm(filled, spacing, holes_filled=True),
    )


def _may_hide_overlap(
    region: _Region, spacing: tuple[float, float], options: AnalysisOptions
) -> bool:
    """Whether a convex-looking region is worth a shape split.

    Its solidity must be below ``overlap_solidity`` and its outline must show at least
    two necks (concave points deeper than ``overlap_neck_depth * sqrt(area)``): on real
    EMPS label maps, splitting every low-solidity convex region cost 4 points of
    precision for no recall.
    """
    if options.overlap_solidity is None or options.separation in ("uecs-paper", "none"):
        return False
    solidity = np.count_nonzero(region.crop) / region.convex_area
    if solidity >= options.overlap_solidity:
        return False
    return count_necks(region.filled, spacing, relative_depth=options.overlap_neck_depth) >= 2


def _min_marker_px(options: AnalysisOptions, spacing: tuple[float, float]) -> float:
    """UECS marker floor: ``max(uecs_min_marker_px, disc of uecs_min_marker_diameter_nm)``."""
    return max(
        options.uecs_min_marker_px, disc_area_px(options.uecs_min_marker_diameter_nm, spacing)
    )


def _shape_split(region: _Region, collector: _Collector) -> tuple[list[np.ndarray], str]:
    """Split by the distance-map watershed, or by contour arcs when they find more.

    In ``"watershed"`` mode only the distance-map markers are used; otherwise the contour
    arcs (:mod:`antema_scale.particles.arcs`) are tried too and win when they find more
    particles.

    Returns the particle masks (empty when the region does not split) and the method.
    """
    options, spacing = collector.options, collector.spacing
    pieces = watershed_separate(
        region.filled,
        spacing,
        h_nm=options.watershed_h_nm,
        h_fraction=options.watershed_h_fraction,
    )
    method = "watershed"
    if options.separation != "watershed":
        arcs = arc_separate(
            region.filled,
            spacing,
            min_coverage=options.uecs_min_coverage,
            min_particle_px=_min_marker_px(options, spacing),
        )
        if arcs is not None and len(arcs) > len(pieces):
            pieces, method = arcs, "arcs"
    if region.holes:
        pieces = [piece & region.crop for piece in pieces]
    return (pieces if len(pieces) >= 2 else []), method


def _add_split(
    region: _Region, pieces: list[np.ndarray], method: str, collector: _Collector
) -> None:
    """Hand the particles of a split region to the collector."""
    for piece in pieces:
        collector.add_particle(
            piece,
            region.offset,
            parent_region=region.label,
            separated=True,
            method=method,
            erosion_steps=0,
            touches_border=region.touches_border,
            holes_filled=region.holes == 0,
        )


def _add_uecs_result(region: _Region, particles: list[UecsParticle], collector: _Collector) -> None:
    """Hand regrown UECS particles to the collector: convex ones kept, others excluded."""
    kept = sum(p.convex for p in particles)
    for particle in particles:
        if particle.convex:
            collector.add_particle(
                particle.mask,
                region.offset,
                parent_region=region.label,
                separated=kept > 1,
                method="uecs",
                erosion_steps=particle.erosion_steps,
                touches_border=region.touches_border,
                holes_filled=region.holes == 0,
            )
        else:
            collector.add_excluded(
                particle.mask,
                region.offset,
                region_id=region.label,
                reason="separated particle not convex after regrowth",
                convexity_value=particle.convexity,
            )


def _run_uecs(region: _Region, collector: _Collector) -> bool:
    """UECS on a region; returns True when its result is final (no fallback needed)."""
    options, spacing = collector.options, collector.spacing
    min_marker = _min_marker_px(options, spacing)
    particles = uecs_separate(
        region.crop,
        spacing,
        convexity_threshold=options.convexity_threshold,
        solidity_tolerance=options.uecs_solidity_tolerance,
        min_marker_px=min_marker,
        holes_filled=region.holes == 0,
    )
    kept = [p.mask for p in particles if p.convex]
    area = np.count_nonzero(region.crop)
    covered = np.count_nonzero(np.logical_or.reduce(kept)) / area if kept else 0.0
    if options.separation == "uecs-paper" or covered >= options.uecs_min_coverage:
        _add_uecs_result(region, particles, collector)
        if not kept:
            collector.add_excluded(
                region.crop,
                region.offset,
                region_id=region.label,
                reason="separation failed",
                convexity_value=region.convexity,
            )
        return True
    return False


def _add_whole_region(region: _Region, collector: _Collector) -> None:
    """The region is one particle."""
    collector.add_particle(
        region.crop,
        region.offset,
        parent_region=region.label,
        separated=False,
        method="none",
        erosion_steps=0,
        touches_border=region.touches_border,
        holes_filled=region.holes == 0,
        contour_perimeters=region.perimeters,
        centre_hull=region.centre_hull,
        convex_area=region.convex_area,
    )


def _analyze_region(
    cleaned: CleanedMask, label: int, slc: tuple[slice, slice], collector: _Collector
) -> None:
    """Classify, separate and measure one labelled region."""
    options, spacing = collector.options, collector.spacing
    if cleaned.touches_border[label] and options.border == "drop":
        rows, cols = slc
        collector.add_excluded(
            cleaned.labels[slc] == label,
            (rows.start, cols.start),
            region_id=label,
            reason="touches border",
            convexity_value=float("nan"),
        )
        return
    region = _region(cleaned, label, slc, spacing, options.padding_px)
    region_class, reason = classify_region(
        region.convexity,
        1 - region.holes,
        threshold=options.convexity_threshold,
        min_convexity=options.min_convexity,
        min_euler_number=options.min_euler_number,
    )
    if region_class == "excluded":
        collector.add_excluded(
            region.crop,
            region.offset,
            region_id=label,
            reason=reason,
            convexity_value=region.convexity,
        )
        return
    if options.separation == "none":
        _add_whole_region(region, collector)
        return
    if region_class == "convex":
        pieces, method = (
            _shape_split(region, collector)
            if _may_hide_overlap(region, spacing, options)
            else ([], "")
        )
        if pieces:
            _add_split(region, pieces, method, collector)
        else:
            _add_whole_region(region, collector)
        return
    if options.separation in ("uecs", "uecs-paper") and _run_uecs(region, collector):
        return
    pieces, method = _shape_split(region, collector)
    if pieces:
        _add_split(region, pieces, method, collector)
    elif options.keep_unseparated:
        _add_whole_region(region, collector)
    else:
        collector.add_excluded(
            region.crop,
            region.offset,
            region_id=region.label,
            reason="separation failed",
            convexity_value=region.convexity,
        )


def analyze_mask(
    mask: np.ndarray,
    pixel_size_nm: float | tuple[float, float],
    *,
    options: AnalysisOptions | None = None,
    image_id: str = "",
) -> ParticleTable:
    """Clean a particle map, separate overlapping particles and measure them in nm.

    Pure function of its inputs (no I/O, no global state), picklable, cheap to ship as a
    Dask task.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D particle map (bool, or numeric: non-zero = particle).
    pixel_size_nm : float or (float, float)
        Pixel size in nm per pixel, isotropic or ``(y, x)``.
    options : AnalysisOptions, optional
        Cleaning, classification, separation and measurement settings; defaults to
        ``AnalysisOptions()``.
    image_id : str
        Written into every row.

    Returns
    -------
    ParticleTable
        Particles, excluded regions, per-particle crops.

    Raises
    ------
    ValueError
        On a mask that is not 2-D / empty / NaN, or an invalid pixel size.
    """
    options = options or AnalysisOptions()
    spacing = pixel_spacing(pixel_size_nm)
    binary = as_binary_mask(mask)
    cleaned = clean_mask(
        binary,
        spacing,
        min_particle_diameter_nm=options.min_particle_diameter_nm,
        max_hole_diameter_nm=options.max_hole_diameter_nm,
        fill_all_holes=options.fill_all_holes,
    )
    collector = _Collector(image_id, spacing, options, [], [], [])
    for label, slc in enumerate(ndi.find_objects(cleaned.labels), start=1):
        if slc is not None:
            _analyze_region(cleaned, label, slc, collector)
    table = ParticleTable(
        excluded=typed_excluded_frame(collector.excluded),
        masks=collector.crops,
        image_ids=[image_id],
    )
    if collector.rows:
        table.particles = typed_particles_frame(pd.DataFrame(collector.rows))
    return table
