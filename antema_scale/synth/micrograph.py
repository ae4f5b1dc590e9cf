"""One synthetic micrograph: placement, rasterisation on crops, imaging, truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from antema_scale.synth.config import SynthConfig
from antema_scale.synth.imaging import Backdrop, ParticleLook, render
from antema_scale.synth.layout import (
    Hole,
    chain_specs,
    cluster_specs,
    draw_hole,
    pair_specs,
    place_particles,
)
from antema_scale.synth.shapes import ParticleSpec, RasterizedParticle, rasterize_particle
from antema_scale.synth.truth import ParticleCrop, truth_table, union_mask


@dataclass
class SyntheticMicrograph:
    """A synthetic image with its exact ground truth.

    Attributes
    ----------
    image : ndarray of float32
        The micrograph, detector counts.
    pixel_size_nm : float
        nm/px (isotropic).
    mask : ndarray of bool
        Union of all particle masks.
    particles : list of ParticleCrop
        Each particle's own mask on its bounding box with ``offset`` (row, col); pixels
        where particles overlap belong to all of them. Index ``k`` is ``particle_id k+1``.
    truth : pandas.DataFrame
        One row per particle (see :mod:`antema_scale.synth.truth`); computed on first
        access (it costs about as much as the image), so training loops that only need
        masks do not pay for it.
    config : SynthConfig
        The configuration used.
    seed : int or None
        The seed used (None for scenes built from explicit particle lists without one).
    """

    image: np.ndarray
    pixel_size_nm: float
    mask: np.ndarray
    particles: list[ParticleCrop]
    config: SynthConfig
    seed: int | None
    specs: list[ParticleSpec] = field(repr=False, default_factory=list)
    particle_ids: list[int] | None = field(repr=False, default=None)

    @cached_property
    def truth(self) -> pd.DataFrame:
        """Per-particle truth table (computed once, on first access)."""
        return truth_table(
            self.particles,
            self.specs,
            self.pixel_size_nm,
            self.image.shape,
            particle_ids=self.particle_ids,
        )

    @property
    def mode(self) -> str:
        """Imaging mode, "hrtem" or "haadf"."""
        return self.config.mode

    def particle_mask(self, particle_id: int) -> np.ndarray:
        """Full-frame boolean mask of one particle, by its ``particle_id``."""
        index = (
            particle_id - 1 if self.particle_ids is None else self.particle_ids.index(particle_id)
        )
        return union_mask([self.particles[index]], self.image.shape)

    def metadata(self) -> dict[str, Any]:
        """JSON-safe description: pixel size, mode, seed, counts, configuration."""
        return {
            "pixel_size_nm": self.pixel_size_nm,
            "mode": self.mode,
            "seed": self.seed,
            "n_particles": len(self.particles),
            "n_overlapping": int(self.truth["overlaps"].sum()) if len(self.truth) else 0,
            "config": self.config.to_dict(),
        }

    def to_xarray(self) -> Any:
        """The image as an ``xarray.DataArray`` with nm coordinates and pixel-size attrs."""
        import xarray as xr

        rows, cols = self.image.shape
        px = self.pixel_size_nm
        return xr.DataArray(
            self.image,
            dims=("y", "x"),
            coords={"y": np.arange(rows) * px, "x": np.arange(cols) * px},
            attrs={
                "pixel_size_nm": px,
                "pixel_size_nm_y": px,
                "pixel_size_nm_x": px,
                "units_original": "nm",
                "source": f"synthetic:{self.mode}:seed={self.seed}",
                "format": "synthetic",
            },
        )


def rasterize_scene(
    config: SynthConfig, specs: list[ParticleSpec]
) -> tuple[list[int], list[RasterizedParticle]]:
    """Rasterise particles on their crops, drop the too small and the invisible.

    A particle is dropped when its full (unclipped) mask has fewer than
    ``config.min_particle_px`` pixels or when nothing of it lies inside the image, so
    every particle drawn in the image has a truth row.

    Returns
    -------
    kept : list of int
        Indices into ``specs`` of the particles kept.
    rasters : list of RasterizedParticle
        Their crops, clipped to the image.
    """
    kept: list[int] = []
    rasters: list[RasterizedParticle] = []
    for index, spec in enumerate(specs):
        raster = rasterize_particle(spec, config.pixel_size_nm)
        if int(raster.mask.sum()) < config.min_particle_px:
            continue
        clipped = raster.clip(config.shape)
        if clipped is None or not clipped.mask.any():
            continue
        kept.append(index)
        rasters.append(clipped)
    return kept, rasters


def render_scene(
    config: SynthConfig,
    specs: list[ParticleSpec],
    rng: np.random.Generator,
    seed: int | None = None,
    *,
    looks: list[ParticleLook] | None = None,
    backdrop: Backdrop | None = None,
    particle_ids: list[int] | None = None,
    hole: Hole | None = None,
) -> SyntheticMicrograph:
    """Image an explicit list of particles (nm geometry) with the configured imaging model.

    ``looks`` (one per spec) and ``backdrop`` fix the particles' imaging attributes and the
    support (movies); they are drawn from ``rng`` otherwise. ``particle_ids`` (one per
    spec) name the particles in the truth table (default 1..n over the visible ones).
    ``hole`` is a vacuum region of the support (see :func:`draw_hole`).
    """
    kept, rasters = rasterize_scene(config, specs)
    visible = [specs[i] for i in kept]
    image = render(
        config,
        rasters,
        visible,
        rng,
        looks=None if looks is None else [looks[i] for i in kept],
        backdrop=backdrop,
        hole=hole,
    )
    crops = [ParticleCrop(mask=r.mask, offset=r.offset).tight() for r in rasters]
    return SyntheticMicrograph(
        image=image,
        pixel_size_nm=float(config.pixel_size_nm),
        mask=union_mask(crops, config.shape),
        particles=crops,
        config=config,
        seed=seed,
        specs=visible,
        particle_ids=None if particle_ids is None else [particle_ids[i] for i in kept],
    )


def generate_micrograph(config: SynthConfig, seed: int) -> SyntheticMicrograph:
    """Generate one synthetic micrograph with exact ground truth.

    Parameters
    ----------
    config : SynthConfig
        What to draw and how to image it.
    seed : int
        Seed of ``numpy.random.default_rng``; the same config and seed give the same
        image bit for bit.

    Returns
    -------
    SyntheticMicrograph
        Image (float32 counts), pixel size (nm/px), union mask, per-particle crops and
        the truth table.
    """
    rng = np.random.default_rng(seed)
    hole = draw_hole(config, rng)
    specs = place_particles(config, rng, hole)
    return render_scene(config, specs, rng, seed=seed, hole=hole)


def _pairs_on_grid(
    config: SynthConfig,
    rng: np.random.Generator,
    n: int,
    diameter_nm: float,
    overlap: float,
    overlap_kind: str,
) -> list[ParticleSpec]:
    """``n`` pairs at the given overlap, one per cell of a grid, random orientations."""
    rows, cols = config.shape
    height, width = rows * config.pixel_size_nm, cols * config.pixel_size_nm
    cell = 2.0 * diameter_nm + 4.0 * config.pixel_size_nm  # a pair spans < 2 diameters
    n_rows, n_cols = int(height // cell), int(width // cell)
    if n_rows * n_cols < n:
        raise ValueError(
            f"{n} pairs of {diameter_nm} nm discs need {n} cells of {cell:.1f} nm; the "
            f"{height:.1f} x {width:.1f} nm field holds {n_rows * n_cols}"
        )
    specs: list[ParticleSpec] = []
    for k in range(n):
        r, c = divmod(k, n_cols)
        centre = ((r + 0.5) * cell, (c + 0.5) * cell)
        specs += pair_specs(
            diameter_nm,
            overlap,
            center_nm=centre,
            angle_rad=float(rng.uniform(0.0, np.pi)),
            kind=overlap_kind,
        )
    return specs


def generate_scene(
    config: SynthConfig,
    kind: str,
    seed: int,
    *,
    n: int = 2,
    diameter_nm: float = 5.0,
    overlap: float = 0.25,
    overlap_kind: str = "linear",
    angle_rad: float | None = None,
) -> SyntheticMicrograph:
    """A controlled scene in the middle of the field: a pair, chain or cluster of discs.

    Parameters
    ----------
    config : SynthConfig
        Imaging settings and field size; its particle settings are ignored.
    kind : {"pair", "pairs", "chain", "cluster"}
        Two discs; ``n`` separate pairs on a grid (random orientations; the grid must
        have room: an error says so otherwise); ``n`` discs in a row; ``n`` discs in a
        compact cluster.
    seed : int
        Seed for orientation, cluster growth and imaging noise.
    n : int
        Number of discs (chain, cluster) or of pairs (pairs).
    diameter_nm : float
        Disc diameter, nm.
    overlap : float
        Overlap between neighbours: linear depth ``1 - d / (2 r)`` or, with
        ``overlap_kind="area"``, the shared fraction of one disc's area.
    overlap_kind : {"linear", "area"}
        Definition of ``overlap``.
    angle_rad : float or None
        Orientation of the pair / chain (random when None).
    """
    rng = np.random.default_rng(seed)
    rows, cols = config.shape
    centre = ((rows - 1) * config.pixel_size_nm / 2.0, (cols - 1) * config.pixel_size_nm / 2.0)
    angle = float(rng.uniform(0.0, np.pi)) if angle_rad is None else angle_rad
    if kind == "pair":
        specs = pair_specs(
            diameter_nm, overlap, center_nm=centre, angle_rad=angle, kind=overlap_kind
        )
    elif kind == "chain":
        specs = chain_specs(
            n,
            diameter_nm,
            overlap,
            center_nm=centre,
            angle_rad=angle,
            kind=overlap_kind,
            bend_rad=0.5,
            rng=rng,
        )
    elif kind == "cluster":
        specs = cluster_specs(n, diameter_nm, overlap, center_nm=centre, rng=rng, kind=overlap_kind)
    elif kind == "pairs":
        specs = _pairs_on_grid(config, rng, n, diameter_nm, overlap, overlap_kind)
    else:
        raise ValueError(f"scene kind must be 'pair', 'pairs', 'chain' or 'cluster', got {kind!r}")
    return render_scene(config, specs, rng, seed=seed)
