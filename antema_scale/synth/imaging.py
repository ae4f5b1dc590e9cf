"""Forward models that turn projected particle thickness into a noisy micrograph.

Bright-field (HR)TEM (:func:`render_hrtem`): a weak-phase / amplitude object — particles
absorb (``exp(-mu * t)``) and shift the phase (``sigma * t``), the amorphous-carbon support
is a random phase screen, lattice fringes modulate resolved particles — propagated through
a defocus (Fresnel) transfer function, which gives the bright/dark Fresnel fringes at edges
and the granular carbon texture. Then illumination gradient, blur (detector MTF), shot
noise at ``dose`` electrons per pixel.

HAADF-STEM (:func:`render_haadf`): incoherent Z-contrast — signal grows with projected
thickness (mild saturation) on a dim, textured support whose thickness varies slowly;
atomic columns where the pixel size resolves them; probe blur; Poisson counts; scan-line
noise; detector offset.

All randomness comes from the generator passed in, in a fixed order, so images are
reproducible bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from antema_scale.synth.annotations import add_annotations
from antema_scale.synth.config import SynthConfig
from antema_scale.synth.layout import LATTICE_SPACINGS_NM, Hole
from antema_scale.synth.shapes import ParticleSpec, RasterizedParticle

#: Lattice fringes are drawn only when their period spans at least this many pixels.
MIN_FRINGE_PERIOD_PX = 2.4
#: Bright-field particles at least this large (radius, px) show diffraction-contrast bands
#: when their lattice is not resolved.
MIN_BAND_RADIUS_PX = 12.0


@dataclass
class ParticleLook:
    """How one particle scatters: imaging-only attributes (no effect on truth).

    Attributes
    ----------
    scattering : float
        Relative scattering power (material, orientation; 1 typical).
    lattice_spacing_nm : float
        Period of the lattice fringes / column rows, nm.
    lattice_angle_rad : float
        Orientation of the fringes, radians.
    lattice_phase : float
        Phase of the fringes, radians.
    lattice_strength : float
        Relative modulation depth of the fringes (0 = amorphous-looking).
    crossed : bool
        A second fringe set at 60 degrees (zone-axis orientation: cross fringes / columns).
    """

    scattering: float
    lattice_spacing_nm: float
    lattice_angle_rad: float
    lattice_phase: float
    lattice_strength: float
    crossed: bool


def draw_looks(rng: np.random.Generator, n: int, mode: str) -> list[ParticleLook]:
    """Draw the imaging attributes of ``n`` particles."""
    scattering = rng.uniform(0.8, 1.2, size=n)
    hot = rng.random(n) < (0.06 if mode == "haadf" else 0.1)
    scattering = np.where(hot, scattering * rng.uniform(1.3, 1.8, size=n), scattering)
    spacing = rng.choice(np.asarray(LATTICE_SPACINGS_NM), size=n, p=[0.6, 0.3, 0.1])
    angle = rng.uniform(0.0, np.pi, size=n)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n)
    strength = rng.uniform(0.0, 1.0, size=n) ** 0.7
    crossed = rng.random(n) < (0.6 if mode == "haadf" else 0.35)
    return [
        ParticleLook(
            float(scattering[i]),
            float(spacing[i]),
            float(angle[i]),
            float(phase[i]),
            float(strength[i]),
            bool(crossed[i]),
        )
        for i in range(n)
    ]


def correlated_noise(
    rng: np.random.Generator, shape: tuple[int, int], corr_px: float
) -> np.ndarray:
    """Gaussian noise with unit standard deviation and correlation length ``corr_px`` px."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    if corr_px > 0.5:
        noise = ndimage.gaussian_filter(noise, corr_px, mode="wrap")
        noise /= max(float(noise.std()), 1e-12)
    return noise


def _bump_basis(n: int, cells: int) -> np.ndarray:
    """``(n, cells)`` Gaussian bumps evenly spread over ``n`` pixels (rows sum to 1)."""
    centres = (np.arange(cells) + 0.5) / cells
    t = (np.arange(n) + 0.5)[:, None] / n
    basis = np.exp(-0.5 * ((t - centres[None, :]) * cells / 0.8) ** 2)
    return basis / basis.sum(axis=1, keepdims=True)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int = 5) -> np.ndarray:
    """A slowly varying random field over the image (a few bumps plus a linear ramp), ~[-1, 1].

    Built separably (``By @ coarse @ Bx.T``) so it costs a matrix product, not a filter.
    """
    coarse = rng.standard_normal((cells, cells))
    left = _bump_basis(shape[0], cells) @ coarse  # (rows, cells), cheap
    right = _bump_basis(shape[1], cells).T
    scale = 0.5 / max(float(np.abs(left @ right[:, :: max(shape[1] // 64, 1)]).max()), 1e-12)
    theta = rng.uniform(0.0, 2.0 * np.pi)
    yy = np.linspace(-1.0, 1.0, shape[0])[:, None]
    xx = np.linspace(-1.0, 1.0, shape[1])[None, :]
    # field + ramp in one float32 product: [left*scale, 0.5 sin(t) yy, 1] @ [right; 1; 0.5 cos(t) xx]
    lhs = np.hstack([left * scale, 0.5 * np.sin(theta) * yy, np.ones_like(yy)]).astype(np.float32)
    rhs = np.vstack([right, np.ones_like(xx), 0.5 * np.cos(theta) * xx]).astype(np.float32)
    return lhs @ rhs


def _crop_coordinates_nm(
    particle: RasterizedParticle, spec: ParticleSpec, pixel_size_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    h, w = particle.mask.shape
    y = (particle.offset[0] + np.arange(h))[:, None] * pixel_size_nm - spec.center_y_nm
    x = (particle.offset[1] + np.arange(w))[None, :] * pixel_size_nm - spec.center_x_nm
    return y, x


def lattice_pattern(
    particle: RasterizedParticle,
    spec: ParticleSpec,
    look: ParticleLook,
    pixel_size_nm: float,
    columns: bool = False,
) -> np.ndarray | None:
    """Fringe modulation in [-1, 1] on the particle's crop, None if there is none to draw.

    With ``columns`` (HAADF), crossed orientations give bright dots (atomic columns):
    the product of the fringe sets instead of their mean. When the lattice is not resolved,
    large bright-field particles (radius >= :data:`MIN_BAND_RADIUS_PX`) get broad
    one or two broad diffraction-contrast bands (bend / thickness contours) instead, with
    a period of 1.6 radii; HAADF and smaller particles get nothing.
    """
    if look.lattice_strength == 0:
        return None
    period_nm = look.lattice_spacing_nm
    if period_nm / pixel_size_nm < MIN_FRINGE_PERIOD_PX:
        if columns or spec.radius_nm / pixel_size_nm < MIN_BAND_RADIUS_PX:
            return None
        period_nm = 1.6 * spec.radius_nm
    y, x = _crop_coordinates_nm(particle, spec, pixel_size_nm)
    k = 2.0 * np.pi / period_nm
    angles = [look.lattice_angle_rad]
    if look.crossed:
        angles.append(look.lattice_angle_rad + np.pi / 3.0)
    fringes = [
        np.cos(k * (x * np.cos(a) + y * np.sin(a)) + look.lattice_phase * (i + 1))
        for i, a in enumerate(angles)
    ]
    if columns and len(fringes) == 2:
        pattern = 0.5 * (1.0 + fringes[0]) * (1.0 + fringes[1]) - 1.0
    else:
        pattern = sum(fringes) / len(fringes)
    return np.asarray(pattern, dtype=np.float32)


def accumulate_particles(
    shape: tuple[int, int],
    particles: list[RasterizedParticle],
    specs: list[ParticleSpec],
    looks: list[ParticleLook],
    pixel_size_nm: float,
    columns: bool = False,
    with_lattice: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum weighted thickness (nm) and thickness-weighted lattice modulation over particles.

    Overlapping particles add up (projection through both), as in a real projection.
    """
    thickness = np.zeros(shape, np.float32)
    lattice = np.zeros(shape, np.float32)
    for particle, spec, look in zip(particles, specs, looks, strict=True):
        r0, c0 = particle.offset
        h, w = particle.mask.shape
        t = particle.thickness_nm * np.float32(look.scattering)
        thickness[r0 : r0 + h, c0 : c0 + w] += t
        if not with_lattice:
            continue
        pattern = lattice_pattern(particle, spec, look, pixel_size_nm, columns)
        if pattern is not None:
            lattice[r0 : r0 + h, c0 : c0 + w] += look.lattice_strength * pattern * particle.coverage
    return thickness, lattice


def add_specks(image: np.ndarray, rng: np.random.Generator, mean_count: float, sign: float) -> None:
    """Add small contaminant blobs in place (relative amplitude, sign -1 darkens)."""
    rows, cols = image.shape
    n = int(rng.poisson(mean_count * rows * cols / 512**2))
    level = float(np.median(image[::4, ::4]))
    for _ in range(n):
        sigma = rng.uniform(0.6, 2.5)
        amp = rng.uniform(0.1, 0.5) * level * sign
        cy, cx = rng.uniform(0, rows), rng.uniform(0, cols)
        half = int(np.ceil(3 * sigma))
        r0, r1 = max(int(cy) - half, 0), min(int(cy) + half + 1, rows)
        c0, c1 = max(int(cx) - half, 0), min(int(cx) + half + 1, cols)
        if r1 <= r0 or c1 <= c0:
            continue
        yy = np.arange(r0, r1)[:, None] - cy
        xx = np.arange(c0, c1)[None, :] - cx
        image[r0:r1, c0:c1] += (amp * np.exp(-(yy**2 + xx**2) / (2 * sigma**2))).astype(image.dtype)


#: Period (nm) at which ``SynthConfig.defocus`` gives the defocus phase shift, when the
#: pixel resolves it (otherwise the Nyquist period is used).
DEFOCUS_REFERENCE_PERIOD_NM = 0.5
#: Information limit (nm): finer detail is damped by the temporal-coherence envelope.
INFORMATION_LIMIT_NM = 0.1


def _defocus_propagate(wave: np.ndarray, strength: float, pixel_size_nm: float) -> np.ndarray:
    """Propagate through a defocus: phase ``strength * (k / k_ref)**2`` in Fourier space.

    ``k_ref`` is the frequency of a 0.5 nm period, or the Nyquist frequency when the pixel is
    coarser (so at low magnification the Fresnel fringe stays about a pixel wide). Detail
    finer than the 0.1 nm information limit is damped.
    """
    if strength == 0:
        return wave
    k_ref = min(0.5 / pixel_size_nm, 1.0 / DEFOCUS_REFERENCE_PERIOD_NM)
    # The wave spreads by about d(chi)/dk / 2pi; pad (mirrored) by that much so nothing
    # wraps around the periodic FFT from one image edge to the other.
    k_max = min(0.5 / pixel_size_nm, 2.0 / INFORMATION_LIMIT_NM)
    spread_px = strength * k_max / (np.pi * k_ref**2) / pixel_size_nm
    rows, cols = wave.shape
    pad = int(min(np.ceil(spread_px) + 8, 256, rows - 1, cols - 1))
    padded = np.pad(wave, pad, mode="reflect")
    shape = (sfft.next_fast_len(padded.shape[0]), sfft.next_fast_len(padded.shape[1]))
    ky = sfft.fftfreq(shape[0], d=pixel_size_nm).astype(np.float32)[:, None]
    kx = sfft.fftfreq(shape[1], d=pixel_size_nm).astype(np.float32)[None, :]
    k2 = ky * ky + kx * kx  # 1/nm^2
    chi = np.float32(strength / k_ref**2) * k2
    envelope = np.exp(-k2 * np.float32(INFORMATION_LIMIT_NM**2 * 4.0))
    spectrum = sfft.fft2(padded, s=shape, workers=1) * _unit_phasor(-chi, envelope)
    return sfft.ifft2(spectrum, workers=1)[pad : pad + rows, pad : pad + cols]


def _unit_phasor(phase: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """``magnitude * exp(1j * phase)`` as complex64, without complex128 temporaries."""
    out = np.empty(phase.shape, np.complex64)
    out.real = magnitude * np.cos(phase)
    out.imag = magnitude * np.sin(phase)
    return out


def _shot_noise(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    return rng.poisson(np.clip(expected, 0.0, None)).astype(np.float32)


@dataclass
class Backdrop:
    """What stays the same from frame to frame: the support and the image-wide contrast.

    Attributes
    ----------
    texture : ndarray of float32
        Amorphous-support texture, unit standard deviation.
    support : ndarray of float32
        Slow thickness / illumination variation, about [-1, 1].
    absorption : float
        HRTEM: amplitude contrast per nm of particle, 1/nm. HAADF: particle / support
        signal ratio at the reference thickness.
    phase_per_nm : float
        HRTEM phase shift per nm of particle, rad/nm (unused in HAADF).
    """

    texture: np.ndarray
    support: np.ndarray
    absorption: float
    phase_per_nm: float
    vacuum: np.ndarray | None = None
    rim: np.ndarray | None = None

    def window(self, row: int, col: int, shape: tuple[int, int]) -> Backdrop:
        """The part of a larger backdrop seen by a frame whose corner is at (row, col) px."""
        sl = (slice(row, row + shape[0]), slice(col, col + shape[1]))
        return Backdrop(
            self.texture[sl],
            self.support[sl],
            self.absorption,
            self.phase_per_nm,
            None if self.vacuum is None else self.vacuum[sl],
            None if self.rim is None else self.rim[sl],
        )

    def with_hole(self, hole: Hole | None, pixel_size_nm: float) -> Backdrop:
        """Add a vacuum region (1 inside the hole, soft 1 px edge) and the film's thicker rim."""
        if hole is None:
            return self
        rows, cols = self.texture.shape
        y = (np.arange(rows, dtype=np.float32) * np.float32(pixel_size_nm))[:, None]
        x = (np.arange(cols, dtype=np.float32) * np.float32(pixel_size_nm))[None, :]
        outside = np.hypot(y - np.float32(hole.center_y_nm), x - np.float32(hole.center_x_nm))
        outside -= np.float32(hole.radius_nm)  # nm beyond the edge, negative inside
        vacuum = np.clip(0.5 - outside / np.float32(pixel_size_nm), 0.0, 1.0)
        width = np.float32(max(2.0, 3.0 * pixel_size_nm))
        rim = np.exp(-((np.clip(outside, 0.0, None) / width) ** 2)) * (1.0 - vacuum)
        return replace(self, vacuum=vacuum.astype(np.float32), rim=rim.astype(np.float32))


def draw_backdrop(
    config: SynthConfig, rng: np.random.Generator, shape: tuple[int, int] | None = None
) -> Backdrop:
    """Draw the support texture, slow field and contrast scalars of one image (or movie).

    ``shape`` may exceed the image (movies draw a larger support that drifts under the
    field of view).
    """
    shape = config.shape if shape is None else shape
    px = config.pixel_size_nm
    if config.mode == "hrtem":
        absorption = 0.15 * config.contrast * rng.uniform(0.7, 1.3)
        phase = 0.18 * config.contrast * rng.uniform(0.6, 1.4)
        grain_nm = 0.35
    else:
        absorption = 4.0 * config.contrast * rng.uniform(0.6, 1.4)
        phase = 0.0
        grain_nm = 0.4
    # Amorphous grain (~0.35-0.4 nm), never coarser than a few pixels on screen.
    texture = correlated_noise(rng, shape, corr_px=float(np.clip(grain_nm / px, 0.0, 3.0)))
    support = smooth_field(rng, shape)
    return Backdrop(texture, support, float(absorption), float(phase))


def _mottling(backdrop: Backdrop, strength: float = 0.08) -> np.ndarray:
    """Gentle multiplicative texture inside particles (crystallites, strain, thickness).

    The support texture shifted by a third of the frame, so it is not aligned with the
    background grain.
    """
    rows, cols = backdrop.texture.shape
    shifted = np.roll(backdrop.texture, (rows // 3, cols // 3), axis=(0, 1))
    return np.clip(1.0 + np.float32(strength) * shifted, 0.5, 1.5)


def render_hrtem(
    config: SynthConfig,
    particles: list[RasterizedParticle],
    specs: list[ParticleSpec],
    looks: list[ParticleLook],
    backdrop: Backdrop,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bright-field TEM/HRTEM image (counts, float32) of the given particles."""
    shape = config.shape
    px = config.pixel_size_nm
    thickness, lattice = accumulate_particles(
        shape, particles, specs, looks, px, with_lattice=config.lattice_fringes
    )
    thickness *= _mottling(backdrop)
    carbon = backdrop.texture
    amplitude = (
        np.float32(-0.5 * backdrop.absorption) * thickness * (1.0 + np.float32(0.35) * lattice)
    )
    amplitude -= np.float32(0.012 * config.carbon_texture) * carbon
    phase = (
        np.float32(backdrop.phase_per_nm) * thickness
        + np.float32(0.05 * config.carbon_texture) * carbon
        + np.float32(0.3) * lattice
    )
    wave = _unit_phasor(phase, np.exp(amplitude))
    wave = _defocus_propagate(wave, config.defocus, px)
    intensity = (wave.real**2 + wave.imag**2).astype(np.float32)
    intensity *= 1.0 + np.float32(config.gradient) * backdrop.support
    if backdrop.vacuum is not None and backdrop.rim is not None:
        # no film: about 12 % more transmitted; the film thickens at its edge
        intensity *= 1.0 + np.float32(0.12) * backdrop.vacuum - np.float32(0.08) * backdrop.rim
    if config.blur_px > 0:
        intensity = ndimage.gaussian_filter(intensity, config.blur_px)
    add_specks(intensity, rng, config.specks, sign=-1.0)
    counts = _shot_noise(rng, intensity * np.float32(config.dose))
    counts += np.float32(config.detector_offset)
    return counts


def render_haadf(
    config: SynthConfig,
    particles: list[RasterizedParticle],
    specs: list[ParticleSpec],
    looks: list[ParticleLook],
    backdrop: Backdrop,
    rng: np.random.Generator,
) -> np.ndarray:
    """HAADF-STEM image (counts, float32) of the given particles."""
    shape = config.shape
    px = config.pixel_size_nm
    thickness, lattice = accumulate_particles(
        shape, particles, specs, looks, px, columns=True, with_lattice=config.lattice_fringes
    )
    thickness *= _mottling(backdrop, 0.14)
    reference = max(config.diameter_mean_nm * config.thickness_ratio, 0.5)
    signal = thickness / np.float32(reference)
    signal = signal * (1.0 + 0.5 * lattice)
    signal = signal / (1.0 + 0.15 * signal)  # mild saturation of thick regions
    support = 1.0 + np.float32(2.0 * config.gradient) * backdrop.support
    texture = np.float32(0.06 * config.carbon_texture) * backdrop.texture
    if backdrop.vacuum is not None and backdrop.rim is not None:
        # vacuum scatters almost nothing to the annular detector; the film edge is thicker
        support = (
            support * (1.0 - np.float32(0.85) * backdrop.vacuum) + np.float32(0.4) * backdrop.rim
        )
        texture = texture * (1.0 - backdrop.vacuum)
    expected = np.clip(support + texture, 0.05, None) + np.float32(backdrop.absorption) * signal
    if config.blur_px > 0:
        expected = ndimage.gaussian_filter(expected, config.blur_px)
    add_specks(expected, rng, config.specks, sign=1.0)
    counts = _shot_noise(rng, expected * np.float32(config.dose))
    if config.scan_noise > 0:
        rows = rng.normal(0.0, config.scan_noise * config.dose, size=(shape[0], 1))
        counts += rows.astype(np.float32)
    counts += np.float32(config.detector_offset)
    return counts


def render(
    config: SynthConfig,
    particles: list[RasterizedParticle],
    specs: list[ParticleSpec],
    rng: np.random.Generator,
    *,
    looks: list[ParticleLook] | None = None,
    backdrop: Backdrop | None = None,
    hole: Hole | None = None,
) -> np.ndarray:
    """Render a micrograph in the configured mode; returns float32 counts.

    ``looks`` (per-particle imaging attributes) and ``backdrop`` (support, contrast) are
    drawn from ``rng`` when not given; movies pass them to keep them fixed over frames.
    ``hole`` adds a vacuum region of the support (and its thicker rim).
    """
    if looks is None:
        looks = draw_looks(rng, len(particles), config.mode)
    if backdrop is None:
        backdrop = draw_backdrop(config, rng)
    backdrop = backdrop.with_hole(hole, config.pixel_size_nm)
    if config.mode == "hrtem":
        image = render_hrtem(config, particles, specs, looks, backdrop, rng)
    else:
        image = render_haadf(config, particles, specs, looks, backdrop, rng)
    if config.annotations:
        add_annotations(image, rng, config.pixel_size_nm)
    return image
