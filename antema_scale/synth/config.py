"""Configuration of a synthetic micrograph: what is on the grid and how it is imaged."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from antema_scale.synth.shapes import SHAPES

MODES: tuple[str, ...] = ("hrtem", "haadf")
ARRANGEMENTS: tuple[str, ...] = ("random", "clustered", "rafts")


@dataclass(frozen=True)
class OverlapSpec:
    """How many particles are placed against another one, and how deeply.

    Parameters
    ----------
    fraction : float
        Probability in [0, 1] that a particle is placed against an already placed one
        instead of at a free random spot.
    depth_min, depth_max : float
        Linear overlap depth ``1 - d / (r1 + r2)`` (``d`` centre distance, ``r`` equivalent
        radii) drawn uniformly in this range; 0 is touching, 1 is concentric.
    """

    fraction: float
    depth_min: float
    depth_max: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"overlap fraction must be in [0, 1], got {self.fraction}")
        if not -0.5 <= self.depth_min <= self.depth_max <= 1.0:
            raise ValueError(
                "overlap depths must satisfy -0.5 <= depth_min <= depth_max <= 1, "
                f"got {self.depth_min}, {self.depth_max}"
            )


#: The overlap levels of the paper's Fig. 7, as placement rules.
OVERLAP_LEVELS: dict[str, OverlapSpec] = {
    "none": OverlapSpec(0.0, 0.0, 0.0),
    "low": OverlapSpec(0.08, 0.02, 0.2),
    "medium": OverlapSpec(0.3, 0.1, 0.35),
    "high": OverlapSpec(0.7, 0.15, 0.55),
}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a synthetic micrograph except the random seed.

    Parameters
    ----------
    mode : {"hrtem", "haadf"}
        Bright-field (HR)TEM: dark particles on a light, textured background; or
        HAADF-STEM: bright particles, intensity growing with projected thickness, on a dark
        support.
    image_size : int or (int, int)
        Image size in px (square when an int).
    pixel_size_nm : float
        Pixel size, nm/px (0.01 to 2 are realistic).
    shapes : dict
        Shape mix: shape name (see :data:`antema_scale.synth.shapes.SHAPES`) -> weight.
    diameter_mean_nm : float
        Mean nominal particle diameter, nm (lognormal distribution).
    diameter_spread : float
        Relative spread (coefficient of variation) of the diameters.
    n_particles : int or None
        Number of particles to place; None uses ``area_fraction``.
    area_fraction : float
        Target fraction of the image covered by particles when ``n_particles`` is None.
    overlap : str or OverlapSpec
        "none", "low", "medium", "high" (see :data:`OVERLAP_LEVELS`) or an explicit spec.
    arrangement : {"random", "clustered", "rafts"}
        Uniform positions, loose clusters, or close-packed rafts (dried colloid films).
    border_particles : bool
        Allow particles to be cut by the image border.
    aspect_range : (float, float)
        Axis ratio range of ellipsoids; rods use three times these values.
    irregularity : float
        Amplitude of the radius harmonics of ``irregular`` particles (relative).
    thickness_ratio : float
        Particle thickness / diameter (1 for spheres; < 1 for platelets).
    profile_exponent : float
        Dome exponent of rounded particles (0.5 sphere; smaller is flatter).
    dose : float
        Electrons per pixel (HRTEM) or detected counts per pixel at the background level
        scale (HAADF); sets the Poisson shot noise.
    contrast : float
        Multiplier of particle contrast (1 typical metal; 0.2 faint).
    blur_px : float
        Gaussian point-spread sigma, px.
    gradient : float
        Relative amplitude of the slow illumination / thickness gradient.
    specks : float
        Mean number of contaminant specks per 512 x 512 px (not particles; absent from truth).
    carbon_texture : float
        Relative amplitude of the amorphous support texture.
    lattice_fringes : bool
        Draw lattice fringes / atomic columns when the pixel size resolves them.
    defocus : float
        Strength of the Fresnel (defocus) phase contrast in HRTEM: defocus phase shift in
        radians at a 0.5 nm period, or at the Nyquist period when pixels are coarser than
        0.25 nm (0 = in focus).
    scan_noise : float
        HAADF line-to-line scan noise, relative to the background level.
    detector_offset : float
        Constant added to every pixel, counts (real detectors have a pedestal).
    holes : float
        Fraction of the field that is vacuum: a hole in the support film whose edge
        crosses the image (no particles inside; brighter in bright field, dark in HAADF).
    annotations : bool
        Burn in a scale bar with its label and sometimes a panel letter, as exported
        figures have (never part of the truth).
    min_particle_px : int
        Particles whose truth mask is smaller than this many pixels are not placed.
    """

    mode: str = "hrtem"
    image_size: int | tuple[int, int] = 512
    pixel_size_nm: float = 0.2
    shapes: dict[str, float] = field(default_factory=lambda: {"sphere": 1.0})
    diameter_mean_nm: float = 6.0
    diameter_spread: float = 0.15
    n_particles: int | None = None
    area_fraction: float = 0.15
    overlap: str | OverlapSpec = "low"
    arrangement: str = "random"
    border_particles: bool = True
    aspect_range: tuple[float, float] = (1.15, 1.6)
    irregularity: float = 0.06
    thickness_ratio: float = 1.0
    profile_exponent: float = 0.5
    dose: float = 300.0
    contrast: float = 1.0
    blur_px: float = 0.7
    gradient: float = 0.1
    specks: float = 4.0
    carbon_texture: float = 1.0
    lattice_fringes: bool = True
    defocus: float = 1.0
    scan_noise: float = 0.01
    detector_offset: float = 0.0
    holes: float = 0.0
    annotations: bool = False
    min_particle_px: int = 4

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {ARRANGEMENTS}, got {self.arrangement!r}")
        if not isinstance(self.image_size, int | np.integer) and len(self.image_size) != 2:
            raise ValueError(f"image_size must be an int or (rows, cols), got {self.image_size!r}")
        height, width = self.shape
        if not (8 <= height <= 16384 and 8 <= width <= 16384):
            raise ValueError(f"image_size must be between 8 and 16384 px, got {self.image_size}")
        if not np.isfinite(self.pixel_size_nm) or self.pixel_size_nm <= 0:
            raise ValueError(f"pixel_size_nm must be a positive number, got {self.pixel_size_nm}")
        if not self.shapes or any(s not in SHAPES for s in self.shapes):
            raise ValueError(
                f"shapes must be a non-empty mix of {sorted(SHAPES)}, got {self.shapes}"
            )
        if any(w < 0 for w in self.shapes.values()) or sum(self.shapes.values()) <= 0:
            raise ValueError(f"shape weights must be >= 0 with a positive sum, got {self.shapes}")
        if self.diameter_mean_nm <= 0 or self.diameter_spread < 0:
            raise ValueError(
                "diameter_mean_nm must be > 0 and diameter_spread >= 0, got "
                f"{self.diameter_mean_nm}, {self.diameter_spread}"
            )
        if self.n_particles is not None and self.n_particles < 0:
            raise ValueError(f"n_particles must be >= 0, got {self.n_particles}")
        if not 0.0 <= self.area_fraction <= 0.9:
            raise ValueError(f"area_fraction must be in [0, 0.9], got {self.area_fraction}")
        if isinstance(self.overlap, str) and self.overlap not in OVERLAP_LEVELS:
            raise ValueError(
                f"overlap must be one of {sorted(OVERLAP_LEVELS)} or an OverlapSpec, "
                f"got {self.overlap!r}"
            )
        if self.dose <= 0:
            raise ValueError(f"dose must be > 0 electrons per pixel, got {self.dose}")
        if self.aspect_range[0] < 1.0 or self.aspect_range[1] < self.aspect_range[0]:
            raise ValueError(f"aspect_range must be 1 <= low <= high, got {self.aspect_range}")
        if not 0.0 <= self.holes <= 0.8:
            raise ValueError(f"holes must be a fraction in [0, 0.8], got {self.holes}")
        if self.min_particle_px < 1:
            raise ValueError(f"min_particle_px must be >= 1, got {self.min_particle_px}")
        for name in ("contrast", "blur_px", "gradient", "specks", "carbon_texture", "scan_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape ``(rows, cols)`` in px."""
        if isinstance(self.image_size, int | np.integer):
            return int(self.image_size), int(self.image_size)
        rows, cols = self.image_size
        return int(rows), int(cols)

    @property
    def overlap_spec(self) -> OverlapSpec:
        """The overlap placement rule (named levels resolved)."""
        if isinstance(self.overlap, OverlapSpec):
            return self.overlap
        return OVERLAP_LEVELS[self.overlap]

    def with_(self, **changes: Any) -> SynthConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of the configuration."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, OverlapSpec):
                value = {
                    "fraction": value.fraction,
                    "depth_min": value.depth_min,
                    "depth_max": value.depth_max,
                }
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthConfig:
        """Rebuild a configuration from :meth:`to_dict` output (e.g. ``images.csv``'s JSON).

        Raises
        ------
        ValueError
            Unknown keys, or values that fail validation.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SynthConfig fields {unknown}")
        values = dict(data)
        if isinstance(values.get("overlap"), dict):
            values["overlap"] = OverlapSpec(**values["overlap"])
        for name in ("image_size", "aspect_range"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)
